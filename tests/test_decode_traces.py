"""``aftershock.decode_traces`` against the reference decoder and the CONTRACT.md rules."""

from __future__ import annotations

import math
import re
from typing import Any

import otlp_strategies as strat
import otlp_wire as w
import pyarrow as pa
import pytest
from google.protobuf import text_format
from hypothesis import given, note, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from otlp_reference import SPAN_COLUMNS, batch_rows, expected_spans, row_differences
from otlp_strategies import SLOW_OK

import aftershock

GOOD_TRACE = bytes(range(1, 17))
GOOD_SPAN = bytes(range(1, 9))


def decode(data: bytes) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows and stats of ``decode_traces``."""
    batch, stats = aftershock.decode_traces(data, with_stats=True)
    return batch_rows(batch), stats


def assert_matches_reference(request: ExportTraceServiceRequest, data: bytes) -> None:
    """``data`` (an encoding of ``request``) decodes to exactly the reference rows and stats."""
    expected = expected_spans(request)
    rows, stats = decode(data)
    assert not row_differences(rows, expected.rows)
    assert {k: v for k, v in stats.items() if k != "rejection"} == expected.stats()
    if expected.rejected:
        assert isinstance(stats["rejection"], str) and stats["rejection"]
    else:
        assert stats["rejection"] is None


@settings(max_examples=200, deadline=None, suppress_health_check=SLOW_OK)
@given(st.one_of(strat.trace_requests(), strat.trace_requests().flatmap(strat.with_unknown_fields)))
def test_spans_match_reference(request: ExportTraceServiceRequest) -> None:
    data = request.SerializeToString()
    note(f"wire bytes: {data.hex()}")
    assert_matches_reference(request, data)


@settings(max_examples=200, deadline=None, suppress_health_check=SLOW_OK)
@given(strat.trace_requests(strat.LIGHT).flatmap(strat.with_mistyped_fields))
def test_known_field_with_wrong_wire_type_is_not_read_as_that_field(
    request: ExportTraceServiceRequest,
) -> None:
    # upb, the protobuf runtime behind opentelemetry-proto, keeps such a field as an unknown
    # field; some generated decoders (prost, gogo) refuse the whole message instead. Either is
    # what a protobuf reader does; reading the payload as if it were the field (a
    # length-delimited blob as a timestamp, say) is not.
    data = request.SerializeToString()
    note(f"wire bytes: {data.hex()}")
    try:
        aftershock.decode_traces(data)
    except aftershock.DecodeError:
        return
    assert_matches_reference(request, data)


def test_empty_request_gives_empty_batch_with_the_spans_schema() -> None:
    batch, stats = aftershock.decode_traces(b"", with_stats=True)
    rows = batch_rows(batch)
    assert rows == []
    assert tuple(pa.record_batch(batch).schema.names) == SPAN_COLUMNS
    assert stats == {
        "accepted": 0,
        "rejected": 0,
        "invalid_utf8": 0,
        "truncated_values": 0,
        "depth_capped": 0,
        "negative_durations": 0,
        "rejection": None,
    }


# --- Rejections ---------------------------------------------------------------------------


def _request(*spans: dict[str, Any]) -> ExportTraceServiceRequest:
    """One resource and scope holding spans with valid ids, overridden by ``spans``."""
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for fields in spans:
        scope.spans.add(**{"trace_id": GOOD_TRACE, "span_id": GOOD_SPAN, **fields})
    return request


BAD_IDS = [
    ("trace_id", {"trace_id": b""}),
    ("trace_id", {"trace_id": GOOD_TRACE[:15]}),
    ("trace_id", {"trace_id": GOOD_TRACE + b"\x01"}),
    ("trace_id", {"trace_id": bytes(16)}),
    ("trace_id", {"trace_id": GOOD_SPAN}),
    ("span_id", {"span_id": b""}),
    ("span_id", {"span_id": GOOD_SPAN[:7]}),
    ("span_id", {"span_id": GOOD_SPAN + b"\x01"}),
    ("span_id", {"span_id": bytes(8)}),
    ("span_id", {"span_id": GOOD_TRACE}),
    ("parent_span_id", {"parent_span_id": b"\x01"}),
    ("parent_span_id", {"parent_span_id": GOOD_SPAN[:7]}),
    ("parent_span_id", {"parent_span_id": GOOD_SPAN + b"\x01"}),
    ("parent_span_id", {"parent_span_id": GOOD_TRACE}),
]


@pytest.mark.parametrize(
    ("field", "bad"), BAD_IDS, ids=[f"{f}-{i}" for i, (f, _) in enumerate(BAD_IDS)]
)
def test_span_with_invalid_id_is_dropped_and_counted(field: str, bad: dict[str, bytes]) -> None:
    request = _request({"name": "before"}, {"name": "bad", **bad}, {"name": "after"})
    rows, stats = decode(request.SerializeToString())
    assert [r["span_name"] for r in rows] == ["before", "after"]
    assert stats["accepted"] == 2
    assert stats["rejected"] == 1
    message = stats["rejection"]
    assert isinstance(message, str)
    # An English sentence that names what was wrong, for partial_success.error_message.
    assert re.search(r"[a-z]{3,} [a-z]{2,}", message), message
    assert field in message


def test_several_rejections_are_all_counted() -> None:
    request = _request(
        {"trace_id": b""}, {"span_id": bytes(8)}, {"name": "kept"}, {"parent_span_id": b"\x01"}
    )
    rows, stats = decode(request.SerializeToString())
    assert [r["span_name"] for r in rows] == ["kept"]
    assert (stats["accepted"], stats["rejected"]) == (1, 3)
    assert stats["rejection"]


def test_every_span_rejected_still_gives_a_batch() -> None:
    rows, stats = decode(_request({"trace_id": b""}, {"span_id": b""}).SerializeToString())
    assert rows == []
    assert (stats["accepted"], stats["rejected"]) == (0, 2)


def test_zero_parent_span_id_means_root() -> None:
    rows, _ = decode(_request({"parent_span_id": bytes(8)}, {}).SerializeToString())
    assert [r["parent_span_id"] for r in rows] == [None, None]
    rows, _ = decode(_request({"parent_span_id": GOOD_SPAN[::-1]}).SerializeToString())
    assert rows[0]["parent_span_id"] == GOOD_SPAN[::-1].hex()


# --- Scalar columns -----------------------------------------------------------------------


def test_ids_are_lowercase_hex() -> None:
    rows, _ = decode(
        _request({"trace_id": b"\xab" * 16, "span_id": b"\xcd" * 8}).SerializeToString()
    )
    assert rows[0]["trace_id"] == "ab" * 16
    assert rows[0]["span_id"] == "cd" * 8


@pytest.mark.parametrize(
    ("kind", "name"),
    [(0, "UNSPECIFIED"), (1, "INTERNAL"), (2, "SERVER"), (3, "CLIENT"), (4, "PRODUCER"),
     (5, "CONSUMER"), (6, "UNSPECIFIED"), (-1, "UNSPECIFIED"), (2**31 - 1, "UNSPECIFIED")],
)  # fmt: skip
def test_span_kind_names(kind: int, name: str) -> None:
    rows, _ = decode(_request({"kind": kind}).SerializeToString())
    assert rows[0]["span_kind"] == name


@pytest.mark.parametrize(
    ("code", "name"), [(0, "UNSET"), (1, "OK"), (2, "ERROR"), (3, "UNSET"), (-7, "UNSET")]
)
def test_status_code_names(code: int, name: str) -> None:
    request = _request({})
    request.resource_spans[0].scope_spans[0].spans[0].status.code = code
    rows, _ = decode(request.SerializeToString())
    assert rows[0]["status_code"] == name


def test_span_without_status_is_unset_with_null_message() -> None:
    rows, _ = decode(_request({"name": "x"}).SerializeToString())
    assert (rows[0]["status_code"], rows[0]["status_message"]) == ("UNSET", None)


@pytest.mark.parametrize(
    ("value", "protobuf_reads"),
    [(2**32 + 2, 2), (2**32 + 1, 1), (2**63 + 3, 3)],
)
def test_enum_varints_keep_their_low_32_bits_like_protobuf(value: int, protobuf_reads: int) -> None:
    # kind and code are int32 enums: protobuf parsers truncate a wider varint to 32 bits.
    data = w.single_span_request(
        w.span(extra=w.f_varint(6, value) + w.f_len(15, w.f_varint(3, value)))
    )
    parsed = ExportTraceServiceRequest.FromString(data)
    parsed_span = parsed.resource_spans[0].scope_spans[0].spans[0]
    assert (parsed_span.kind, parsed_span.status.code) == (protobuf_reads, protobuf_reads)
    assert_matches_reference(parsed, data)


@pytest.mark.parametrize(
    ("start", "end", "start_out", "end_out", "duration", "negative"),
    [
        (10, 25, 10, 25, 15, 0),
        (25, 10, 25, 10, 0, 1),
        (0, 0, 0, 0, 0, 0),
        (2**63 - 1, 2**64 - 1, 2**63 - 1, 2**63 - 1, 0, 0),
        (5, 2**64 - 1, 5, 2**63 - 1, 2**63 - 6, 0),
        (2**64 - 1, 5, 2**63 - 1, 5, 0, 1),
    ],
)
def test_times_saturate_and_durations_clamp(
    start: int, end: int, start_out: int, end_out: int, duration: int, negative: int
) -> None:
    rows, stats = decode(
        _request({"start_time_unix_nano": start, "end_time_unix_nano": end}).SerializeToString()
    )
    assert (rows[0]["start_time"], rows[0]["end_time"]) == (start_out, end_out)
    assert rows[0]["duration_ns"] == duration
    assert stats["negative_durations"] == negative


def test_empty_strings_are_null_where_the_contract_says_so() -> None:
    request = _request({"trace_state": "", "name": ""})
    request.resource_spans[0].scope_spans[0].scope.name = ""
    row = decode(request.SerializeToString())[0][0]
    assert row["trace_state"] is None
    assert row["status_message"] is None
    assert row["scope_name"] is None
    assert row["scope_version"] is None
    # A span name is not optional: empty stays empty.
    assert row["span_name"] == ""


# --- Value rendering ----------------------------------------------------------------------


def _render(value: AnyValue | tuple[Any, ...]) -> tuple[str | None, dict[str, Any]]:
    """The stored text of ``value`` (a message, or a description for deep ones that upb
    cannot copy) as the only span attribute."""
    request = _request({})
    target = request.resource_spans[0].scope_spans[0].spans[0].attributes.add(key="k").value
    if isinstance(value, tuple):
        strat.fill_any_value(target, value)
    else:
        target.CopyFrom(value)
    rows, stats = decode(request.SerializeToString())
    ((key, text),) = rows[0]["span_attributes"]
    assert key == "k"
    return text, stats


def _av(text: str) -> AnyValue:
    """An AnyValue from protobuf text format."""
    return text_format.Parse(text, AnyValue())


RENDERED = [
    ('string_value: "plain"', "plain"),
    ('string_value: ""', ""),
    ("bool_value: true", "true"),
    ("bool_value: false", "false"),
    ("int_value: 42", "42"),
    ("int_value: -9223372036854775808", "-9223372036854775808"),
    ("int_value: 9223372036854775807", "9223372036854775807"),
    ("double_value: 1.5", "1.5"),
    ("double_value: 1", "1.0"),
    ("double_value: -0.0", "-0.0"),
    ("double_value: 1e20", "1e+20"),
    ("double_value: 1e16", "1e+16"),
    ("double_value: 1e15", "1000000000000000.0"),
    ("double_value: 1e-5", "1e-05"),
    ("double_value: 0.0001", "0.0001"),
    ("double_value: 0.30000000000000004", "0.30000000000000004"),
    ("double_value: 5e-324", "5e-324"),
    ("double_value: nan", "NaN"),
    ("double_value: inf", "Infinity"),
    ("double_value: -inf", "-Infinity"),
    (r'bytes_value: "\000\377"', "AP8="),
    ('bytes_value: ""', ""),
    ("array_value {}", "[]"),
    ('array_value { values { string_value: "a" } values { int_value: 1 } }', '["a",1]'),
    ("array_value { values {} values { bool_value: true } }", "[null,true]"),
    (r'array_value { values { bytes_value: "\001" } }', '["AQ=="]'),
    ("array_value { values { double_value: nan } values { double_value: -inf } }",
     "[NaN,-Infinity]"),
    ("kvlist_value {}", "{}"),
    ('kvlist_value { values { key: "a" value { int_value: 1 } }'
     ' values { key: "a" value { int_value: 2 } } }', '{"a":1,"a":2}'),
    ('kvlist_value { values { key: "z" } values { key: "a" value {} } }', '{"z":null,"a":null}'),
    ('kvlist_value { values { key: "l" value { array_value { values { int_value: 1 } } } } }',
     '{"l":[1]}'),
    (r'array_value { values { string_value: "q\"b\\n\n\t\001\177é€𝄞" } }',
     '["q\\"b\\\\n\\n\\t\\u0001\x7fé€𝄞"]'),
    (r'kvlist_value { values { key: "\"k\u2028" value { string_value: "v" } } }',
     '{"\\"k\u2028":"v"}'),
]  # fmt: skip


@pytest.mark.parametrize(("text_form", "stored"), RENDERED, ids=[r[1][:30] for r in RENDERED])
def test_values_render_like_python_json(text_form: str, stored: str) -> None:
    text, stats = _render(_av(text_form))
    assert text == stored
    assert (stats["truncated_values"], stats["depth_capped"]) == (0, 0)


def test_empty_any_value_and_missing_value_are_null() -> None:
    request = _request({})
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.attributes.add(key="empty").value.SetInParent()
    span.attributes.add(key="missing")
    rows, _ = decode(request.SerializeToString())
    assert rows[0]["span_attributes"] == [("empty", None), ("missing", None)]


def test_duplicate_keys_last_value_wins_at_its_position() -> None:
    request = _request({})
    span = request.resource_spans[0].scope_spans[0].spans[0]
    for key, value in [("a", 1), ("b", 2), ("a", 3), ("c", 4), ("b", 5)]:
        span.attributes.add(key=key).value.int_value = value
    rows, _ = decode(request.SerializeToString())
    assert rows[0]["span_attributes"] == [("a", "3"), ("c", "4"), ("b", "5")]


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("x" * 8192, "x" * 8192),
        ("x" * 8193, "x" * 8192),
        ("é" * 4097, "é" * 4096),
        ("a" + "é" * 4096, "a" + "é" * 4095),
        ("€" * 2731, "€" * 2730),
        ("ab" + "𝄞" * 2048, "ab" + "𝄞" * 2047),
    ],
    ids=["exact", "one-over", "two-byte", "two-byte-split", "three-byte", "four-byte-split"],
)
def test_long_values_are_cut_on_a_character_boundary(text: str, kept: str) -> None:
    stored, stats = _render(AnyValue(string_value=text))
    assert stored == kept
    assert len(stored.encode()) <= 8192
    assert stats["truncated_values"] == (text != kept)


def test_long_json_is_cut_after_rendering() -> None:
    value = AnyValue()
    for _ in range(3000):
        value.array_value.values.add().int_value = 100
    stored, stats = _render(value)
    full = "[" + ",".join(["100"] * 3000) + "]"
    assert stored == full[:8192]
    assert stats["truncated_values"] == 1


@pytest.mark.parametrize("as_kvlist", [False, True], ids=["arrays", "kvlists"])
def test_nesting_is_capped_at_depth_64(as_kvlist: bool) -> None:
    # n levels around an int put the int at depth n + 1.
    open_, close = ('{"k":', "}") if as_kvlist else ("[", "]")
    stored, stats = _render(("deep", 63, as_kvlist, ("int", 7)))
    assert stored == open_ * 63 + "7" + close * 63
    assert stats["depth_capped"] == 0
    stored, stats = _render(("deep", 64, as_kvlist, ("int", 7)))
    assert stored == open_ * 64 + '"...(nested too deep)"' + close * 64
    assert stats["depth_capped"] == 1


def test_every_too_deep_value_is_counted() -> None:
    three_ints = ("array", [("int", 0), ("int", 1), ("int", 2)])
    stored, stats = _render(("deep", 63, False, three_ints))
    marker = '"...(nested too deep)"'
    assert stored == "[" * 64 + ",".join([marker] * 3) + "]" * 64
    assert stats["depth_capped"] == 3


# --- Resource and scope columns -----------------------------------------------------------


def _with_resource(*pairs: tuple[str, AnyValue | None]) -> dict[str, Any]:
    """The row of one span under a resource with the attributes ``pairs``."""
    request = _request({})
    resource = request.resource_spans[0].resource
    for key, value in pairs:
        kv = resource.attributes.add(key=key)
        if value is not None:
            kv.value.CopyFrom(value)
    rows, _ = decode(request.SerializeToString())
    return rows[0]


def test_service_columns_come_from_resource_attributes() -> None:
    row = _with_resource(
        ("service.name", AnyValue(string_value="checkout")),
        ("service.version", AnyValue(string_value="2.4.0")),
        ("service.instance.id", AnyValue(int_value=7)),
        ("deployment.environment", AnyValue(string_value="old")),
        ("deployment.environment.name", AnyValue(string_value="prod")),
        ("other", AnyValue(bool_value=True)),
    )
    assert row["service_name"] == "checkout"
    assert row["service_version"] == "2.4.0"
    assert row["service_instance_id"] == "7"
    assert row["deployment_environment"] == "prod"
    assert row["resource_attributes"] == [
        ("service.name", "checkout"),
        ("service.version", "2.4.0"),
        ("service.instance.id", "7"),
        ("deployment.environment", "old"),
        ("deployment.environment.name", "prod"),
        ("other", "true"),
    ]


def test_deployment_environment_falls_back_to_the_old_key() -> None:
    row = _with_resource(("deployment.environment", AnyValue(string_value="staging")))
    assert row["deployment_environment"] == "staging"


def test_absent_or_empty_service_attributes_are_null() -> None:
    row = _with_resource(("service.name", AnyValue()), ("service.version", None))
    assert (row["service_name"], row["service_version"], row["service_instance_id"]) == (
        None,
        None,
        None,
    )
    assert row["deployment_environment"] is None


def test_duplicate_service_name_last_wins() -> None:
    row = _with_resource(
        ("service.name", AnyValue(string_value="a")), ("service.name", AnyValue(string_value="b"))
    )
    assert row["service_name"] == "b"
    assert row["resource_attributes"] == [("service.name", "b")]


def test_resource_scope_and_span_attributes_stay_separate() -> None:
    request = _request({})
    rs = request.resource_spans[0]
    rs.resource.attributes.add(key="where").value.string_value = "resource"
    rs.scope_spans[0].scope.attributes.add(key="where").value.string_value = "scope"
    rs.scope_spans[0].scope.name = "lib"
    rs.scope_spans[0].scope.version = "1.0"
    rs.scope_spans[0].spans[0].attributes.add(key="where").value.string_value = "span"
    row = decode(request.SerializeToString())[0][0]
    assert row["resource_attributes"] == [("where", "resource")]
    assert row["span_attributes"] == [("where", "span")]
    assert (row["scope_name"], row["scope_version"]) == ("lib", "1.0")


def test_events_and_links() -> None:
    request = _request({})
    span = request.resource_spans[0].scope_spans[0].spans[0]
    event = span.events.add(time_unix_nano=2**64 - 1, name="exception")
    event.attributes.add(key="exception.type").value.string_value = "ValueError"
    span.events.add(time_unix_nano=5)
    link = span.links.add(trace_id=b"\x0a" * 3, span_id=b"", trace_state="k=v")
    link.attributes.add(key="n").value.double_value = math.inf
    row = decode(request.SerializeToString())[0][0]
    assert row["events"] == [
        {"time": 2**63 - 1, "name": "exception", "attributes": [("exception.type", "ValueError")]},
        {"time": 5, "name": "", "attributes": []},
    ]
    assert row["links"] == [
        {
            "trace_id": "0a0a0a",
            "span_id": "",
            "trace_state": "k=v",
            "attributes": [("n", "Infinity")],
        }
    ]


# --- Protobuf merge semantics ---------------------------------------------------------------

# A singular message field that occurs more than once is merged by every protobuf reader;
# for a oneof member that is a message, the later occurrence is merged into the earlier one.
MERGES = {
    "status-split": w.f_len(15, w.f_len(2, b"boom")) + w.f_len(15, w.f_varint(3, 2)),
    "attribute-value-then-empty": w.f_len(
        9, w.key_value(b"k", w.any_string(b"kept")) + w.f_len(2, b"")
    ),
    "attribute-value-two-arrays": w.f_len(
        9,
        w.key_value(b"k", w.any_array(w.f_varint(3, 1)))
        + w.f_len(2, w.any_array(w.f_varint(3, 2))),
    ),
    "array-value-twice-in-one-any-value": w.f_len(
        9, w.key_value(b"k", w.any_array(w.f_varint(3, 1)) + w.any_array(w.f_varint(3, 2)))
    ),
    "string-then-int-last-wins": w.f_len(
        9, w.key_value(b"k", w.any_string(b"s") + w.f_varint(w.Av.INT, 5))
    ),
}


@pytest.mark.parametrize("extra", MERGES.values(), ids=MERGES.keys())
def test_repeated_singular_message_fields_merge(extra: bytes) -> None:
    data = w.single_span_request(w.span(GOOD_TRACE, GOOD_SPAN, extra=extra))
    assert_matches_reference(ExportTraceServiceRequest.FromString(data), data)


def test_resource_and_scope_split_over_occurrences_merge() -> None:
    resource_a = w.f_len(1, w.key_value(b"service.name", w.any_string(b"svc")))
    resource_b = w.f_len(1, w.key_value(b"other", w.any_string(b"x")))
    scope = w.f_len(1, w.f_len(1, b"lib")) + w.f_len(1, w.f_len(2, b"1.0"))
    rs = w.f_len(1, resource_a) + w.f_len(2, scope + w.f_len(2, w.span(GOOD_TRACE, GOOD_SPAN)))
    data = w.trace_request(rs + w.f_len(1, resource_b))
    assert_matches_reference(ExportTraceServiceRequest.FromString(data), data)


# --- Counters -------------------------------------------------------------------------------


def _overridden_values(container: Any) -> None:
    """A cut value and a depth-capped value, each overridden by a later duplicate key."""
    strat.fill_attributes(
        container,
        [
            ("long", ("string", "x" * 9000)),
            ("deep", ("deep", 70, False, ("int", 1))),
            ("long", ("string", "short")),
            ("deep", ("int", 2)),
        ],
    )


@pytest.mark.parametrize("where", ["resource", "span", "event", "link"])
def test_values_overridden_by_a_duplicate_key_are_not_counted(where: str) -> None:
    # Counters describe what is stored; an overridden value is not stored anywhere.
    request = _request({})
    span = request.resource_spans[0].scope_spans[0].spans[0]
    container = {
        "resource": lambda: request.resource_spans[0].resource.attributes,
        "span": lambda: span.attributes,
        "event": lambda: span.events.add().attributes,
        "link": lambda: span.links.add().attributes,
    }[where]()
    _overridden_values(container)
    data = request.SerializeToString()
    rows, stats = decode(data)
    assert not row_differences(rows, expected_spans(request).rows)
    assert (stats["truncated_values"], stats["depth_capped"]) == (0, 0), data.hex()


def test_values_of_rejected_spans_are_not_counted() -> None:
    request = _request({"trace_id": b""}, {})
    span = request.resource_spans[0].scope_spans[0].spans[0]
    strat.fill_attributes(
        span.attributes,
        [("long", ("string", "x" * 9000)), ("deep", ("deep", 70, False, ("int", 1)))],
    )
    span.end_time_unix_nano, span.start_time_unix_nano = 1, 2
    _, stats = decode(request.SerializeToString())
    assert (stats["accepted"], stats["rejected"]) == (1, 1)
    assert (stats["truncated_values"], stats["depth_capped"], stats["negative_durations"]) == (
        0,
        0,
        0,
    )


# Known fields written with another wire type, smallest cases of the property test above.
MISTYPED = {
    "start-time-as-length-delimited": w.f_len(7, (5).to_bytes(8, "little")),
    "kind-as-length-delimited": w.f_len(6, b"\x02"),
    "status-code-as-length-delimited": w.f_len(15, w.f_len(3, b"\x02")),
    "bool-value-as-length-delimited": w.f_len(
        9, w.key_value(b"k", w.any_string(b"s") + w.f_len(w.Av.BOOL, b"\x00"))
    ),
    "int-value-as-length-delimited": w.f_len(
        9, w.key_value(b"k", w.any_string(b"s") + w.f_len(w.Av.INT, b"\x07"))
    ),
    "trace-id-as-varint": w.f_varint(1, 1),
    "double-value-as-varint": w.f_len(
        9, w.key_value(b"k", w.any_string(b"s") + w.f_varint(w.Av.DOUBLE, 1))
    ),
}


@pytest.mark.parametrize("extra", MISTYPED.values(), ids=MISTYPED.keys())
def test_mistyped_known_field_is_ignored_or_refused(extra: bytes) -> None:
    data = w.single_span_request(w.span(GOOD_TRACE, GOOD_SPAN, extra=extra))
    try:
        aftershock.decode_traces(data)
    except aftershock.DecodeError:
        return
    assert_matches_reference(ExportTraceServiceRequest.FromString(data), data)
