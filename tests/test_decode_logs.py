"""``aftershock.decode_logs`` against the reference decoder and the CONTRACT.md rules."""

from __future__ import annotations

from typing import Any

import otlp_strategies as strat
import otlp_wire as w
import pyarrow as pa
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from otlp_reference import LOG_COLUMNS, batch_rows, expected_logs, row_differences
from otlp_strategies import SLOW_OK

import aftershock

TRACE = bytes(range(1, 17))
SPAN = bytes(range(1, 9))


def decode(data: bytes) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows and stats of ``decode_logs``."""
    batch, stats = aftershock.decode_logs(data, with_stats=True)
    return batch_rows(batch), stats


def assert_matches_reference(request: ExportLogsServiceRequest, data: bytes) -> None:
    """``data`` (an encoding of ``request``) decodes to exactly the reference rows and stats."""
    expected = expected_logs(request)
    rows, stats = decode(data)
    assert not row_differences(rows, expected.rows)
    assert {k: v for k, v in stats.items() if k != "rejection"} == expected.stats()
    assert stats["rejection"] is None


@settings(max_examples=200, deadline=None, suppress_health_check=SLOW_OK)
@given(st.one_of(strat.logs_requests(), strat.logs_requests().flatmap(strat.with_unknown_fields)))
def test_logs_match_reference(request: ExportLogsServiceRequest) -> None:
    data = request.SerializeToString()
    note(f"wire bytes: {data.hex()}")
    assert_matches_reference(request, data)


@settings(max_examples=150, deadline=None, suppress_health_check=SLOW_OK)
@given(strat.logs_requests(strat.LIGHT).flatmap(strat.with_mistyped_fields))
def test_known_field_with_wrong_wire_type_is_not_read_as_that_field(
    request: ExportLogsServiceRequest,
) -> None:
    # See the traces variant: refusing the message or ignoring the field are both protobuf.
    data = request.SerializeToString()
    note(f"wire bytes: {data.hex()}")
    try:
        aftershock.decode_logs(data)
    except aftershock.DecodeError:
        return
    assert_matches_reference(request, data)


def test_empty_request_gives_empty_batch_with_the_logs_schema() -> None:
    batch, stats = aftershock.decode_logs(b"", with_stats=True)
    assert tuple(pa.record_batch(batch).schema.names) == LOG_COLUMNS
    assert batch_rows(batch) == []
    assert stats["accepted"] == 0
    assert stats["rejection"] is None


def _one(**fields: Any) -> dict[str, Any]:
    """The row of a request holding one log record with ``fields``."""
    request = ExportLogsServiceRequest()
    body = fields.pop("body", None)
    record = request.resource_logs.add().scope_logs.add().log_records.add(**fields)
    if body is not None:
        record.body.CopyFrom(body)
    rows, stats = decode(request.SerializeToString())
    assert stats["rejected"] == 0
    (row,) = rows
    return row


@pytest.mark.parametrize(
    ("time", "observed", "time_out", "observed_out"),
    [
        (5, 7, 5, 7),
        (0, 7, 7, 7),
        (5, 0, 5, None),
        (0, 0, None, None),
        (2**64 - 1, 0, 2**63 - 1, None),
        (0, 2**63, 2**63 - 1, 2**63 - 1),
    ],
)
def test_time_falls_back_to_observed_time(
    time: int, observed: int, time_out: int | None, observed_out: int | None
) -> None:
    row = _one(time_unix_nano=time, observed_time_unix_nano=observed)
    assert (row["time"], row["observed_time"]) == (time_out, observed_out)


@pytest.mark.parametrize(
    ("trace_id", "span_id", "trace_out", "span_out"),
    [
        (TRACE, SPAN, TRACE.hex(), SPAN.hex()),
        (b"", b"", None, None),
        (bytes(16), bytes(8), None, None),
        (TRACE[:15], SPAN + b"\x01", None, None),
        (SPAN, TRACE, None, None),
        (b"\xff" * 16, b"\xab" * 8, "ff" * 16, "ab" * 8),
    ],
)
def test_log_ids_are_hex_or_null_and_never_reject(
    trace_id: bytes, span_id: bytes, trace_out: str | None, span_out: str | None
) -> None:
    row = _one(trace_id=trace_id, span_id=span_id)
    assert (row["trace_id"], row["span_id"]) == (trace_out, span_out)


@pytest.mark.parametrize("severity", [0, 9, 24, 25, -1, 2**31 - 1, -(2**31)])
def test_severity_number_is_kept_as_int32(severity: int) -> None:
    assert _one(severity_number=severity)["severity_number"] == severity


def test_severity_varint_keeps_low_32_bits_like_protobuf() -> None:
    record = w.f_varint(2, 2**32 + 9)
    data = w.single_log_request(record)
    assert (
        ExportLogsServiceRequest.FromString(data)
        .resource_logs[0]
        .scope_logs[0]
        .log_records[0]
        .severity_number
        == 9
    )
    assert decode(data)[0][0]["severity_number"] == 9


def test_empty_texts_are_null() -> None:
    row = _one(severity_text="", event_name="")
    assert (row["severity_text"], row["event_name"], row["body"]) == (None, None, None)
    row = _one(severity_text="WARN", event_name="browser.click")
    assert (row["severity_text"], row["event_name"]) == ("WARN", "browser.click")


@pytest.mark.parametrize(
    ("body", "stored"),
    [
        (AnyValue(string_value="plain text"), "plain text"),
        (AnyValue(string_value='{"looks": "like json"}'), '{"looks": "like json"}'),
        (AnyValue(string_value=""), ""),
        (AnyValue(bytes_value=b"\x00\xff"), "AP8="),
        (AnyValue(int_value=-3), "-3"),
        (AnyValue(double_value=2.5), "2.5"),
        (AnyValue(bool_value=False), "false"),
        (AnyValue(), None),
    ],
)
def test_body_renders_like_an_attribute_value(body: AnyValue, stored: str | None) -> None:
    assert _one(body=body)["body"] == stored


def test_structured_body_is_json_in_wire_order() -> None:
    body = AnyValue()
    for key, value in [("z", 1), ("a", 2), ("z", 3)]:
        body.kvlist_value.values.add(key=key).value.int_value = value
    body.kvlist_value.values.add(key="list").value.array_value.values.add().string_value = "x"
    assert _one(body=body)["body"] == '{"z":1,"a":2,"z":3,"list":["x"]}'


def test_long_body_is_not_cut_but_attributes_are() -> None:
    text = "€" * 10_000
    request = ExportLogsServiceRequest()
    record = request.resource_logs.add().scope_logs.add().log_records.add()
    record.body.string_value = text
    record.attributes.add(key="same").value.string_value = text
    rows, stats = decode(request.SerializeToString())
    assert rows[0]["body"] == text
    assert rows[0]["log_attributes"] == [("same", "€" * 2730)]
    assert stats["truncated_values"] == 1


def test_deep_body_is_capped() -> None:
    request = ExportLogsServiceRequest()
    record = request.resource_logs.add().scope_logs.add().log_records.add()
    strat.fill_any_value(record.body, ("deep", 70, False, ("string", "x")))
    rows, stats = decode(request.SerializeToString())
    assert rows[0]["body"] == "[" * 64 + '"...(nested too deep)"' + "]" * 64
    assert stats["depth_capped"] == 1


def test_resource_and_scope_columns() -> None:
    request = ExportLogsServiceRequest()
    rl = request.resource_logs.add()
    for key, value in [("service.name", "api"), ("deployment.environment.name", "prod")]:
        rl.resource.attributes.add(key=key).value.string_value = value
    sl = rl.scope_logs.add()
    sl.scope.name = "logger"
    sl.scope.attributes.add(key="not").value.string_value = "stored"
    sl.log_records.add().attributes.add(key="k").value.int_value = 1
    sl.log_records.add()
    rows, _ = decode(request.SerializeToString())
    for row in rows:
        assert row["service_name"] == "api"
        assert row["deployment_environment"] == "prod"
        assert row["service_version"] is None
        assert (row["scope_name"], row["scope_version"]) == ("logger", None)
    assert [r["log_attributes"] for r in rows] == [[("k", "1")], []]


# A singular message field that occurs more than once is merged by every protobuf reader.
BODY_MERGES = {
    "body-kvlist-twice": w.f_len(5, w.any_kvlist(w.key_value(b"a", w.f_varint(3, 1))))
    + w.f_len(5, w.any_kvlist(w.key_value(b"b", w.f_varint(3, 2)))),
    "body-then-empty-body": w.f_len(5, w.any_string(b"kept")) + w.f_len(5, b""),
    "body-string-then-int": w.f_len(5, w.any_string(b"s")) + w.f_len(5, w.f_varint(3, 4)),
}


@pytest.mark.parametrize("record", BODY_MERGES.values(), ids=BODY_MERGES.keys())
def test_repeated_body_fields_merge(record: bytes) -> None:
    data = w.single_log_request(record)
    assert_matches_reference(ExportLogsServiceRequest.FromString(data), data)


# Known fields written with another wire type, smallest cases of the property test above.
MISTYPED = {
    "time-as-length-delimited": w.f_len(1, (5).to_bytes(8, "little")),
    "severity-as-length-delimited": w.f_len(2, b"\x09"),
    "body-bool-as-length-delimited": w.f_len(5, w.any_string(b"s") + w.f_len(w.Av.BOOL, b"\x01")),
    "trace-id-as-fixed64": w.f_fixed64(9, 1),
}


@pytest.mark.parametrize("record", MISTYPED.values(), ids=MISTYPED.keys())
def test_mistyped_known_field_is_ignored_or_refused(record: bytes) -> None:
    data = w.single_log_request(record)
    try:
        aftershock.decode_logs(data)
    except aftershock.DecodeError:
        return
    assert_matches_reference(ExportLogsServiceRequest.FromString(data), data)
