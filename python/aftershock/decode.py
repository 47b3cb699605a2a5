"""Decode OTLP export requests (protobuf) into Arrow record batches with the table schemas."""

from __future__ import annotations

from typing import Any, Literal, overload

from aftershock import _core

#: Limits applied while decoding; the receiver uses the same defaults.
DEFAULT_MAX_DEPTH = 64
DEFAULT_MAX_VALUE_BYTES = 8192


def _stats(raw: dict[str, str | None]) -> dict[str, Any]:
    return {k: (v if k == "rejection" or v is None else int(v)) for k, v in raw.items()}


@overload
def decode_traces(data: bytes, *, with_stats: Literal[False] = ...) -> Any: ...
@overload
def decode_traces(data: bytes, *, with_stats: Literal[True]) -> tuple[Any, dict[str, Any]]: ...
def decode_traces(data: bytes, *, with_stats: bool = False) -> Any:
    """Decode an ``ExportTraceServiceRequest`` into one Arrow record batch (``spans`` schema).

    The batch implements the Arrow PyCapsule interface: ``pyarrow.record_batch(b)``,
    ``polars.DataFrame(b)`` and DuckDB take it without copying. Spans with invalid ids are
    left out and counted; with ``with_stats=True`` the counters come back as a dict next to
    the batch. Malformed protobuf raises :class:`aftershock.DecodeError`.
    """
    batch, stats = _core.decode_traces(bytes(data))
    return (batch, _stats(stats)) if with_stats else batch


@overload
def decode_logs(data: bytes, *, with_stats: Literal[False] = ...) -> Any: ...
@overload
def decode_logs(data: bytes, *, with_stats: Literal[True]) -> tuple[Any, dict[str, Any]]: ...
def decode_logs(data: bytes, *, with_stats: bool = False) -> Any:
    """Decode an ``ExportLogsServiceRequest`` into one Arrow record batch (``logs`` schema).

    Same conventions as :func:`decode_traces`; log records are never rejected.
    """
    batch, stats = _core.decode_logs(bytes(data))
    return (batch, _stats(stats)) if with_stats else batch


def table_schema(name: str) -> Any:
    """The Arrow schema of table ``name`` (``spans`` or ``logs``), as defined in the Rust core."""
    return _core.table_schema(name)
