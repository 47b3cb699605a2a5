"""Protobuf wire format written by hand, for inputs the official encoder cannot produce.

The generated ``opentelemetry-proto`` classes refuse invalid UTF-8, nest only as deep as upb
allows and always emit canonical encodings. The decoder must also cope with everything else a
peer may send, so these helpers spell messages out byte by byte.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

VARINT, FIXED64, LEN, START_GROUP, END_GROUP, FIXED32 = 0, 1, 2, 3, 4, 5


def varint(n: int) -> bytes:
    """Base-128 varint of ``n``; negative numbers are sign-extended to 64 bits like int64."""
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        low = n & 0x7F
        n >>= 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def tag(field: int, wire_type: int) -> bytes:
    """The key that precedes every field: field number and wire type."""
    return varint(field << 3 | wire_type)


def f_len(field: int, payload: bytes) -> bytes:
    """A length-delimited field (strings, bytes, sub-messages, packed runs)."""
    return tag(field, LEN) + varint(len(payload)) + payload


def f_varint(field: int, n: int) -> bytes:
    """A varint field (int32/int64/uint32/bool/enum)."""
    return tag(field, VARINT) + varint(n)


def f_fixed64(field: int, n: int) -> bytes:
    """A fixed64 field (the OTLP timestamps)."""
    return tag(field, FIXED64) + struct.pack("<Q", n & ((1 << 64) - 1))


def f_double(field: int, x: float) -> bytes:
    """A double field."""
    return tag(field, FIXED64) + struct.pack("<d", x)


def f_fixed32(field: int, n: int) -> bytes:
    """A fixed32 field (span and log flags)."""
    return tag(field, FIXED32) + struct.pack("<I", n & 0xFFFFFFFF)


def f_group(field: int, body: bytes) -> bytes:
    """A (deprecated) group: start tag, nested fields, matching end tag."""
    return tag(field, START_GROUP) + body + tag(field, END_GROUP)


# Field numbers of the OTLP messages, as in opentelemetry-proto v1.
class Av:
    """AnyValue fields."""

    STRING, BOOL, INT, DOUBLE, ARRAY, KVLIST, BYTES = 1, 2, 3, 4, 5, 6, 7


def any_string(s: bytes) -> bytes:
    """AnyValue{string_value} with raw (possibly invalid UTF-8) bytes."""
    return f_len(Av.STRING, s)


def any_array(*values: bytes) -> bytes:
    """AnyValue{array_value: ArrayValue{values}} from encoded AnyValues."""
    return f_len(Av.ARRAY, b"".join(f_len(1, v) for v in values))


def any_kvlist(*pairs: bytes) -> bytes:
    """AnyValue{kvlist_value: KeyValueList{values}} from encoded KeyValues."""
    return f_len(Av.KVLIST, b"".join(f_len(1, kv) for kv in pairs))


def key_value(key: bytes, value: bytes | None) -> bytes:
    """KeyValue with raw key bytes and an encoded AnyValue (or no value field at all)."""
    out = f_len(1, key)
    if value is not None:
        out += f_len(2, value)
    return out


def span(
    trace_id: bytes = b"\x01" * 16,
    span_id: bytes = b"\x02" * 8,
    *,
    name: bytes = b"op",
    extra: bytes = b"",
) -> bytes:
    """A Span with ids and name, followed by any further encoded fields in ``extra``."""
    return f_len(1, trace_id) + f_len(2, span_id) + f_len(5, name) + extra


def trace_request(*resource_spans: bytes) -> bytes:
    """ExportTraceServiceRequest from encoded ResourceSpans."""
    return b"".join(f_len(1, rs) for rs in resource_spans)


def resource_spans(*scope_spans: bytes, resource: bytes | None = None) -> bytes:
    """ResourceSpans from an encoded Resource and encoded ScopeSpans."""
    head = f_len(1, resource) if resource is not None else b""
    return head + b"".join(f_len(2, ss) for ss in scope_spans)


def scope_spans(*spans: bytes, scope: bytes | None = None) -> bytes:
    """ScopeSpans from an encoded InstrumentationScope and encoded Spans."""
    head = f_len(1, scope) if scope is not None else b""
    return head + b"".join(f_len(2, s) for s in spans)


def logs_request(*resource_logs: bytes) -> bytes:
    """ExportLogsServiceRequest from encoded ResourceLogs."""
    return b"".join(f_len(1, rl) for rl in resource_logs)


def resource_logs(*scope_logs: bytes, resource: bytes | None = None) -> bytes:
    """ResourceLogs from an encoded Resource and encoded ScopeLogs."""
    head = f_len(1, resource) if resource is not None else b""
    return head + b"".join(f_len(2, sl) for sl in scope_logs)


def scope_logs(*records: bytes, scope: bytes | None = None) -> bytes:
    """ScopeLogs from an encoded InstrumentationScope and encoded LogRecords."""
    head = f_len(1, scope) if scope is not None else b""
    return head + b"".join(f_len(2, r) for r in records)


def single_span_request(one_span: bytes, *, resource: bytes | None = None) -> bytes:
    """A whole trace request holding just ``one_span``."""
    return trace_request(resource_spans(scope_spans(one_span), resource=resource))


def single_log_request(record: bytes, *, resource: bytes | None = None) -> bytes:
    """A whole logs request holding just ``record``."""
    return logs_request(resource_logs(scope_logs(record), resource=resource))


def _wrap_many(depth: int, leaf: bytes, prefix_for: Callable[[int], bytes]) -> bytes:
    """Wraps ``leaf`` ``depth`` times; ``prefix_for(n)`` is the header that precedes an inner
    value of ``n`` bytes. Only lengths are tracked, so deep values cost linear time."""
    prefixes = []
    size = len(leaf)
    for _ in range(depth):
        prefix = prefix_for(size)
        prefixes.append(prefix)
        size += len(prefix)
    return b"".join(reversed(prefixes)) + leaf


def _array_prefix(n: int) -> bytes:
    """Header of AnyValue{array_value{values: <n bytes>}}."""
    inner = tag(1, LEN) + varint(n)
    return tag(Av.ARRAY, LEN) + varint(len(inner) + n) + inner


def _kvlist_prefix(n: int) -> bytes:
    """Header of AnyValue{kvlist_value{values: KeyValue{key: "k", value: <n bytes>}}}."""
    kv = f_len(1, b"k") + tag(2, LEN) + varint(n)
    entry = tag(1, LEN) + varint(len(kv) + n) + kv
    return tag(Av.KVLIST, LEN) + varint(len(entry) + n) + entry


def nested_arrays(depth: int, leaf: bytes) -> bytes:
    """An AnyValue that is ``depth`` arrays deep around the AnyValue ``leaf``."""
    return _wrap_many(depth, leaf, _array_prefix)


def nested_kvlists(depth: int, leaf: bytes) -> bytes:
    """An AnyValue that is ``depth`` single-entry kvlists (key ``k``) deep around ``leaf``."""
    return _wrap_many(depth, leaf, _kvlist_prefix)


def nested_groups(depth: int, field: int = 99) -> bytes:
    """An unknown group field nested ``depth`` groups deep (each group holds the next)."""
    return tag(field, START_GROUP) * depth + tag(field, END_GROUP) * depth
