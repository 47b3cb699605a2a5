"""What one OTLP export does, independent of transport, and the one mapping of its failures.

gRPC and HTTP both call :meth:`Ingestor.export`; it stores the request through the lake
writer and either returns the partial-success counts or raises a :class:`Refusal` that says,
once, how each transport answers it (status code, retry delay, reason label for metrics).
"""

from __future__ import annotations

import enum
import threading
import time
import zlib
from dataclasses import dataclass

import grpc

from aftershock.errors import BusyError, DecodeError, StorageError
from aftershock.lake import LakeWriter
from aftershock.receiver.metrics import ReceiverMetrics

#: How long a client should wait after a retryable storage failure (a full disk).
STORAGE_RETRY_SECONDS = 5.0


class Signal(enum.Enum):
    """An OTLP signal the receiver takes: its path, record noun and JSON rejection field."""

    TRACES = ("traces", "spans", "rejectedSpans")
    LOGS = ("logs", "log_records", "rejectedLogRecords")

    @property
    def path(self) -> str:
        """The OTLP/HTTP path, e.g. ``/v1/traces``."""
        return f"/v1/{self.value[0]}"

    @property
    def records(self) -> str:
        """What one item is called in metrics: ``spans`` or ``log_records``."""
        return self.value[1]

    @property
    def json_rejected_field(self) -> str:
        """The ``partialSuccess`` field counting rejected items in OTLP/JSON."""
        return self.value[2]


@dataclass
class Refusal(Exception):
    """A request the receiver refused as a whole; nothing of it was stored."""

    reason: str
    message: str
    grpc_code: grpc.StatusCode
    http_status: int
    retry_after: float | None = None

    def __str__(self) -> str:
        return self.message


def invalid(message: str) -> Refusal:
    """An undecodable request: not retried by clients (gRPC INVALID_ARGUMENT, HTTP 400)."""
    return Refusal("invalid", message, grpc.StatusCode.INVALID_ARGUMENT, 400)


def too_large(limit: int) -> Refusal:
    """A body over the limit after decompression (RESOURCE_EXHAUSTED without RetryInfo, 413)."""
    return Refusal(
        "too_large",
        f"request is larger than {limit} bytes after decompression",
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        413,
    )


def unauthenticated() -> Refusal:
    """A missing or wrong bearer token (gRPC UNAUTHENTICATED, HTTP 401)."""
    return Refusal(
        "unauthenticated",
        "missing or invalid bearer token",
        grpc.StatusCode.UNAUTHENTICATED,
        401,
    )


#: zlib ``wbits`` for each accepted Content-Encoding (``deflate`` is tried as zlib, then raw).
ENCODINGS = {"gzip": 31, "x-gzip": 31, "deflate": 15}


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """Inflates ``body``; raises :class:`Refusal` (413) past ``limit`` bytes of output.

    The output is capped while inflating, so a small bomb never allocates its full size.
    """
    wbits = ENCODINGS[encoding]
    for bits in (wbits, -15) if encoding == "deflate" else (wbits,):
        inflater = zlib.decompressobj(bits)
        try:
            out = inflater.decompress(body, limit + 1)
        except zlib.error as e:
            if bits != -15 and encoding == "deflate":
                continue
            raise invalid(f"cannot decompress {encoding} body: {e}") from None
        if len(out) > limit or inflater.unconsumed_tail:
            raise too_large(limit)
        if not inflater.eof:
            raise invalid(f"truncated {encoding} body")
        return out
    raise invalid(f"cannot decompress {encoding} body")


def grpc_message_encoding(message: bytes) -> str | None:
    """How a gRPC message the server did not decompress is compressed: ``gzip``,
    ``deflate`` (zlib), or None when it is not.

    The receiver inflates messages itself (gRPC's own inflate cost twice as much CPU as
    zlib's here), and grpcio hands them over without their ``grpc-encoding``, so the
    format is told by its header. An OTLP request never starts like either: its first
    byte is the tag of its field 1 (0x0a), and gzip's 0x1f is no protobuf tag at all.
    """
    if message[:2] == b"\x1f\x8b":
        return "gzip"
    if len(message) >= 2 and message[0] & 0x8F == 0x08 and (message[0] << 8 | message[1]) % 31 == 0:
        return "deflate"
    return None


def refusal_for(error: Exception) -> Refusal:
    """The answer to an error the lake writer raised: the receiver's one error mapping."""
    if isinstance(error, DecodeError):
        return invalid(f"cannot decode request: {error}")
    if isinstance(error, BusyError):
        return Refusal(
            "busy",
            "receiver is at its memory budget; retry later",
            grpc.StatusCode.UNAVAILABLE,
            503,
            retry_after=error.retry_after_ms / 1000,
        )
    if isinstance(error, StorageError) and error.retryable:
        return Refusal(
            "storage",
            f"storage unavailable: {error}",
            grpc.StatusCode.UNAVAILABLE,
            503,
            retry_after=STORAGE_RETRY_SECONDS,
        )
    return Refusal("internal", f"internal error: {error}", grpc.StatusCode.INTERNAL, 500)


class Ingestor:
    """Stores export requests through one :class:`LakeWriter` and counts what happened."""

    def __init__(self, writer: LakeWriter, metrics: ReceiverMetrics) -> None:
        self.writer = writer
        self.metrics = metrics
        self._inflight = 0
        self._idle = threading.Condition()

    def export(
        self, signal: Signal, body: bytes, *, json: bool, transport: str
    ) -> tuple[int, str | None]:
        """Stores ``body``; returns (rejected records, message) once it is durable.

        Raises :class:`Refusal` when nothing of the request was stored.
        """
        start = time.perf_counter()
        with self._idle:
            self._inflight += 1
        try:
            ingest = (
                self.writer.ingest_traces if signal is Signal.TRACES else self.writer.ingest_logs
            )
            try:
                result = ingest(body, json=json) if json else ingest(body)
            except Exception as e:
                refusal = refusal_for(e)
                self.metrics.refused_request(transport, signal, refusal.reason)
                raise refusal from e
            self.metrics.stored(transport, signal, result.accepted, result.rejected, result.repairs)
            return result.rejected, result.error_message
        finally:
            self.metrics.request_done(transport, signal, time.perf_counter() - start)
            with self._idle:
                self._inflight -= 1
                self._idle.notify_all()

    @property
    def inflight(self) -> int:
        """Export calls currently inside the writer."""
        return self._inflight

    def wait_idle(self, timeout: float) -> bool:
        """Waits until no export is inside the writer; False if ``timeout`` passed first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._inflight == 0, timeout)
