"""The query surface: aftershock.open, snapshots, views, frames, trace trees, the service map,
rollup latency and partition pruning, over lakes written by the real LakeWriter."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from deltalake import DeltaTable
from google.protobuf import json_format
from google.protobuf.message import Message
from lake_workload import TAG, trace_request
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from shop_traces import EDGES, MS, SPANS_PER_TRACE, TraceTruth, shop_request

import aftershock
from aftershock.lake import LakeWriter, compact_table, table_schema
from aftershock.query import (
    VIEWS,
    Lake,
    LakeNotFoundError,
    SpanNode,
    TraceNotFoundError,
    build_trace,
    parse_time,
)

FIXTURES = Path("/work/shared/testdata/otlp-json")
if not FIXTURES.is_dir():  # the repository's own layout: ../shared next to the checkout
    FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "otlp-json"
DAY1 = dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.timezone.utc)
DAY2 = dt.datetime(2026, 11, 28, 9, 0, tzinfo=dt.timezone.utc)
TRACES_PER_DAY = 120
SPACING = 30 * 1_000 * MS  # one trace every 30 s: an hour of traces per day


def ns(t: dt.datetime) -> int:
    return int(t.timestamp()) * 1_000_000_000


def otlp_json_to_protobuf(path: Path, message: type[Message] = ExportTraceServiceRequest) -> bytes:
    """An OTLP/JSON file as protobuf: OTLP JSON writes ids as hex, protobuf JSON as base64."""

    def fix(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: base64.b64encode(bytes.fromhex(v)).decode()
                if k in ("traceId", "spanId", "parentSpanId") and isinstance(v, str)
                else fix(v)
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [fix(v) for v in node]
        return node

    data = fix(json.loads(path.read_text()))
    return json_format.ParseDict(data, message()).SerializeToString()


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[TraceTruth]]:
    """A lake of shop traces: an hour on each of two days, four flushes a day."""
    data = tmp_path_factory.mktemp("shop")
    truths: list[TraceTruth] = []
    with LakeWriter(data, background=False, durability="os") as w:
        for day in (DAY1, DAY2):
            for part in range(4):
                n = TRACES_PER_DAY // 4
                payload, t = shop_request(part * n, n, ns(day), SPACING, seed=day.day)
                assert w.ingest_traces(payload).rejected == 0
                truths += t
                w.flush()
    return data, truths


@pytest.fixture
def lake(shop: tuple[Path, list[TraceTruth]]) -> Any:
    with aftershock.open(shop[0]) as lk:
        yield lk


@pytest.fixture(scope="module")
def fixtures_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake of the OTLP/JSON fixtures (the opentelemetry-proto example and Jaeger's)."""
    data = tmp_path_factory.mktemp("fixtures")
    with LakeWriter(data, background=False, durability="os") as w:
        for path in [FIXTURES / "trace.json", *sorted((FIXTURES / "jaeger").glob("*.json"))]:
            assert w.ingest_traces(otlp_json_to_protobuf(path)).rejected == 0, path
        logs = otlp_json_to_protobuf(FIXTURES / "logs.json", ExportLogsServiceRequest)
        assert w.ingest_logs(logs).accepted > 0
    return data


def fixture_spans() -> Counter[str]:
    """Spans per service in the fixture files, counted from the JSON itself."""
    counts: Counter[str] = Counter()
    for path in [FIXTURES / "trace.json", *sorted((FIXTURES / "jaeger").glob("*.json"))]:
        for rs in json.loads(path.read_text())["resourceSpans"]:
            attrs = {a["key"]: a["value"] for a in rs.get("resource", {}).get("attributes", [])}
            service = attrs["service.name"]["stringValue"]
            counts[service] += sum(len(ss.get("spans", [])) for ss in rs.get("scopeSpans", []))
    return counts


# --- opening -------------------------------------------------------------------------------


def test_missing_data_dir_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(LakeNotFoundError, match="no aftershock data directory") as e:
        aftershock.open(tmp_path / "nope")
    assert isinstance(e.value, FileNotFoundError)
    assert isinstance(e.value, aftershock.AftershockError)


def test_absent_tables_are_empty_views_with_their_schema(tmp_path: Path) -> None:
    with aftershock.open(tmp_path) as lake:
        assert lake.versions == dict.fromkeys(VIEWS)
        for name in VIEWS:
            assert lake.sql(f"select count(*) as n from {name}")["n"].item() == 0
            cols = lake.sql(f"describe {name}")["column_name"].to_list()
            assert cols == table_schema(name).names
        assert lake.spans().collect().columns == table_schema("spans").names
        assert lake.latency().height == 0
        assert lake.service_map().height == 0
        with pytest.raises(TraceNotFoundError):
            lake.trace("4bf92f3577b34da6a3ce929d0e0e4736")


def test_open_never_writes(shop: tuple[Path, list[TraceTruth]]) -> None:
    before = sorted((p, p.stat().st_mtime_ns) for p in shop[0].rglob("*"))
    with aftershock.open(shop[0]) as lake:
        lake.sql("select count(*) from spans")
        lake.trace(shop[1][0].trace_id)
    assert sorted((p, p.stat().st_mtime_ns) for p in shop[0].rglob("*")) == before


def test_parse_time() -> None:
    now = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.timezone.utc)
    assert parse_time("2h", now) == now - dt.timedelta(hours=2)
    assert parse_time("90s", now) == now - dt.timedelta(seconds=90)
    assert parse_time("7d", now) == now - dt.timedelta(days=7)
    assert parse_time(dt.timedelta(minutes=5), now) == now - dt.timedelta(minutes=5)
    assert parse_time("2026-11-29T10:00:00Z") == now.replace(hour=10)
    assert parse_time(dt.datetime(2026, 11, 29, 10)) == now.replace(hour=10)
    assert parse_time(dt.date(2026, 11, 29)) == now.replace(hour=0)
    with pytest.raises(ValueError, match="not a time"):
        parse_time("yesterday-ish")


# --- the OTLP/JSON fixtures ----------------------------------------------------------------


def test_fixtures_round_trip_through_the_lake(fixtures_lake: Path) -> None:
    with aftershock.open(fixtures_lake) as lake:
        got = lake.sql("select service_name, count(*) as n from spans group by 1")
        assert dict(got.iter_rows()) == fixture_spans()
        # Hex ids survive, lowercased, and the Jaeger fixture's ERROR spans are ERROR.
        errors = lake.sql("select span_id from spans where status_code = 'ERROR' order by 1")[
            "span_id"
        ].to_list()
        assert errors == ["0000000000000002", "0000000000000003", "0000000000000004",
                          "0000000000000005"]  # fmt: skip
        kinds = lake.spans(service="service-x").select("span_kind").collect()
        assert sorted(kinds["span_kind"]) == ["CLIENT", "CONSUMER", "PRODUCER", "SERVER"]


def test_fixture_logs_join_the_span_they_were_written_in(fixtures_lake: Path) -> None:
    records = json.loads((FIXTURES / "logs.json").read_text())["resourceLogs"][0]
    n = len(records["scopeLogs"][0]["logRecords"])
    with aftershock.open(fixtures_lake) as lake:
        assert lake.logs(service="my.service").collect().height == n
        joined = lake.sql(
            "select l.body, l.severity_text, l.log_attributes['int.attribute'] as i,"
            " s.span_name from logs l join spans s using (trace_id, span_id)"
        )
    assert joined.row(0) == ("Example log record", "Information", "10", "I'm a server span")


def test_fixture_trace_without_parent_ids_is_a_forest(fixtures_lake: Path) -> None:
    with aftershock.open(fixtures_lake) as lake:
        trace = lake.trace("00000000000000000000000000000011")
    # Jaeger's example trace lost its references in conversion: five roots, three services.
    assert len(trace) == 5 and len(trace.roots) == 5
    assert {s.service_name for s in trace.spans} == {
        "example-service-1",
        "example-service-2",
        "example-service-3",
    }
    assert all(s.depth == 0 and s.self_time_ns == s.duration_ns for s in trace.spans)
    assert trace.error_origin is None


def test_fixture_orphans_are_roots_and_errors_originate_in_them(fixtures_lake: Path) -> None:
    with aftershock.open(fixtures_lake) as lake:
        # Upper case in, as OTLP JSON writes it: ids are matched lowercased.
        trace = lake.trace("00000000000000010000000000000000".upper())
        upstream = lake.trace("5b8efff798038103d269b633813fc60c")
    # Both spans' parents (…03, …11) are not in the trace: two roots, both ERROR, and the
    # error origin is the earliest of the two deepest ERROR spans.
    assert [s.span_id for s in trace.roots] == ["0000000000000002", "0000000000000004"]
    assert trace.error_origin is not None and trace.error_origin.span_id == "0000000000000002"
    assert trace.span("0000000000000002").error_origin
    assert upstream.roots[0].span_name == "I'm a server span"
    assert upstream.roots[0].attributes == {"my.span.attr": "some value"}
    assert upstream.roots[0].duration_ns == 1_000_000_000


# --- trace trees ---------------------------------------------------------------------------


def test_trace_tree_of_a_healthy_trace(lake: Lake, shop: tuple[Path, list[TraceTruth]]) -> None:
    truth = next(t for t in shop[1] if t.failure is None)
    trace = lake.trace(truth.trace_id)
    assert len(trace) == SPANS_PER_TRACE
    (root,) = trace.roots
    assert (root.service_name, root.span_name, root.depth) == ("frontend", "GET /checkout", 0)
    depth = {(s.service_name, s.span_name): s.depth for s in trace.spans}
    assert depth == {
        ("frontend", "GET /checkout"): 0,
        ("frontend", "POST checkout/PlaceOrder"): 1,
        ("checkout", "PlaceOrder"): 2,
        ("checkout", "POST payment/Charge"): 3,
        ("payment", "Charge"): 4,
        ("payment", "INSERT charges"): 5,
        ("checkout", "POST inventory/Reserve"): 3,
        ("inventory", "Reserve"): 4,
        ("inventory", "SELECT stock"): 5,
    }
    # Depth-first order: a parent before its children, siblings by start time.
    seen: set[str] = set()
    for s in trace.spans:
        assert s.parent_span_id is None or s.parent_span_id in seen
        seen.add(s.span_id)
    order = trace.span(truth.span_ids[("checkout", "PlaceOrder")])
    assert [c.span_name for c in order.children] == [
        "POST payment/Charge",
        "POST inventory/Reserve",
    ]
    # PlaceOrder runs 34 ms; its calls cover 20 ms and 10 ms of it.
    assert order.self_time_ns == 4 * MS
    assert root.self_time_ns == root.duration_ns - 36 * MS
    assert trace.span(truth.span_ids[("inventory", "SELECT stock")]).self_time_ns == 5 * MS
    assert trace.error_origin is None
    df = trace.to_polars()
    assert df.columns[:3] == ["span_id", "parent_span_id", "depth"]
    assert df["self_time_ns"].sum() == root.duration_ns  # self times partition the root
    assert df.filter(pl.col("span_name") == "PlaceOrder")["children"].item() == 2
    assert "PlaceOrder" in trace.render()


@pytest.mark.parametrize("failure", ["db_timeout", "declined", "out_of_stock"])
def test_error_originates_in_the_deepest_error_span(
    lake: Lake, shop: tuple[Path, list[TraceTruth]], failure: str
) -> None:
    truths = [t for t in shop[1] if t.failure == failure]
    assert truths
    for truth in truths[:3]:
        trace = lake.trace(truth.trace_id)
        assert trace.error_origin is not None
        assert trace.error_origin.span_id == truth.origin_span_id
        assert [s.span_id for s in trace.spans if s.error_origin] == [truth.origin_span_id]
        # The error propagated: the root is ERROR too, but it is not the origin.
        assert trace.roots[0].is_error and not trace.roots[0].error_origin


def test_build_trace_handles_overlaps_cycles_and_duplicates() -> None:
    def node(sid: str, parent: str | None, start: int, dur: int, status: str = "UNSET") -> Any:
        return SpanNode(sid, parent, "svc", sid, "INTERNAL", start, dur, status, None, {})

    trace = build_trace(
        "t",
        [
            node("a", None, 0, 100),
            node("b", "a", 10, 50),
            node("c", "a", 40, 40, "ERROR"),  # overlaps b: 10..80 covered once
            node("c", "a", 40, 40),  # a duplicate span id: the first one counts
            node("x", "y", 500, 5),
            node("y", "x", 501, 5),  # x and y are each other's parent
        ],
    )
    assert trace.span("a").self_time_ns == 30
    assert trace.error_origin is not None and trace.error_origin.span_id == "c"
    assert len(trace) == 5 and {s.span_id for s in trace.roots} >= {"a"}
    assert {s.span_id for s in trace.spans} == {"a", "b", "c", "x", "y"}


def test_unknown_trace(lake: Lake) -> None:
    with pytest.raises(TraceNotFoundError, match="ffff"):
        lake.trace("ffff0000ffff0000ffff0000ffff0000")


# --- service map, latency, frames ----------------------------------------------------------


def test_service_map_edges(lake: Lake, shop: tuple[Path, list[TraceTruth]]) -> None:
    edges = lake.service_map()
    got = {(r["caller"], r["callee"]): r for r in edges.iter_rows(named=True)}
    assert set(got) == EDGES
    n = len(shop[1])
    failing = Counter(t.failure for t in shop[1])
    assert all(r["calls"] == n for r in got.values())
    assert got[("frontend", "checkout")]["errors"] == n - failing[None]
    assert got[("checkout", "payment")]["errors"] == failing["db_timeout"] + failing["declined"]
    assert got[("checkout", "inventory")]["errors"] == failing["out_of_stock"]
    # Every payment Charge server span lasts 18 ms: its p95 is exactly that.
    assert got[("checkout", "payment")]["p95_ns"] == 18 * MS
    assert got[("frontend", "checkout")]["error_rate"] == pytest.approx((n - failing[None]) / n)
    # A window holding only the second day.
    day2 = lake.service_map(since=DAY2 - dt.timedelta(minutes=1))
    assert set(day2["calls"]) == {TRACES_PER_DAY}


def test_latency_from_rollup_sketches(lake: Lake) -> None:
    lat = lake.latency(service="checkout", by=("service_version", "span_name"))
    row = lat.filter(
        (pl.col("service_version") == "2.3.0") & (pl.col("span_name") == "PlaceOrder")
    ).row(0, named=True)
    assert row["calls"] == 2 * TRACES_PER_DAY * 3 // 4
    # All PlaceOrder spans last 34 ms: the sketch answers within 1%.
    for q in ("p50_ns", "p95_ns", "p99_ns"):
        assert row[q] == pytest.approx(34 * MS, rel=0.01)
    # The same numbers as the SQL macro gives.
    sql = lake.sql(
        "select service_version, span_name, sketch_quantile(list(latency_sketch), 0.95) as p95"
        " from rollups where service_name = 'checkout' group by all order by all"
    )
    assert sql["p95"].to_list() == lat["p95_ns"].to_list()
    by_minute = lake.latency(by=("minute",), quantiles=(0.999,), since=DAY2)
    assert by_minute.columns == ["minute", "calls", "errors", "p99.9_ns"]
    assert by_minute["calls"].sum() == TRACES_PER_DAY * SPANS_PER_TRACE
    with pytest.raises(ValueError, match="cannot group"):
        lake.latency(by=("nope; drop table x",))


def test_frames_filter_by_service_and_time(lake: Lake) -> None:
    spans = lake.spans(service="payment").collect()
    assert spans.height == 2 * 2 * TRACES_PER_DAY
    assert set(spans["service_name"]) == {"payment"}
    both = lake.spans(service=["payment", "inventory"], since=DAY2).collect()
    assert both.height == 4 * TRACES_PER_DAY
    assert both["start_time"].min() >= DAY2
    first_half = lake.spans(since=DAY1, until=DAY1 + dt.timedelta(minutes=30)).collect()
    assert first_half.height == SPANS_PER_TRACE * 60
    assert lake.rollups(service="frontend").select(pl.col("calls").sum()).collect().item() == (
        2 * 2 * TRACES_PER_DAY
    )
    assert lake.logs().collect().height == 0
    schema = lake.spans().collect_schema()
    assert schema["start_time"] == pl.Datetime("ns", "UTC")
    assert schema["day"] == pl.Date


# --- pruning: files read ---------------------------------------------------------------------


def scan_counts(con: duckdb.DuckDBPyConnection, query: str) -> tuple[int, int]:
    """(files scanned, row groups scanned) of the table scan, from EXPLAIN ANALYZE."""
    plan = con.execute("explain analyze " + query).fetchall()[0][1]
    files = re.search(r"Total Files Read: (\d+)", plan)
    groups = re.search(r"Row Groups Scanned: (\d+) / (\d+)", plan)
    return (int(files[1]) if files else 0, int(groups[1]) if groups else 0)


def test_time_windows_prune_partitions_and_files(
    lake: Lake, shop: tuple[Path, list[TraceTruth]]
) -> None:
    all_files = DeltaTable(str(shop[0] / "spans")).file_uris()
    assert len(all_files) == 8
    day2_files = [f for f in all_files if "day=2026-11-28" in f]
    assert len(day2_files) == 4
    # The day partition alone.
    assert sorted(lake.files("spans", since=DAY2 - dt.timedelta(hours=3))) == sorted(day2_files)
    # Within a day, the start_time range the Delta log records per file: each flush holds a
    # quarter hour of traces, so the last 10 minutes of day 2 are in its last file only.
    last = lake.files("spans", since=DAY2 + dt.timedelta(minutes=50))
    assert len(last) == 1 and last[0] in day2_files
    assert len(lake.files("spans", until=DAY1 + dt.timedelta(minutes=10))) == 1
    # SQL with a window: the views are built on those files only, and DuckDB opens no other.
    n = lake.sql("select count(*) as n from spans", since=DAY2 + dt.timedelta(minutes=50))
    assert n["n"].item() == SPANS_PER_TRACE * 20
    assert lake.files_read["spans"] == last
    con = lake.duckdb(since=DAY2 + dt.timedelta(minutes=50))
    assert scan_counts(con, "select count(*) from spans")[0] == 1


def test_sql_filters_on_day_and_time_prune_files_and_row_groups(lake: Lake) -> None:
    con = lake.duckdb()
    files_all, _ = scan_counts(con, "select count(*) from spans where duration_ns > 0")
    assert files_all == 8
    # A filter on the partition column: DuckDB skips the other day's files unopened.
    files_day, _ = scan_counts(
        con, "select count(*) from spans where day = DATE '2026-11-28' and duration_ns > 0"
    )
    assert files_day == 4
    # A start_time filter: footers are read, but row groups outside the range are skipped.
    _, groups = scan_counts(
        con,
        f"select count(*) from spans where start_time >= TIMESTAMPTZ "
        f"'{(DAY2 + dt.timedelta(minutes=50)).isoformat()}'",
    )
    assert groups == 1


def test_pruning_after_compaction(tmp_path: Path) -> None:
    # Compaction records nanosecond statistics (the writer milliseconds); times here are not
    # whole microseconds.
    with LakeWriter(tmp_path, background=False, durability="os") as w:
        for day in (DAY1, DAY2):
            for part in range(3):
                payload, _ = shop_request(part * 10, 10, ns(day) + 123, SPACING, seed=day.day)
                w.ingest_traces(payload)
                w.flush()
    assert compact_table(DeltaTable(str(tmp_path / "spans")), min_files=2) == 6
    with aftershock.open(tmp_path) as lake:
        (day2,) = lake.files("spans", since=DAY2)
        assert "day=2026-11-28" in day2
        assert lake.files("spans", since=DAY2 + dt.timedelta(hours=2)) == []
        got = lake.spans(since=DAY2 + dt.timedelta(minutes=10)).collect().height
        assert got == SPANS_PER_TRACE * 10


def test_trace_reads_only_files_whose_trace_id_range_holds_it(
    lake: Lake, shop: tuple[Path, list[TraceTruth]]
) -> None:
    # Each file holds 30 random trace ids; the smallest id of the lake is below the recorded
    # trace_id range of every file but its own.
    lowest = min(t.trace_id for t in shop[1])
    assert len(lake.trace(lowest)) == SPANS_PER_TRACE
    (read,) = lake.files_read["spans"]
    con = duckdb.connect()
    assert con.execute(
        "select count(*) from read_parquet($f) where trace_id = $id", {"f": [read], "id": lowest}
    ).fetchone() == (SPANS_PER_TRACE,)


# --- snapshots -----------------------------------------------------------------------------


def test_sql_sees_new_commits_and_duckdb_connections_stay_pinned(tmp_path: Path) -> None:
    with LakeWriter(tmp_path, background=False, durability="os") as w:
        w.ingest_traces(trace_request("a"))
        w.flush()
        with aftershock.open(tmp_path) as lake:
            pinned = lake.duckdb()
            assert lake.sql("select count(*) as n from spans")["n"].item() == 20
            w.ingest_traces(trace_request("b"))
            w.flush()
            assert lake.sql("select count(*) as n from spans")["n"].item() == 40
            assert pinned.execute("select count(*) from spans").fetchone() == (20,)
            lake.refresh()
            assert lake.duckdb().execute("select count(*) from spans").fetchone() == (40,)


def test_snapshots_are_exact_while_a_writer_flushes_and_compacts(tmp_path: Path) -> None:
    """A reader sees whole flushes only, never a file twice, while another thread ingests,
    flushes and compacts; a pinned connection keeps its count through all of it."""
    spans_per_request = 20
    requests_per_flush = 2
    stop = threading.Event()
    errors: list[BaseException] = []
    with LakeWriter(tmp_path, background=False, durability="os") as w:
        w.ingest_traces(trace_request("seed"))
        w.flush()
        flushes = [0]

        def write() -> None:
            try:
                i = 0
                while not stop.is_set() and flushes[0] < 40:
                    for _ in range(requests_per_flush):
                        w.ingest_traces(trace_request(f"r{i}"))
                        i += 1
                    w.flush()
                    flushes[0] += 1
                    if flushes[0] % 6 == 0:
                        compact_table(DeltaTable(str(tmp_path / "spans")), min_files=4)
            except BaseException as e:
                errors.append(e)

        writer = threading.Thread(target=write)
        with aftershock.open(tmp_path) as lake:
            pinned = lake.duckdb()
            pinned_count = pinned.execute("select count(*) from spans").fetchone()
            writer.start()
            seen, last = 0, 0
            while writer.is_alive() or seen == 0:
                df = lake.sql(
                    f"select span_attributes['{TAG}'] as tag, count(*) as n from spans group by 1"
                )
                counts = dict(df.iter_rows())
                total = sum(counts.values())
                # Whole requests only, each exactly once, and never fewer than before.
                assert all(n == spans_per_request for n in counts.values()), counts
                assert total >= last
                # Requests commit in order, two a flush: a prefix of them is visible.
                tags = {t for t in counts if t != "seed"}
                assert tags == {f"r{i}" for i in range(len(tags))}
                assert len(tags) % requests_per_flush == 0
                last, seen = total, seen + 1
            writer.join()
            stop.set()
            assert not errors, errors
            assert pinned.execute("select count(*) from spans").fetchone() == pinned_count
            final = lake.sql("select count(*) as n from spans")["n"].item()
            assert final == spans_per_request * (1 + requests_per_flush * flushes[0])
            assert seen > 3
    versions = DeltaTable(str(tmp_path / "spans")).history()
    marks = aftershock.lake.COMPACTION_COMMIT_INFO.items()
    assert any(h.items() >= marks for h in versions)
