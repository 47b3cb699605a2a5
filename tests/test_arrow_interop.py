"""Decoded batches in pyarrow, Polars and DuckDB, with the column names and types of
CONTRACT.md; decoding from several threads at once."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import duckdb
import otlp_samples
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from otlp_reference import LOG_COLUMNS, SPAN_COLUMNS, batch_rows, expected_logs, expected_spans

import aftershock

TS = pa.timestamp("ns", tz="UTC")
ATTRS = pa.map_(pa.string(), pa.string())

SPAN_TYPES = {
    **dict.fromkeys(SPAN_COLUMNS, pa.string()),
    "start_time": TS,
    "end_time": TS,
    "duration_ns": pa.int64(),
    "resource_attributes": ATTRS,
    "span_attributes": ATTRS,
    "events": pa.list_(pa.struct([("time", TS), ("name", pa.string()), ("attributes", ATTRS)])),
    "links": pa.list_(
        pa.struct(
            [
                ("trace_id", pa.string()),
                ("span_id", pa.string()),
                ("trace_state", pa.string()),
                ("attributes", ATTRS),
            ]
        )
    ),
}
LOG_TYPES = {
    **dict.fromkeys(LOG_COLUMNS, pa.string()),
    "time": TS,
    "observed_time": TS,
    "severity_number": pa.int32(),
    "resource_attributes": ATTRS,
    "log_attributes": ATTRS,
}

DUCK_ATTRS = "MAP(VARCHAR, VARCHAR)"
DUCK_TS = "TIMESTAMPTZ_NS"  # DuckDB's name for TIMESTAMP WITH TIME ZONE at ns precision
DUCK_SPAN_TYPES = {
    **dict.fromkeys(SPAN_COLUMNS, "VARCHAR"),
    "start_time": DUCK_TS,
    "end_time": DUCK_TS,
    "duration_ns": "BIGINT",
    "resource_attributes": DUCK_ATTRS,
    "span_attributes": DUCK_ATTRS,
    "events": f'STRUCT("time" {DUCK_TS}, "name" VARCHAR, attributes {DUCK_ATTRS})[]',
    "links": "STRUCT(trace_id VARCHAR, span_id VARCHAR, trace_state VARCHAR, "
    f"attributes {DUCK_ATTRS})[]",
}
DUCK_LOG_TYPES = {
    **dict.fromkeys(LOG_COLUMNS, "VARCHAR"),
    "time": DUCK_TS,
    "observed_time": DUCK_TS,
    "severity_number": "INTEGER",
    "resource_attributes": DUCK_ATTRS,
    "log_attributes": DUCK_ATTRS,
}


def spans_batch() -> Any:
    """The decoder's batch for a request with six accepted spans."""
    return aftershock.decode_traces(otlp_samples.rich_trace_request().SerializeToString())


def logs_batch() -> Any:
    """The decoder's batch for a request with eight log records."""
    return aftershock.decode_logs(otlp_samples.rich_logs_request().SerializeToString())


@pytest.mark.parametrize(
    ("make", "columns", "types", "table"),
    [
        (spans_batch, SPAN_COLUMNS, SPAN_TYPES, "spans"),
        (logs_batch, LOG_COLUMNS, LOG_TYPES, "logs"),
    ],
    ids=["spans", "logs"],
)
def test_arrow_schema_matches_the_contract(
    make: Any, columns: tuple[str, ...], types: dict[str, pa.DataType], table: str
) -> None:
    rb = pa.record_batch(make())
    assert tuple(rb.schema.names) == columns
    for field in rb.schema:
        # Names and types are the contract; nullability of nested fields is the decoder's.
        assert _same_shape(field.type, types[field.name]), (field.name, field.type)
    assert pa.schema(aftershock.table_schema(table)) == rb.schema


def _same_shape(actual: pa.DataType, expected: pa.DataType) -> bool:
    """Type equality that ignores child-field nullability and names of list items."""
    if pa.types.is_list(actual) and pa.types.is_list(expected):
        return _same_shape(actual.value_type, expected.value_type)
    if pa.types.is_struct(actual) and pa.types.is_struct(expected):
        return [f.name for f in actual] == [f.name for f in expected] and all(
            _same_shape(a.type, e.type) for a, e in zip(actual, expected, strict=True)
        )
    if pa.types.is_map(actual) and pa.types.is_map(expected):
        return _same_shape(actual.key_type, expected.key_type) and _same_shape(
            actual.item_type, expected.item_type
        )
    return bool(actual == expected)


def test_column_counts_match_the_contract() -> None:
    # CONTRACT.md lists 21 span columns and 16 log columns.
    assert len(pa.record_batch(spans_batch()).schema) == len(SPAN_COLUMNS) == 21
    assert len(pa.record_batch(logs_batch()).schema) == len(LOG_COLUMNS) == 16


@pytest.mark.parametrize(
    ("make", "types"), [(spans_batch, DUCK_SPAN_TYPES), (logs_batch, DUCK_LOG_TYPES)]
)
def test_duckdb_sees_the_contract_types(make: Any, types: dict[str, str]) -> None:
    # DuckDB finds the local pyarrow batch by its variable name (a replacement scan).
    t = pa.record_batch(make())
    described = duckdb.sql("describe select * from t").fetchall()
    assert [(name, kind) for name, kind, *_ in described] == list(types.items())
    assert duckdb.sql("select count(*) from t").fetchall() == [(t.num_rows,)]


def query(sql: str, batch: Any) -> duckdb.DuckDBPyRelation:
    """Runs ``sql`` on a fresh DuckDB connection where ``t`` is ``batch``."""
    con = duckdb.connect()
    con.register("t", pa.record_batch(batch))
    return con.sql(sql)


def test_duckdb_queries_spans() -> None:
    batch = spans_batch()
    rows = query(
        """
        select trace_id, span_kind, epoch_ns(start_time), duration_ns, span_attributes['s'],
               span_attributes['list'], map_keys(span_attributes), len(events),
               events[1].name, events[1].attributes['exception.type'], links[1].span_id,
               links[1].attributes['why'], service_name, resource_attributes['service.name']
        from t where parent_span_id is null order by service_name
        """,
        batch,
    ).fetchall()
    first_trace = bytes([1, 1] * 8).hex()
    assert rows[0] == (
        first_trace,
        "INTERNAL",
        1_700_000_000_000_000_000,
        500_000_000,
        "last wins",
        "[true,null,1e+20]",
        ["n", "d", "b", "list", "map", "s"],
        1,
        "exception",
        "ValueError",
        "0b" * 8,
        "false",
        "checkout-0",
        "checkout-0",
    )
    assert len(rows) == 2
    # CONTRACT.md: one row per accepted span, NULL parent for roots only.
    assert query("select count(*), count(parent_span_id) from t", batch).fetchall() == [(6, 4)]


def test_duckdb_queries_logs() -> None:
    rows = query(
        "select epoch_ns(time), epoch_ns(observed_time), severity_number, body, "
        "log_attributes['i'] from t order by severity_number",
        logs_batch(),
    ).fetchall()
    assert rows[0] == (1_700_000_000_000_000_000, 1_700_000_000_100_000_000, 0, "hello", "0")
    # Odd records have no time_unix_nano and fall back to the observed time.
    assert rows[1][0] == rows[1][1] == 1_700_000_000_100_000_001
    assert rows[6][3] == '{"a":1,"a":2}'
    assert rows[7][3] is None


def test_polars_reads_the_batch_directly_and_through_pyarrow() -> None:
    batch = spans_batch()
    direct = pl.DataFrame(batch)
    via_pyarrow = pl.from_arrow(pa.record_batch(batch))
    assert isinstance(via_pyarrow, pl.DataFrame)
    assert direct.equals(via_pyarrow)
    assert direct.columns == list(SPAN_COLUMNS)
    assert direct.schema["start_time"] == pl.Datetime("ns", "UTC")
    assert direct.schema["duration_ns"] == pl.Int64
    assert direct.schema["span_kind"] == pl.String
    assert direct.schema["span_attributes"] == pl.Map(pl.String, pl.String)
    events = direct.schema["events"]
    assert isinstance(events, pl.List)
    assert batch_rows(direct.to_arrow()) == batch_rows(batch)
    assert direct.filter(pl.col("parent_span_id").is_null()).height == 2
    assert direct["start_time"].dt.epoch("ns").min() == 1_700_000_000_000_000_000


def test_polars_reads_logs() -> None:
    batch = logs_batch()
    frame = pl.DataFrame(batch)
    assert frame.columns == list(LOG_COLUMNS)
    assert frame.schema["severity_number"] == pl.Int32
    assert frame.schema["time"] == pl.Datetime("ns", "UTC")
    assert frame.schema["log_attributes"] == pl.Map(pl.String, pl.String)
    assert batch_rows(frame.to_arrow()) == batch_rows(batch)


def test_parquet_round_trip_keeps_every_value() -> None:
    for batch in (spans_batch(), logs_batch()):
        table = pa.Table.from_batches([pa.record_batch(batch)])
        sink = io.BytesIO()
        pq.write_table(table, sink)
        back = pq.read_table(io.BytesIO(sink.getvalue()))
        assert batch_rows(back.to_batches()[0]) == batch_rows(batch)


def test_every_bytes_like_input_is_accepted() -> None:
    data = otlp_samples.rich_trace_request().SerializeToString()
    expected = batch_rows(aftershock.decode_traces(data))
    for view in (bytearray(data), memoryview(data)):
        assert batch_rows(aftershock.decode_traces(view)) == expected


def test_stats_have_the_documented_keys_and_types() -> None:
    _, stats = aftershock.decode_traces(
        otlp_samples.rich_trace_request().SerializeToString(), with_stats=True
    )
    counters = {"accepted", "rejected", "invalid_utf8", "truncated_values", "depth_capped"}
    assert set(stats) == counters | {"negative_durations", "rejection"}
    assert all(type(stats[k]) is int for k in counters | {"negative_durations"})
    assert isinstance(stats["rejection"], str)


# --- Threads ------------------------------------------------------------------------------


def _workload() -> list[tuple[str, bytes]]:
    """Distinct requests, so that a mix-up between threads would show."""
    work: list[tuple[str, bytes]] = []
    for i in range(8):
        traces = ExportTraceServiceRequest()
        traces.CopyFrom(otlp_samples.rich_trace_request())
        logs = ExportLogsServiceRequest()
        logs.CopyFrom(otlp_samples.rich_logs_request())
        # Enough spans per request that decodes overlap in time.
        for rs in traces.resource_spans:
            rs.resource.attributes.add(key="request").value.int_value = i
            for ss in rs.scope_spans:
                template = list(ss.spans)
                for n in range(100):
                    for span in template:
                        clone = ss.spans.add()
                        clone.CopyFrom(span)
                        clone.name = f"{span.name}-{i}-{n}"
        logs.resource_logs[0].resource.attributes.add(key="request").value.int_value = i
        work.append(("traces", traces.SerializeToString()))
        work.append(("logs", logs.SerializeToString()))
    return work


def _decode(kind: str, data: bytes) -> pa.RecordBatch:
    """The pyarrow batch ``kind`` (traces or logs) of ``data``."""
    decode = aftershock.decode_traces if kind == "traces" else aftershock.decode_logs
    return pa.record_batch(decode(data))


def test_decoding_from_many_threads_gives_each_caller_its_own_result() -> None:
    work = _workload()
    # One decode of each request is checked against the reference; the threads must then
    # reproduce those batches exactly.
    first = [_decode(kind, data) for kind, data in work[:2]]
    assert (
        batch_rows(first[0])
        == expected_spans(ExportTraceServiceRequest.FromString(work[0][1])).rows
    )
    assert (
        batch_rows(first[1]) == expected_logs(ExportLogsServiceRequest.FromString(work[1][1])).rows
    )
    sequential = [_decode(kind, data) for kind, data in work]

    def run(index: int) -> bool:
        """Decodes job ``index`` and compares it with the sequential result."""
        kind, data = work[index % len(work)]
        return bool(_decode(kind, data).equals(sequential[index % len(work)]))

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(run, range(len(work) * 6)))
    assert results == [True] * (len(work) * 6)
