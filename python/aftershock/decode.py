"""Decode OTLP export requests (protobuf or OTLP/JSON) into Arrow record batches with the
table schemas."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, overload

from aftershock import _core

_Decoder = Callable[[bytes], tuple[Any, dict[str, str | None]]]

#: Limits applied while decoding; the receiver uses the same defaults.
DEFAULT_MAX_DEPTH = 64
DEFAULT_MAX_VALUE_BYTES = 8192

#: The encodings of an OTLP request body: ``application/x-protobuf`` and ``application/json``.
Format = Literal["protobuf", "json"]


def _decoder(format: str, protobuf: _Decoder, json: _Decoder) -> _Decoder:
    if format == "protobuf":
        return protobuf
    if format == "json":
        return json
    raise ValueError(f"format must be 'protobuf' or 'json', not {format!r}")


def _stats(raw: dict[str, str | None]) -> dict[str, Any]:
    return {k: (v if k == "rejection" or v is None else int(v)) for k, v in raw.items()}


@overload
def decode_traces(
    data: bytes, *, format: Format = ..., with_stats: Literal[False] = ...
) -> Any: ...
@overload
def decode_traces(
    data: bytes, *, format: Format = ..., with_stats: Literal[True]
) -> tuple[Any, dict[str, Any]]: ...
def decode_traces(data: bytes, *, format: Format = "protobuf", with_stats: bool = False) -> Any:
    """Decode an ``ExportTraceServiceRequest`` into one Arrow record batch (``spans`` schema).

    The batch implements the Arrow PyCapsule interface: ``pyarrow.record_batch(b)``,
    ``polars.DataFrame(b)`` and DuckDB take it without copying. Spans with invalid ids are
    left out and counted; with ``with_stats=True`` the counters come back as a dict next to
    the batch. Malformed protobuf raises :class:`aftershock.DecodeError`.

    ``format="json"`` reads the OTLP/JSON encoding (hex ids, camelCase or snake_case keys,
    enums as numbers or names, 64-bit integers as strings or numbers) into the same rows;
    malformed JSON raises :class:`aftershock.DecodeError` too.
    """
    decode = _decoder(format, _core.decode_traces, _core.decode_traces_json)
    batch, stats = decode(bytes(data))
    return (batch, _stats(stats)) if with_stats else batch


@overload
def decode_logs(data: bytes, *, format: Format = ..., with_stats: Literal[False] = ...) -> Any: ...
@overload
def decode_logs(
    data: bytes, *, format: Format = ..., with_stats: Literal[True]
) -> tuple[Any, dict[str, Any]]: ...
def decode_logs(data: bytes, *, format: Format = "protobuf", with_stats: bool = False) -> Any:
    """Decode an ``ExportLogsServiceRequest`` into one Arrow record batch (``logs`` schema).

    Same conventions and ``format`` as :func:`decode_traces`; log records are never rejected.
    """
    decode = _decoder(format, _core.decode_logs, _core.decode_logs_json)
    batch, stats = decode(bytes(data))
    return (batch, _stats(stats)) if with_stats else batch


def table_schema(name: str) -> Any:
    """The Arrow schema of table ``name`` (``spans`` or ``logs``), as defined in the Rust core."""
    return _core.table_schema(name)
