"""A slow, obviously-correct reference for what ``aftershock.decode_*`` must produce.

It reads *parsed* ``opentelemetry-proto`` messages (so protobuf semantics come from the official
implementation, not from us) and applies the rendering rules of CONTRACT.md and the decoder's
documented limits. Rows are plain dicts with timestamps as int64 nanoseconds and maps as lists
of ``(key, value)`` tuples, the shape :func:`batch_rows` gives the decoder's output.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

MAX_DEPTH = 64
MAX_VALUE_BYTES = 8192
TOO_DEEP = json.dumps("...(nested too deep)")
I64_MAX = 2**63 - 1

SPAN_KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
STATUS_CODES = ("UNSET", "OK", "ERROR")

SPAN_COLUMNS = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "trace_state",
    "span_name",
    "span_kind",
    "start_time",
    "end_time",
    "duration_ns",
    "status_code",
    "status_message",
    "service_name",
    "service_version",
    "service_instance_id",
    "deployment_environment",
    "resource_attributes",
    "scope_name",
    "scope_version",
    "span_attributes",
    "events",
    "links",
)

LOG_COLUMNS = (
    "time",
    "observed_time",
    "trace_id",
    "span_id",
    "severity_number",
    "severity_text",
    "body",
    "event_name",
    "service_name",
    "service_version",
    "service_instance_id",
    "deployment_environment",
    "resource_attributes",
    "scope_name",
    "scope_version",
    "log_attributes",
)

Entries = list[tuple[str, str | None]]


@dataclass
class Expected:
    """Rows and counters the decoder must report for one request.

    Counters count what is stored: a resource's attributes once per ResourceSpans/ResourceLogs
    (whether or not any of its records survive) and each accepted record's own values. A value
    overridden by a later duplicate key is not stored, so it does not count, and neither do
    the values of a rejected span.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    rejected: int = 0
    truncated_values: int = 0
    depth_capped: int = 0
    negative_durations: int = 0

    def stats(self) -> dict[str, Any]:
        """The counters in the shape ``with_stats=True`` returns (minus ``rejection``)."""
        return {
            "accepted": len(self.rows),
            "rejected": self.rejected,
            "invalid_utf8": 0,
            "truncated_values": self.truncated_values,
            "depth_capped": self.depth_capped,
            "negative_durations": self.negative_durations,
        }


def _json_float(x: float) -> str:
    """A double as Python's json writes it: ``repr`` digits, ``NaN``/``Infinity``."""
    return json.dumps(x)


def _json(value: AnyValue, depth: int, exp: Expected) -> str:
    """Compact JSON of an AnyValue nested at ``depth`` (the top-level value is depth 1)."""
    if depth > MAX_DEPTH:
        exp.depth_capped += 1
        return TOO_DEEP
    kind = value.WhichOneof("value")
    if kind is None:
        return "null"
    if kind == "string_value":
        return json.dumps(value.string_value, ensure_ascii=False)
    if kind == "bytes_value":
        return json.dumps(base64.b64encode(value.bytes_value).decode("ascii"))
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "int_value":
        return str(value.int_value)
    if kind == "double_value":
        return _json_float(value.double_value)
    if kind == "array_value":
        return "[" + ",".join(_json(v, depth + 1, exp) for v in value.array_value.values) + "]"
    if kind == "kvlist_value":
        # Built by hand: a dict would fold duplicate keys, the wire order must survive.
        items = (
            json.dumps(kv.key, ensure_ascii=False)
            + ":"
            + (_json(kv.value, depth + 1, exp) if kv.HasField("value") else "null")
            for kv in value.kvlist_value.values
        )
        return "{" + ",".join(items) + "}"
    raise AssertionError(f"AnyValue kind {kind} is outside what the tests generate")


def render_value(value: AnyValue, exp: Expected) -> str | None:
    """A top-level value as the tables store it, before any length cap; None for empty."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "string_value":
        return value.string_value
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return _json(value, 1, exp)


def cap(text: str, exp: Expected) -> str:
    """Cuts ``text`` to at most MAX_VALUE_BYTES of UTF-8 without splitting a character."""
    raw = text.encode("utf-8")
    if len(raw) <= MAX_VALUE_BYTES:
        return text
    exp.truncated_values += 1
    # Dropping the incomplete tail sequence is exactly "cut at a character boundary".
    return raw[:MAX_VALUE_BYTES].decode("utf-8", errors="ignore")


def attribute_map(kvs: Sequence[KeyValue], exp: Expected) -> Entries:
    """Entries in wire order; a duplicate key keeps only its last value, at its last position."""
    last = {kv.key: i for i, kv in enumerate(kvs)}
    entries: Entries = []
    for i, kv in enumerate(kvs):
        if last[kv.key] != i:
            continue
        value = render_value(kv.value, exp) if kv.HasField("value") else None
        entries.append((kv.key, None if value is None else cap(value, exp)))
    return entries


def _lookup(entries: Entries, key: str) -> str | None:
    """The value stored under ``key`` (None if absent or NULL)."""
    for k, v in entries:
        if k == key:
            return v
    return None


def resource_columns(resource: Any, exp: Expected) -> dict[str, Any]:
    """Columns every row of a resource repeats, from its attributes."""
    attrs = attribute_map(resource.attributes, exp)
    env = _lookup(attrs, "deployment.environment.name")
    if env is None:
        env = _lookup(attrs, "deployment.environment")
    return {
        "service_name": _lookup(attrs, "service.name"),
        "service_version": _lookup(attrs, "service.version"),
        "service_instance_id": _lookup(attrs, "service.instance.id"),
        "deployment_environment": env,
        "resource_attributes": attrs,
    }


def scope_columns(scope: Any) -> dict[str, Any]:
    """Columns every row of a scope repeats. Scope attributes are not stored."""
    return {"scope_name": scope.name or None, "scope_version": scope.version or None}


def nanos(x: int) -> int:
    """A u64 timestamp as int64: values past year 2262 saturate."""
    return min(x, I64_MAX)


def _valid_id(raw: bytes, size: int) -> bool:
    """Whether ``raw`` is an id of ``size`` bytes that is not all zero."""
    return len(raw) == size and any(raw)


def span_is_valid(span: Any) -> bool:
    """Whether the decoder keeps ``span``: right-sized non-zero ids, parent 0 or 8 bytes."""
    return (
        _valid_id(span.trace_id, 16)
        and _valid_id(span.span_id, 8)
        and len(span.parent_span_id) in (0, 8)
    )


def _enum_name(names: tuple[str, ...], n: int) -> str:
    """The name of enum value ``n``; out-of-range values get the first (unset) name."""
    return names[n] if 0 <= n < len(names) else names[0]


def expected_spans(request: ExportTraceServiceRequest) -> Expected:
    """The rows and counters ``decode_traces(request.SerializeToString())`` must give."""
    exp = Expected()
    for rs in request.resource_spans:
        res = resource_columns(rs.resource, exp)
        for ss in rs.scope_spans:
            scope = scope_columns(ss.scope)
            for span in ss.spans:
                if not span_is_valid(span):
                    exp.rejected += 1
                    continue
                start, end = nanos(span.start_time_unix_nano), nanos(span.end_time_unix_nano)
                if end < start:
                    exp.negative_durations += 1
                row = {
                    "trace_id": span.trace_id.hex(),
                    "span_id": span.span_id.hex(),
                    "parent_span_id": (
                        span.parent_span_id.hex() if any(span.parent_span_id) else None
                    ),
                    "trace_state": span.trace_state or None,
                    "span_name": span.name,
                    "span_kind": _enum_name(SPAN_KINDS, span.kind),
                    "start_time": start,
                    "end_time": end,
                    "duration_ns": max(end - start, 0),
                    "status_code": _enum_name(STATUS_CODES, span.status.code),
                    "status_message": span.status.message or None,
                    **res,
                    **scope,
                    "span_attributes": attribute_map(span.attributes, exp),
                    "events": [
                        {
                            "time": nanos(ev.time_unix_nano),
                            "name": ev.name,
                            "attributes": attribute_map(ev.attributes, exp),
                        }
                        for ev in span.events
                    ],
                    "links": [
                        {
                            "trace_id": link.trace_id.hex(),
                            "span_id": link.span_id.hex(),
                            "trace_state": link.trace_state or None,
                            "attributes": attribute_map(link.attributes, exp),
                        }
                        for link in span.links
                    ],
                }
                exp.rows.append(row)
    return exp


def expected_logs(request: ExportLogsServiceRequest) -> Expected:
    """The rows and counters ``decode_logs(request.SerializeToString())`` must give."""
    exp = Expected()
    for rl in request.resource_logs:
        res = resource_columns(rl.resource, exp)
        for sl in rl.scope_logs:
            scope = scope_columns(sl.scope)
            for rec in sl.log_records:
                observed = nanos(rec.observed_time_unix_nano) or None
                body = render_value(rec.body, exp) if rec.HasField("body") else None
                exp.rows.append(
                    {
                        "time": nanos(rec.time_unix_nano) or observed,
                        "observed_time": observed,
                        "trace_id": rec.trace_id.hex() if _valid_id(rec.trace_id, 16) else None,
                        "span_id": rec.span_id.hex() if _valid_id(rec.span_id, 8) else None,
                        "severity_number": rec.severity_number,
                        "severity_text": rec.severity_text or None,
                        "body": body,
                        "event_name": rec.event_name or None,
                        **res,
                        **scope,
                        "log_attributes": attribute_map(rec.attributes, exp),
                    }
                )
    return exp


def _without_timestamps(ty: pa.DataType) -> pa.DataType:
    """``ty`` with every timestamp replaced by int64, nested types included."""
    if pa.types.is_timestamp(ty):
        return pa.int64()
    if pa.types.is_list(ty) or pa.types.is_large_list(ty):
        item = ty.value_field
        make = pa.list_ if pa.types.is_list(ty) else pa.large_list
        return make(pa.field(item.name, _without_timestamps(item.type), item.nullable))
    if pa.types.is_struct(ty):
        return pa.struct([pa.field(f.name, _without_timestamps(f.type), f.nullable) for f in ty])
    return ty


def batch_rows(batch: Any) -> list[dict[str, Any]]:
    """The rows of a decoded batch (or any Arrow table) with timestamps as int64 nanoseconds.

    pyarrow cannot turn nanoseconds past 2262 (or before 1677) into ``datetime``, so every
    timestamp column, also inside ``events``, is cast to int64 first.
    """
    table = batch if isinstance(batch, pa.Table) else pa.table(pa.record_batch(batch))
    columns = [col.cast(_without_timestamps(col.type)) for col in table.columns]
    return pa.Table.from_arrays(columns, names=table.schema.names).to_pylist()


def row_differences(actual: list[dict[str, Any]], expected: list[dict[str, Any]]) -> list[str]:
    """Readable differences between decoded and expected rows (empty when equal)."""
    if len(actual) != len(expected):
        return [f"{len(actual)} rows decoded, {len(expected)} expected"]
    out = []
    for i, (got, want) in enumerate(zip(actual, expected, strict=True)):
        for column in want.keys() | got.keys():
            if got.get(column, "<missing>") != want.get(column, "<missing>"):
                out.append(
                    f"row {i} {column}: decoded {got.get(column, '<missing>')!r:.300}, "
                    f"expected {want.get(column, '<missing>')!r:.300}"
                )
    return out
