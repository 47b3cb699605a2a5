"""Hypothesis strategies for OTLP export requests, built with the official opentelemetry-proto.

Every field of every message the decoder reads is drawn, including the ones it must ignore
(dropped counts, flags, schema URLs, scope attributes, entity refs), values around each limit
(8 KiB cap, depth 64, int64/uint64 extremes, NaN) and edge shapes (absent resource or scope,
empty AnyValue, duplicate keys). :func:`with_unknown_fields` adds fields the schema does not
know to any sub-message; protobuf keeps them and re-emits them on serialization.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import otlp_wire as w
from hypothesis import HealthCheck
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span

T = TypeVar("T")

U64_MAX = 2**64 - 1
I64_MAX = 2**63 - 1
I32 = st.integers(-(2**31), 2**31 - 1)
U32 = st.integers(0, 2**32 - 1)

SERVICE_KEYS = (
    "service.name",
    "service.version",
    "service.instance.id",
    "deployment.environment.name",
    "deployment.environment",
)

# Characters JSON must escape, multi-byte UTF-8 of every width, and separators that are
# fine in JSON but easy to mishandle.
SPECIAL_TEXT = ('"', "\\", "\n", "\r\t", "\x00", "\x1f", "\x7f", "é", "€", "𝄞", "\u2028", "a/b")


def mostly(common: st.SearchStrategy[T], rare: st.SearchStrategy[T]) -> st.SearchStrategy[T]:
    """``common`` nine times out of ten, ``rare`` otherwise."""
    return st.integers(0, 9).flatmap(lambda i: rare if i == 0 else common)


texts = st.one_of(st.text(max_size=8), st.sampled_from(SPECIAL_TEXT))


@st.composite
def long_texts(draw: st.DrawFn) -> str:
    """Text just around the 8 KiB cap, so a cut can land inside a multi-byte character."""
    char = draw(st.sampled_from(["x", "é", "€", "𝄞"]))
    target = draw(st.integers(8180, 8200))
    pad = "a" * draw(st.integers(0, 3))
    return pad + char * math.ceil((target - len(pad)) / len(char.encode()))


keys = st.one_of(st.sampled_from(["a", "b", "", "é", *SERVICE_KEYS]), texts)

int64s = st.one_of(
    st.integers(-(2**63), I64_MAX), st.sampled_from([0, -1, I64_MAX, -(2**63), 2**53 + 1])
)
doubles = st.one_of(
    st.floats(),
    st.sampled_from(
        [math.nan, math.inf, -math.inf, -0.0, 0.0, 1e20, 1e-5, 1e16, 1e15, 0.1, 5e-324, 1e308]
    ),
)


# AnyValues are drawn as plain descriptions and written into their final place with
# fill_any_value: upb copies messages by re-parsing them, which fails past its depth limit,
# so deep values must never be copied.
def fill_any_value(target: AnyValue, desc: tuple[Any, ...]) -> None:
    """Writes the AnyValue described by ``desc`` into ``target`` (assumed empty)."""
    kind = desc[0]
    target.SetInParent()
    if kind == "string":
        target.string_value = desc[1]
    elif kind == "bool":
        target.bool_value = desc[1]
    elif kind == "int":
        target.int_value = desc[1]
    elif kind == "double":
        target.double_value = desc[1]
    elif kind == "bytes":
        target.bytes_value = desc[1]
    elif kind == "array":
        target.array_value.SetInParent()
        for item in desc[1]:
            fill_any_value(target.array_value.values.add(), item)
    elif kind == "kvlist":
        target.kvlist_value.SetInParent()
        fill_attributes(target.kvlist_value.values, desc[1])
    elif kind == "deep":
        _, depth, as_kvlist, leaf = desc
        for _ in range(depth):
            if as_kvlist:
                target = target.kvlist_value.values.add(key="k").value
            else:
                target = target.array_value.values.add()
        fill_any_value(target, leaf)
    else:
        assert kind == "empty", desc


def fill_attributes(container: Any, pairs: list[tuple[str, tuple[Any, ...] | None]]) -> None:
    """Appends KeyValues to a repeated field; a ``None`` value leaves ``value`` unset."""
    for key, desc in pairs:
        kv = container.add(key=key)
        if desc is not None:
            fill_any_value(kv.value, desc)


scalar_values = st.one_of(
    st.tuples(st.just("string"), texts),
    st.tuples(st.just("bool"), st.booleans()),
    st.tuples(st.just("int"), int64s),
    st.tuples(st.just("double"), doubles),
    st.tuples(st.just("bytes"), st.binary(max_size=12)),
    st.just(("empty",)),
    st.tuples(st.just("string"), long_texts()),
)


def _extend(children: st.SearchStrategy[tuple[Any, ...]]) -> st.SearchStrategy[tuple[Any, ...]]:
    """Containers of ``children``: arrays, kvlists and chains just past the depth cap."""
    return st.one_of(
        st.tuples(st.just("array"), st.lists(children, max_size=4)),
        st.tuples(st.just("kvlist"), st.lists(st.tuples(keys, st.none() | children), max_size=4)),
        st.tuples(st.just("deep"), st.integers(60, 68), st.booleans(), children),
    )


any_values = st.recursive(scalar_values, _extend, max_leaves=6)
attributes = st.lists(st.tuples(keys, st.none() | any_values), max_size=4)
resource_attributes = st.lists(
    st.tuples(st.sampled_from(SERVICE_KEYS) | keys, st.none() | any_values), max_size=6
)

timestamps = st.one_of(
    st.integers(0, U64_MAX),
    st.integers(1_600_000_000 * 10**9, 1_900_000_000 * 10**9),
    st.sampled_from([0, 1, I64_MAX, I64_MAX + 1, U64_MAX]),
)


def ids(size: int) -> st.SearchStrategy[bytes]:
    """Ids of ``size`` bytes, now and then empty, all zero or of another length."""
    good = st.binary(min_size=size, max_size=size).filter(any)
    bad = st.one_of(st.just(b""), st.just(bytes(size)), st.binary(max_size=2 * size + 4))
    return mostly(good, bad)


# Strategies are built once here: building them inside the composites on every draw costs
# more than the draws themselves.
trace_ids = ids(16)
span_ids = ids(8)
parent_ids = mostly(
    st.one_of(st.just(b""), st.binary(min_size=8, max_size=8)), st.binary(max_size=12)
)
link_trace_ids = mostly(st.binary(min_size=16, max_size=16), st.binary(max_size=40))
link_span_ids = mostly(st.binary(min_size=8, max_size=8), st.binary(max_size=40))
durations = st.integers(0, 10**10)
enum_values = st.one_of(st.integers(0, 6), I32)
small_counts = st.integers(0, 2)
one_in_five = st.integers(0, 4)
log_times = st.just(0) | timestamps
bodies = st.none() | any_values
entity_keys = st.lists(texts, max_size=2)


@dataclass(frozen=True)
class Shape:
    """How many containers a request has and which values its attributes and bodies hold."""

    sizes: st.SearchStrategy[int]
    attributes: st.SearchStrategy[list[tuple[str, tuple[Any, ...] | None]]]
    resource_attributes: st.SearchStrategy[list[tuple[str, tuple[Any, ...] | None]]]
    bodies: st.SearchStrategy[tuple[Any, ...] | None]


# Containers are rarely empty: empty ones are an edge case, not the common one.
FULL = Shape(mostly(st.integers(1, 2), st.just(0)), attributes, resource_attributes, bodies)

_light_values = st.recursive(
    st.one_of(st.tuples(st.just("string"), texts), st.tuples(st.just("int"), int64s)),
    lambda children: st.tuples(st.just("array"), st.lists(children, max_size=2)),
    max_leaves=3,
)
_light_attributes = st.lists(st.tuples(keys, st.none() | _light_values), max_size=2)
# One container of each kind and small values: enough to reach every message type, small
# enough that hypothesis shrinks a failure in seconds rather than minutes.
LIGHT = Shape(st.just(1), _light_attributes, _light_attributes, st.none() | _light_values)


@st.composite
def fill_span(draw: st.DrawFn, span: Span, shape: Shape) -> None:
    """Draws every field of ``span``; ids are sometimes invalid so the span is rejected."""
    start = draw(timestamps)
    # Half the spans end a plausible while after they start, the rest at any time at all.
    end = min(start + draw(durations), U64_MAX) if draw(st.booleans()) else draw(timestamps)
    span.trace_id = draw(trace_ids)
    span.span_id = draw(span_ids)
    span.trace_state = draw(texts)
    span.parent_span_id = draw(parent_ids)
    span.flags = draw(U32)
    span.name = draw(texts)
    span.kind = draw(enum_values)
    span.start_time_unix_nano = start
    span.end_time_unix_nano = end
    span.dropped_attributes_count = draw(U32)
    span.dropped_events_count = draw(U32)
    span.dropped_links_count = draw(U32)
    fill_attributes(span.attributes, draw(shape.attributes))
    for _ in range(draw(small_counts)):
        event = span.events.add(
            time_unix_nano=draw(timestamps),
            name=draw(texts),
            dropped_attributes_count=draw(U32),
        )
        fill_attributes(event.attributes, draw(shape.attributes))
    for _ in range(draw(small_counts)):
        link = span.links.add(
            trace_id=draw(link_trace_ids),
            span_id=draw(link_span_ids),
            trace_state=draw(texts),
            dropped_attributes_count=draw(U32),
            flags=draw(U32),
        )
        fill_attributes(link.attributes, draw(shape.attributes))
    if draw(st.booleans()):
        span.status.message = draw(texts)
        span.status.code = draw(enum_values)
        span.status.SetInParent()


@st.composite
def fill_resource(draw: st.DrawFn, container: Any, shape: Shape) -> None:
    """Gives ``container`` (a ResourceSpans/ResourceLogs) a drawn Resource, or none at all."""
    if draw(one_in_five) == 0:
        return
    resource = container.resource
    resource.SetInParent()
    fill_attributes(resource.attributes, draw(shape.resource_attributes))
    resource.dropped_attributes_count = draw(U32)
    for _ in range(draw(st.integers(0, 1))):
        resource.entity_refs.add(
            schema_url=draw(texts), type=draw(texts), id_keys=draw(entity_keys)
        )


@st.composite
def fill_scope(draw: st.DrawFn, container: Any, shape: Shape) -> None:
    """Gives ``container`` a drawn InstrumentationScope (attributes never stored), or none."""
    if draw(one_in_five) == 0:
        return
    scope = container.scope
    scope.SetInParent()
    scope.name = draw(texts)
    scope.version = draw(texts)
    fill_attributes(scope.attributes, draw(shape.attributes))
    scope.dropped_attributes_count = draw(U32)


@st.composite
def trace_requests(draw: st.DrawFn, shape: Shape | None = None) -> ExportTraceServiceRequest:
    """Several resources, each with several scopes of several spans."""
    shape = shape or FULL
    sizes = shape.sizes
    request = ExportTraceServiceRequest()
    for _ in range(draw(sizes)):
        rs = request.resource_spans.add(schema_url=draw(texts))
        draw(fill_resource(rs, shape))
        for _ in range(draw(sizes)):
            ss = rs.scope_spans.add(schema_url=draw(texts))
            draw(fill_scope(ss, shape))
            for _ in range(draw(sizes)):
                draw(fill_span(ss.spans.add(), shape))
    return request


@st.composite
def fill_log_record(draw: st.DrawFn, record: LogRecord, shape: Shape) -> None:
    """Draws every field of ``record``; the body is any AnyValue or absent."""
    record.time_unix_nano = draw(log_times)
    record.observed_time_unix_nano = draw(log_times)
    record.severity_number = draw(enum_values)
    record.severity_text = draw(texts)
    fill_attributes(record.attributes, draw(shape.attributes))
    record.dropped_attributes_count = draw(U32)
    record.flags = draw(U32)
    record.trace_id = draw(trace_ids)
    record.span_id = draw(span_ids)
    record.event_name = draw(texts)
    body = draw(shape.bodies)
    if body is not None:
        fill_any_value(record.body, body)


@st.composite
def logs_requests(draw: st.DrawFn, shape: Shape | None = None) -> ExportLogsServiceRequest:
    """Several resources, each with several scopes of several log records."""
    shape = shape or FULL
    sizes = shape.sizes
    request = ExportLogsServiceRequest()
    for _ in range(draw(sizes)):
        rl = request.resource_logs.add(schema_url=draw(texts))
        draw(fill_resource(rl, shape))
        for _ in range(draw(sizes)):
            sl = rl.scope_logs.add(schema_url=draw(texts))
            draw(fill_scope(sl, shape))
            for _ in range(draw(sizes)):
                draw(fill_log_record(sl.log_records.add(), shape))
    return request


def sub_messages(msg: Any) -> Iterator[Any]:
    """``msg`` and every message nested in it (iteratively: values nest hundreds deep)."""
    stack = [msg]
    while stack:
        current = stack.pop()
        yield current
        for fd, value in current.ListFields():
            if fd.message_type is not None:
                stack.extend(value if fd.is_repeated else [value])


_WIRE_TYPES = (w.VARINT, w.FIXED64, w.LEN, w.START_GROUP, w.FIXED32)


@st.composite
def _unknown_field(draw: st.DrawFn, numbers: st.SearchStrategy[int], depth: int = 0) -> bytes:
    """One encoded field numbered from ``numbers``; groups nest at most two deep."""
    number = draw(numbers)
    wire_type = draw(st.sampled_from(_WIRE_TYPES if depth < 2 else _WIRE_TYPES[:3]))
    if wire_type == w.VARINT:
        return w.f_varint(number, draw(st.integers(0, U64_MAX)))
    if wire_type == w.FIXED64:
        return w.f_fixed64(number, draw(st.integers(0, U64_MAX)))
    if wire_type == w.FIXED32:
        return w.f_fixed32(number, draw(U32))
    if wire_type == w.LEN:
        return w.f_len(number, draw(st.binary(max_size=12)))
    # Inside a group any field number goes: the group as a whole is what is unknown.
    inner = draw(st.lists(_unknown_field(st.integers(1, 2**29 - 1), depth + 1), max_size=3))
    return w.f_group(number, b"".join(inner))


@functools.cache
def unknown_fields(descriptor: Any) -> st.SearchStrategy[bytes]:
    """Encoded fields, of every wire type, whose numbers ``descriptor`` does not define."""
    used = {f.number for f in descriptor.fields}
    free = sorted(set(range(1, 21)) - used)
    numbers = st.one_of(st.sampled_from(free), st.integers(21, 2**29 - 1))
    return st.lists(_unknown_field(numbers), min_size=1, max_size=3).map(b"".join)


@st.composite
def _some_sub_messages(draw: st.DrawFn, request: Any) -> list[Any]:
    """Up to six sub-messages of ``request``, picked by type first so that the rare types
    (scopes, statuses, links) are hit as often as the plentiful AnyValues."""
    by_type: dict[str, list[Any]] = {}
    for msg in sub_messages(request):
        by_type.setdefault(msg.DESCRIPTOR.full_name, []).append(msg)
    names = sorted(by_type)
    picked = []
    for _ in range(draw(st.integers(0, 6))):
        candidates = by_type[draw(st.sampled_from(names))]
        picked.append(candidates[draw(st.integers(0, len(candidates) - 1))])
    return picked


@st.composite
def with_unknown_fields(draw: st.DrawFn, request: Any) -> Any:
    """``request`` with unknown fields appended to some of its (sub-)messages, in place."""
    for msg in draw(_some_sub_messages(request)):
        msg.MergeFromString(draw(unknown_fields(msg.DESCRIPTOR)))
    return request


# Wire types a field may be written with, by the descriptor's field type.
_FIXED64_TYPES = {1, 6, 16}  # double, fixed64, sfixed64
_FIXED32_TYPES = {2, 7, 15}  # float, fixed32, sfixed32
_LEN_TYPES = {9, 11, 12}  # string, message, bytes


def expected_wire_type(fd: Any) -> int:
    """The wire type protobuf writes field ``fd`` with (no repeated scalars exist in OTLP)."""
    if fd.type in _FIXED64_TYPES:
        return w.FIXED64
    if fd.type in _FIXED32_TYPES:
        return w.FIXED32
    if fd.type in _LEN_TYPES:
        return w.LEN
    return w.VARINT


# Payloads that would also parse as a packed run of varints or of fixed64s, the shapes a
# reader might be tempted to accept for a scalar field.
mistyped_payloads = st.one_of(
    st.binary(max_size=16),
    st.lists(st.integers(0, U64_MAX).map(w.varint), min_size=1, max_size=3).map(b"".join),
    st.lists(st.binary(min_size=8, max_size=8), min_size=1, max_size=2).map(b"".join),
)


@st.composite
def mistyped_field(draw: st.DrawFn, descriptor: Any) -> bytes:
    """A field with a number ``descriptor`` knows, written with a different wire type.

    Parsers that accept it keep it as an unknown field, so it must not change any value.
    """
    fd = draw(st.sampled_from(list(descriptor.fields)))
    number = fd.number
    wire_type = draw(
        st.sampled_from(
            [t for t in (w.VARINT, w.FIXED64, w.LEN, w.FIXED32) if t != expected_wire_type(fd)]
        )
    )
    if wire_type == w.VARINT:
        return w.f_varint(number, draw(st.integers(0, U64_MAX)))
    if wire_type == w.FIXED64:
        return w.f_fixed64(number, draw(st.integers(0, U64_MAX)))
    if wire_type == w.FIXED32:
        return w.f_fixed32(number, draw(U32))
    return w.f_len(number, draw(mistyped_payloads))


@st.composite
def with_mistyped_fields(draw: st.DrawFn, request: Any) -> Any:
    """``request`` with known field numbers of the wrong wire type added to some messages.

    upb files such fields as unknown, so the parsed message the reference reads is unchanged.
    """
    for msg in draw(_some_sub_messages(request)):
        msg.MergeFromString(draw(mistyped_field(msg.DESCRIPTOR)))
    return request


# Generating whole export requests is slow next to a unit test's data, all the more so on a
# busy CI machine; that is expected here and not a reason to fail.
SLOW_OK = [HealthCheck.too_slow, HealthCheck.large_base_example]
