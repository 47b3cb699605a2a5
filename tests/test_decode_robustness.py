"""Hostile and broken input: the decoders either decode or raise ``aftershock.DecodeError``.

Never another exception, never a crash, never a half-built batch. Where the input is still a
valid protobuf message, the result must be what protobuf says it is.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import otlp_samples
import otlp_wire as w
import pyarrow as pa
import pytest
from google.protobuf.message import DecodeError as ProtobufDecodeError
from hypothesis import given, note, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from otlp_reference import (
    LOG_COLUMNS,
    SPAN_COLUMNS,
    batch_rows,
    expected_logs,
    expected_spans,
    row_differences,
)
from otlp_strategies import SLOW_OK

import aftershock

TRACES = (aftershock.decode_traces, ExportTraceServiceRequest, expected_spans, SPAN_COLUMNS)
LOGS = (aftershock.decode_logs, ExportLogsServiceRequest, expected_logs, LOG_COLUMNS)

SAMPLES = {
    "sdk-traces": (otlp_samples.sdk_trace_request, TRACES),
    "rich-traces": (otlp_samples.rich_trace_request, TRACES),
    "sdk-logs": (otlp_samples.sdk_logs_request, LOGS),
    "rich-logs": (otlp_samples.rich_logs_request, LOGS),
}


# Serialized once, outside any strategy: building the SDK samples is not a draw.
SAMPLE_BYTES = {name: make().SerializeToString() for name, (make, _) in SAMPLES.items()}


def decode_or_error(decode: Callable[..., Any], columns: tuple[str, ...], data: bytes) -> Any:
    """Decodes ``data``; returns the DecodeError instead of raising it. Anything else raised
    fails the test, and a batch that comes back must be complete and self-consistent."""
    try:
        batch, stats = decode(data, with_stats=True)
    except aftershock.DecodeError as exc:
        assert isinstance(exc, ValueError)
        assert isinstance(exc.offset, int) and 0 <= exc.offset <= len(data)
        assert isinstance(exc.path, str)
        assert str(exc)
        return exc
    rb = pa.record_batch(batch)
    rb.validate(full=True)
    assert tuple(rb.schema.names) == columns
    assert rb.num_rows == stats["accepted"]
    return batch


@pytest.mark.parametrize("name", SAMPLES)
def test_every_prefix_decodes_exactly_when_protobuf_parses_it(name: str) -> None:
    make, (decode, message_type, expected, columns) = SAMPLES[name]
    data = make().SerializeToString()
    for n in range(len(data) + 1):
        prefix = data[:n]
        try:
            parsed = message_type.FromString(prefix)
        except ProtobufDecodeError:
            parsed = None
        result = decode_or_error(decode, columns, prefix)
        # Any cut inside a top-level field leaves that field unfinished, which every reader
        # must notice; a cut between top-level fields is a shorter, valid request.
        if parsed is None:
            assert isinstance(result, aftershock.DecodeError), f"prefix of {n} bytes decoded"
        else:
            assert not isinstance(result, aftershock.DecodeError), f"prefix of {n}: {result}"
            assert not row_differences(batch_rows(result), expected(parsed).rows), n


@st.composite
def damaged(draw: st.DrawFn) -> tuple[str, bytes]:
    """A sample request with a few bits flipped, bytes dropped, inserted or overwritten."""
    name = draw(st.sampled_from(sorted(SAMPLES)))
    data = bytearray(SAMPLE_BYTES[name])
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data) - 1))
        how = draw(st.sampled_from(["flip", "drop", "insert", "overwrite"]))
        if how == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif how == "drop":
            del data[at : at + draw(st.integers(1, 8))]
        elif how == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            data[at] = draw(st.integers(0, 255))
        if not data:
            break
    return name, bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=SLOW_OK)
@given(damaged())
def test_damaged_requests_decode_or_raise_decode_error(sample: tuple[str, bytes]) -> None:
    _, data = sample
    note(f"wire bytes: {data.hex()}")
    decode_or_error(aftershock.decode_traces, SPAN_COLUMNS, data)
    decode_or_error(aftershock.decode_logs, LOG_COLUMNS, data)


@settings(max_examples=300, deadline=None, suppress_health_check=SLOW_OK)
@given(st.binary(max_size=300))
def test_random_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    decode_or_error(aftershock.decode_traces, SPAN_COLUMNS, data)
    decode_or_error(aftershock.decode_logs, LOG_COLUMNS, data)


MALFORMED = {
    "truncated-varint": b"\x0a\x80",
    "length-past-end": b"\x0a\x05ab",
    "huge-length": b"\x0a" + w.varint(2**63),
    "overlong-varint": b"\x08" + b"\xff" * 10 + b"\x01",
    "field-number-zero": b"\x00\x01",
    "wire-type-6": b"\x0e",
    "wire-type-7": b"\x0f",
    "stray-end-group": w.tag(5, w.END_GROUP),
    "unterminated-group": w.tag(5, w.START_GROUP) + w.f_varint(1, 1),
    "mismatched-end-group": w.tag(5, w.START_GROUP) + w.tag(6, w.END_GROUP),
    "truncated-fixed64": w.tag(9, w.FIXED64) + b"\x01\x02",
    "truncated-fixed32": w.tag(9, w.FIXED32) + b"\x01",
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
@pytest.mark.parametrize("decode", [aftershock.decode_traces, aftershock.decode_logs])
def test_malformed_wire_format_is_a_decode_error(data: bytes, decode: Callable[..., Any]) -> None:
    with pytest.raises(aftershock.DecodeError):
        decode(data)


# --- Deep nesting, in a child process so that a stack overflow fails one test, not the run --

_CHILD = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[1])
    import aftershock
    from otlp_reference import batch_rows
    results = {}
    for name, (kind, hexdata) in json.load(sys.stdin).items():
        decode = aftershock.decode_traces if kind == "traces" else aftershock.decode_logs
        try:
            batch, stats = decode(bytes.fromhex(hexdata), with_stats=True)
        except aftershock.DecodeError as exc:
            results[name] = {"error": str(exc)}
            continue
        results[name] = {"rows": batch_rows(batch), "stats": stats}
    print(json.dumps(results, default=str))
    """
)


def decode_in_child(cases: dict[str, tuple[str, bytes]]) -> dict[str, Any]:
    """Decodes each case in a fresh interpreter; fails if that interpreter dies."""
    payload = json.dumps({name: (kind, data.hex()) for name, (kind, data) in cases.items()})
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(Path(__file__).parent)],
        input=payload,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"decoder process died ({proc.returncode}): {proc.stderr[-2000:]}"
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


DEPTH = 10_000
LEAF = w.f_varint(w.Av.INT, 1)
CAPPED_ARRAY = "[" * 64 + '"...(nested too deep)"' + "]" * 64
CAPPED_KVLIST = '{"k":' * 64 + '"...(nested too deep)"' + "}" * 64


def _span_attr(value: bytes) -> bytes:
    """A trace request whose one span has the attribute ``deep`` = ``value``."""
    return w.single_span_request(w.span(extra=w.f_len(9, w.key_value(b"deep", value))))


def test_ten_thousand_levels_of_nesting_are_capped_without_crashing() -> None:
    arrays = w.nested_arrays(DEPTH, LEAF)
    kvlists = w.nested_kvlists(DEPTH, LEAF)
    event = w.f_len(11, w.f_fixed64(1, 5) + w.f_len(3, w.key_value(b"deep", arrays)))
    link = w.f_len(13, w.f_len(1, b"\x01" * 16) + w.f_len(4, w.key_value(b"deep", kvlists)))
    cases = {
        "span-arrays": ("traces", _span_attr(arrays)),
        "span-kvlists": ("traces", _span_attr(kvlists)),
        "event": ("traces", w.single_span_request(w.span(extra=event))),
        "link": ("traces", w.single_span_request(w.span(extra=link))),
        "resource": (
            "traces",
            w.single_span_request(
                w.span(), resource=w.f_len(1, w.key_value(b"service.name", arrays))
            ),
        ),
        "log-body": ("logs", w.single_log_request(w.f_len(5, kvlists))),
        "log-attribute": ("logs", w.single_log_request(w.f_len(6, w.key_value(b"deep", arrays)))),
        "span-arrays-200k": ("traces", _span_attr(w.nested_arrays(200_000, LEAF))),
    }
    out = decode_in_child(cases)
    for name in cases:
        assert "rows" in out[name], (name, out[name])
        assert out[name]["stats"]["depth_capped"] == 1, name
    assert out["span-arrays"]["rows"][0]["span_attributes"] == [["deep", CAPPED_ARRAY]]
    assert out["span-arrays-200k"]["rows"][0]["span_attributes"] == [["deep", CAPPED_ARRAY]]
    assert out["span-kvlists"]["rows"][0]["span_attributes"] == [["deep", CAPPED_KVLIST]]
    assert out["event"]["rows"][0]["events"][0]["attributes"] == [["deep", CAPPED_ARRAY]]
    assert out["link"]["rows"][0]["links"][0]["attributes"] == [["deep", CAPPED_KVLIST]]
    assert out["resource"]["rows"][0]["service_name"] == CAPPED_ARRAY
    assert out["log-body"]["rows"][0]["body"] == CAPPED_KVLIST
    assert out["log-attribute"]["rows"][0]["log_attributes"] == [["deep", CAPPED_ARRAY]]


def test_deeply_nested_unknown_groups_do_not_crash() -> None:
    cases = {
        f"groups-{depth}-{where}": (
            "traces",
            w.nested_groups(depth) + _span_attr(LEAF)
            if where == "top"
            else w.single_span_request(w.span(extra=w.nested_groups(depth))),
        )
        for depth in (50, 10_000, 1_000_000)
        for where in ("top", "span")
    }
    out = decode_in_child(cases)
    assert set(out) == set(cases)
    # Fifty nested groups are well within what protobuf readers accept.
    assert "rows" in out["groups-50-top"] and "rows" in out["groups-50-span"]


def test_deep_nesting_in_a_malformed_message_still_reports_the_error() -> None:
    data = _span_attr(w.nested_arrays(DEPTH, LEAF)) + b"\x0a\x05ab"
    out = decode_in_child({"bad": ("traces", data)})
    assert "error" in out["bad"]


# --- Invalid UTF-8 ------------------------------------------------------------------------


def _json_text(s: str) -> str:
    """``s`` as a JSON string the way the decoder writes nested strings."""
    return json.dumps(s, ensure_ascii=False)


def _attr(key: bytes, value: bytes) -> bytes:
    """An encoded KeyValue."""
    return w.key_value(key, value)


class Location(NamedTuple):
    """Where a string sits: how to build a request around its raw bytes, how to read it back
    from the decoded row, and what the row must hold for the repaired text."""

    kind: str
    build: Callable[[bytes], bytes]
    pick: Callable[[dict[str, Any]], Any]
    render: Callable[[str], Any]


GOOD = w.any_string(b"ok")
UTF8_LOCATIONS = {
    "span-name": Location(
        "traces",
        lambda s: w.single_span_request(w.span(name=s)),
        lambda row: row["span_name"],
        lambda s: s,
    ),
    "trace-state": Location(
        "traces",
        lambda s: w.single_span_request(w.span(extra=w.f_len(3, s))),
        lambda row: row["trace_state"],
        lambda s: s,
    ),
    "status-message": Location(
        "traces",
        lambda s: w.single_span_request(w.span(extra=w.f_len(15, w.f_len(2, s)))),
        lambda row: row["status_message"],
        lambda s: s,
    ),
    "scope-name": Location(
        "traces",
        lambda s: w.trace_request(w.resource_spans(w.scope_spans(w.span(), scope=w.f_len(1, s)))),
        lambda row: row["scope_name"],
        lambda s: s,
    ),
    "scope-version": Location(
        "traces",
        lambda s: w.trace_request(w.resource_spans(w.scope_spans(w.span(), scope=w.f_len(2, s)))),
        lambda row: row["scope_version"],
        lambda s: s,
    ),
    "resource-key": Location(
        "traces",
        lambda s: w.single_span_request(w.span(), resource=w.f_len(1, _attr(s, GOOD))),
        lambda row: row["resource_attributes"],
        lambda s: [(s, "ok")],
    ),
    "resource-service-name": Location(
        "traces",
        lambda s: w.single_span_request(
            w.span(), resource=w.f_len(1, _attr(b"service.name", w.any_string(s)))
        ),
        lambda row: (row["service_name"], row["resource_attributes"]),
        lambda s: (s, [("service.name", s)]),
    ),
    "span-attribute-key": Location(
        "traces",
        lambda s: w.single_span_request(w.span(extra=w.f_len(9, _attr(s, GOOD)))),
        lambda row: row["span_attributes"],
        lambda s: [(s, "ok")],
    ),
    "span-attribute-value": Location(
        "traces",
        lambda s: w.single_span_request(w.span(extra=w.f_len(9, _attr(b"k", w.any_string(s))))),
        lambda row: row["span_attributes"],
        lambda s: [("k", s)],
    ),
    "string-in-array": Location(
        "traces",
        lambda s: w.single_span_request(
            w.span(extra=w.f_len(9, _attr(b"k", w.any_array(w.any_string(s)))))
        ),
        lambda row: row["span_attributes"],
        lambda s: [("k", "[" + _json_text(s) + "]")],
    ),
    "kvlist-key": Location(
        "traces",
        lambda s: w.single_span_request(
            w.span(extra=w.f_len(9, _attr(b"k", w.any_kvlist(_attr(s, w.f_varint(3, 1))))))
        ),
        lambda row: row["span_attributes"],
        lambda s: [("k", "{" + _json_text(s) + ":1}")],
    ),
    "event-name": Location(
        "traces",
        lambda s: w.single_span_request(w.span(extra=w.f_len(11, w.f_len(2, s)))),
        lambda row: row["events"][0]["name"],
        lambda s: s,
    ),
    "event-attribute-value": Location(
        "traces",
        lambda s: w.single_span_request(
            w.span(extra=w.f_len(11, w.f_len(3, _attr(b"k", w.any_string(s)))))
        ),
        lambda row: row["events"][0]["attributes"],
        lambda s: [("k", s)],
    ),
    "link-trace-state": Location(
        "traces",
        lambda s: w.single_span_request(w.span(extra=w.f_len(13, w.f_len(3, s)))),
        lambda row: row["links"][0]["trace_state"],
        lambda s: s,
    ),
    "link-attribute-key": Location(
        "traces",
        lambda s: w.single_span_request(w.span(extra=w.f_len(13, w.f_len(4, _attr(s, GOOD))))),
        lambda row: row["links"][0]["attributes"],
        lambda s: [(s, "ok")],
    ),
    "severity-text": Location(
        "logs",
        lambda s: w.single_log_request(w.f_len(3, s)),
        lambda row: row["severity_text"],
        lambda s: s,
    ),
    "event-name-log": Location(
        "logs",
        lambda s: w.single_log_request(w.f_len(12, s)),
        lambda row: row["event_name"],
        lambda s: s,
    ),
    "body-string": Location(
        "logs",
        lambda s: w.single_log_request(w.f_len(5, w.any_string(s))),
        lambda row: row["body"],
        lambda s: s,
    ),
    "body-kvlist-value": Location(
        "logs",
        lambda s: w.single_log_request(w.f_len(5, w.any_kvlist(_attr(b"k", w.any_string(s))))),
        lambda row: row["body"],
        lambda s: '{"k":' + _json_text(s) + "}",
    ),
    "log-attribute-key": Location(
        "logs",
        lambda s: w.single_log_request(w.f_len(6, _attr(s, GOOD))),
        lambda row: row["log_attributes"],
        lambda s: [(s, "ok")],
    ),
    "log-attribute-value": Location(
        "logs",
        lambda s: w.single_log_request(w.f_len(6, _attr(b"k", w.any_string(s)))),
        lambda row: row["log_attributes"],
        lambda s: [("k", s)],
    ),
    "log-resource-key": Location(
        "logs",
        lambda s: w.single_log_request(b"", resource=w.f_len(1, _attr(s, GOOD))),
        lambda row: row["resource_attributes"],
        lambda s: [(s, "ok")],
    ),
}

# Invalid sequences of every kind: stray continuation bytes, truncated sequences, overlong
# forms, surrogates, code points past U+10FFFF, bytes that never occur in UTF-8.
BROKEN_UTF8 = st.sampled_from(
    [b"\x80", b"\xbf", b"\xc0\xaf", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xf0\x80\x80",
     b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80", b"\xfe", b"\xff"]
)  # fmt: skip
utf8_texts = st.text(min_size=1, max_size=6).map(lambda s: s.encode())
raw_strings = st.lists(st.one_of(utf8_texts, BROKEN_UTF8), min_size=1, max_size=4).map(b"".join)


@settings(max_examples=300, deadline=None, suppress_health_check=SLOW_OK)
@given(st.sampled_from(sorted(UTF8_LOCATIONS)), raw_strings)
def test_invalid_utf8_is_replaced_and_counted(location: str, raw: bytes) -> None:
    kind, build, pick, render = UTF8_LOCATIONS[location]
    decode = aftershock.decode_traces if kind == "traces" else aftershock.decode_logs
    data = build(raw)
    note(f"wire bytes: {data.hex()}")
    batch, stats = decode(data, with_stats=True)
    (row,) = batch_rows(batch)
    text = raw.decode("utf-8", errors="replace")
    assert pick(row) == render(text)
    try:
        raw.decode("utf-8")
        assert stats["invalid_utf8"] == 0
    except UnicodeDecodeError:
        assert stats["invalid_utf8"] == 1


def test_each_repaired_string_is_counted() -> None:
    bad = b"a\xffb"
    data = w.single_span_request(
        w.span(name=bad, extra=w.f_len(9, _attr(bad, w.any_string(bad)))),
    )
    batch, stats = aftershock.decode_traces(data, with_stats=True)
    (row,) = batch_rows(batch)
    assert row["span_name"] == "a\ufffdb"
    assert row["span_attributes"] == [("a\ufffdb", "a\ufffdb")]
    assert stats["invalid_utf8"] == 3


# --- Error offset and path ----------------------------------------------------------------

BROKEN_KV = b"\x0a\x05ab"  # a KeyValue whose key claims 5 bytes but has 2


def _spans(n: int, broken_at: int, extra: bytes) -> list[bytes]:
    """``n`` valid spans; the one at ``broken_at`` carries ``extra`` fields."""
    return [
        w.span(bytes([0x11] * 16), bytes([0x22] * 8), extra=extra if i == broken_at else b"")
        for i in range(n)
    ]


ERROR_CASES = {
    "span-attribute": (
        aftershock.decode_traces,
        w.trace_request(
            w.resource_spans(
                w.scope_spans(*_spans(5, 3, w.f_len(9, _attr(b"ok", GOOD)) + w.f_len(9, BROKEN_KV)))
            )
        ),
        "resource_spans[0].scope_spans[0].spans[3].attributes[1]",
    ),
    "event-attribute": (
        aftershock.decode_traces,
        w.trace_request(
            w.resource_spans(w.scope_spans(w.span())),
            w.resource_spans(
                w.scope_spans(),
                w.scope_spans(),
                w.scope_spans(*_spans(1, 0, w.f_len(11, b"") + w.f_len(11, w.f_len(3, BROKEN_KV)))),
            ),
        ),
        "resource_spans[1].scope_spans[2].spans[0].events[1].attributes[0]",
    ),
    "link-attribute": (
        aftershock.decode_traces,
        w.single_span_request(w.span(extra=w.f_len(13, w.f_len(4, BROKEN_KV)))),
        "resource_spans[0].scope_spans[0].spans[0].links[0].attributes[0]",
    ),
    "resource-attribute": (
        aftershock.decode_traces,
        w.single_span_request(
            w.span(), resource=w.f_len(1, _attr(b"a", GOOD)) + w.f_len(1, BROKEN_KV)
        ),
        "resource_spans[0].resource.attributes[1]",
    ),
    "status": (
        aftershock.decode_traces,
        w.single_span_request(w.span(extra=w.f_len(15, BROKEN_KV))),
        "resource_spans[0].scope_spans[0].spans[0].status",
    ),
    "scope": (
        aftershock.decode_traces,
        w.trace_request(
            w.resource_spans(w.scope_spans(), w.scope_spans(w.span(), scope=BROKEN_KV))
        ),
        "resource_spans[0].scope_spans[1].scope",
    ),
    "log-attribute": (
        aftershock.decode_logs,
        w.logs_request(
            w.resource_logs(
                w.scope_logs(b""),
                w.scope_logs(b"", b"", w.f_len(6, _attr(b"ok", GOOD)) + w.f_len(6, BROKEN_KV)),
            )
        ),
        "resource_logs[0].scope_logs[1].log_records[2].attributes[1]",
    ),
    "log-body": (
        aftershock.decode_logs,
        w.single_log_request(w.f_len(5, BROKEN_KV)),
        "resource_logs[0].scope_logs[0].log_records[0].body",
    ),
}


@pytest.mark.parametrize("case", ERROR_CASES, ids=ERROR_CASES.keys())
def test_decode_error_names_byte_offset_and_field_path(case: str) -> None:
    decode, data, path = ERROR_CASES[case]
    assert data.count(BROKEN_KV) == 1
    start = data.index(BROKEN_KV)
    with pytest.raises(aftershock.DecodeError) as info:
        decode(data)
    err = info.value
    assert err.path == path
    # The problem lies in the broken KeyValue: from its first byte to where its bytes run out.
    assert start <= err.offset <= start + len(BROKEN_KV), (err.offset, start)
    assert str(err.offset) in str(err)
    assert path in str(err)


def test_error_inside_an_attribute_value_names_the_value() -> None:
    data = w.single_span_request(
        w.span(extra=w.f_len(9, _attr(b"k", w.any_array(w.any_string(b"x"), BROKEN_KV))))
    )
    with pytest.raises(aftershock.DecodeError) as info:
        aftershock.decode_traces(data)
    assert info.value.path.startswith(
        "resource_spans[0].scope_spans[0].spans[0].attributes[0].value"
    )
    start = data.index(BROKEN_KV)
    assert start <= info.value.offset <= start + len(BROKEN_KV)


def test_truncated_request_names_the_offset_where_bytes_ran_out() -> None:
    data = otlp_samples.rich_trace_request().SerializeToString()
    with pytest.raises(aftershock.DecodeError) as info:
        aftershock.decode_traces(data[:-3])
    # The last top-level field starts somewhere before the cut and claims bytes past it.
    assert 0 <= info.value.offset <= len(data) - 3


@pytest.mark.parametrize(
    "raw",
    [b"\xff" * 8192, b"a" * 8190 + b"\xff", b"\xff" * 2731, b"\xe2\x82" * 3000, b"\xff" * 9000],
    ids=["8192-bad-bytes", "one-bad-byte-at-the-end", "2731-bad-bytes", "truncated-seqs", "9000"],
)
@pytest.mark.parametrize("where", ["span", "resource", "log"])
def test_the_length_cap_applies_to_the_repaired_text(raw: bytes, where: str) -> None:
    # Each bad byte becomes U+FFFD (three bytes), so a value within the cap on the wire can
    # exceed it once repaired; the cap is on what is stored.
    value = w.key_value(b"k", w.any_string(raw))
    if where == "span":
        data = w.single_span_request(w.span(extra=w.f_len(9, value)))
        batch, stats = aftershock.decode_traces(data, with_stats=True)
        stored = batch_rows(batch)[0]["span_attributes"]
    elif where == "resource":
        data = w.single_span_request(w.span(), resource=w.f_len(1, value))
        batch, stats = aftershock.decode_traces(data, with_stats=True)
        stored = batch_rows(batch)[0]["resource_attributes"]
    else:
        data = w.single_log_request(w.f_len(6, value))
        batch, stats = aftershock.decode_logs(data, with_stats=True)
        stored = batch_rows(batch)[0]["log_attributes"]
    repaired = raw.decode("utf-8", errors="replace").encode()
    expected = repaired[:8192].decode("utf-8", errors="ignore")
    assert stored == [("k", expected)]
    assert stats["truncated_values"] == 1
    assert stats["invalid_utf8"] == 1
