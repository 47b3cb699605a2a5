"""Exceptions raised by aftershock. The Rust core maps its errors to these in one place."""

from __future__ import annotations


class AftershockError(Exception):
    """Base class of every error aftershock raises on purpose.

    ``retryable`` is true when the same call may succeed later (a full disk, a busy writer).
    """

    retryable: bool = False


class DecodeError(AftershockError, ValueError):
    """An OTLP message could not be decoded.

    ``offset`` is the byte offset into the message where decoding failed and ``path`` the
    field path from the request root (for example ``resource_spans[0].scope_spans[1].spans[3]``).
    """

    offset: int | None = None
    path: str | None = None


class StorageError(AftershockError, OSError):
    """The data directory could not be read or written."""


class BusyError(AftershockError):
    """The writer is at its memory budget; retry after ``retry_after_ms`` milliseconds.

    The receiver answers gRPC ``UNAVAILABLE`` with ``RetryInfo`` and HTTP 503 with
    ``Retry-After`` for it.
    """

    retry_after_ms: int = 1000


class LakeNotFoundError(StorageError, FileNotFoundError):
    """The data directory given to ``aftershock.open`` does not exist (or is not a directory)."""


class TraceNotFoundError(AftershockError, LookupError):
    """No span of the requested trace is in the lake."""
