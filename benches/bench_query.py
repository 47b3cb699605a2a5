"""Analyst queries through aftershock (`Lake.sql`, `Lake.trace`) against plain DuckDB.

Builds a lake of `--spans` generated shop spans (default 10 million; nine-span checkout traces
across frontend, checkout, payment and inventory, a tenth of them failing downstream, over the
last two days) through the real writer path: `LakeWriter` (durability "os"), a flush every
`--flush-spans` spans, then compaction of every table as the writer's maintenance thread does
it. The Parquet files therefore have the writer's sort order, row groups and `trace_id` bloom
filters. The lake is kept in `--data` and reused when it already holds that many spans.

Generating 10 million spans with protobuf objects in Python would take minutes, so one request
of 1000 traces is built with `tests/shop_traces.py` and then copied with new random trace ids
and timestamps shifted by the request's place in time: the bytes are patched at the offsets of
the `trace_id` and time fields, found once by walking the protobuf wire format.

Then it times each query four ways, taking turns: `Lake.sql` (refresh of the Delta snapshot,
views, result as a Polars DataFrame) against plain DuckDB's `.pl()`, and `Lake.arrow` against
`.to_arrow_table()`, plain DuckDB being a connection with views over `read_parquet` of the same
files. It prints best and median times and, per pair, the median of the back-to-back ratios;
and `Lake.trace` (the span tree). Targets (issue 5): aftershock within 1.2x of plain DuckDB on
every query; one trace by id under 100 ms.

Run: ``python benches/bench_query.py`` (``--spans 1000000`` for a shorter run).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import numpy as np
from deltalake import DeltaTable

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests")]

from shop_traces import SPANS_PER_TRACE, shop_request  # noqa: E402

import aftershock  # noqa: E402
from aftershock import _core  # noqa: E402
from aftershock.lake import TABLES, LakeWriter, compact_table  # noqa: E402

TEMPLATE_TRACES = 1000
TARGET_RATIO = 1.2
TARGET_TRACE_S = 0.100
QUERIES = {
    "error rate by service, version, minute": """
        SELECT service_name, service_version, date_trunc('minute', start_time) AS minute,
               count(*) AS calls, count_if(status_code = 'ERROR') AS errors,
               errors / calls AS error_rate
        FROM spans GROUP BY ALL ORDER BY ALL""",
    "p99 by span name (rollup sketches)": """
        SELECT service_name, span_name, sum(calls) AS calls,
               sketch_quantile(list(latency_sketch), 0.99) AS p99_ns
        FROM rollups GROUP BY ALL ORDER BY p99_ns DESC""",
    "one trace by id": "SELECT * FROM spans WHERE trace_id = '{trace_id}' ORDER BY start_time",
    "top error messages": """
        SELECT service_name, status_message, count(*) AS n
        FROM spans WHERE status_code = 'ERROR' AND status_message IS NOT NULL
        GROUP BY ALL ORDER BY n DESC LIMIT 10""",
}


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, payload start, payload end) of each field in buf[start:end]."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, nxt = _varint(buf, pos)
        elif wire == 1:
            nxt = pos + 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            nxt = pos + size
        elif wire == 5:
            nxt = pos + 4
        else:
            raise ValueError(f"unexpected wire type {wire}")
        yield field, wire, pos, nxt
        pos = nxt


def patch_offsets(request: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Offsets in a serialized ExportTraceServiceRequest of every span's trace_id (with the
    index of its trace, in order of first appearance) and of every fixed64 time field
    (span start/end, event time)."""
    id_offsets, id_trace, time_offsets = [], [], []
    traces: dict[bytes, int] = {}
    for f, _, a, b in _fields(request, 0, len(request)):
        if f != 1:
            continue
        for f2, _, a2, b2 in _fields(request, a, b):  # ResourceSpans
            if f2 != 2:
                continue
            for f3, _, a3, b3 in _fields(request, a2, b2):  # ScopeSpans
                if f3 != 2:
                    continue
                for f4, _, a4, b4 in _fields(request, a3, b3):  # Span
                    if f4 == 1:
                        id_offsets.append(a4)
                        id_trace.append(traces.setdefault(request[a4:b4], len(traces)))
                    elif f4 in (7, 8):
                        time_offsets.append(a4)
                    elif f4 == 11:  # Event: time_unix_nano is field 1
                        time_offsets += [a5 for f5, _, a5, _ in _fields(request, a4, b4) if f5 == 1]
    return np.array(id_offsets), np.array(id_trace), np.array(time_offsets)


def requests(total_spans: int, end_ns: int, window_ns: int) -> Iterator[tuple[bytes, list[str]]]:
    """Distinct requests of TEMPLATE_TRACES traces each, evenly over ``window_ns`` before
    ``end_ns``; yields each with its trace ids."""
    n_traces = total_spans // SPANS_PER_TRACE
    spacing = window_ns // n_traces
    start = end_ns - window_ns
    template, _ = shop_request(0, TEMPLATE_TRACES, start, spacing, seed=1)
    id_off, id_trace, time_off = patch_offsets(template)
    id_idx = id_off[:, None] + np.arange(16)
    time_idx = time_off[:, None] + np.arange(8)
    base_times = np.frombuffer(template, np.uint8)[time_idx].copy().view("<u8")
    rng = np.random.default_rng(42)
    for batch in range(-(-n_traces // TEMPLATE_TRACES)):
        buf = np.frombuffer(template, np.uint8).copy()
        ids = rng.integers(0, 256, (TEMPLATE_TRACES, 16), dtype=np.uint8)
        buf[id_idx] = ids[id_trace]
        shifted = base_times + np.uint64(batch * TEMPLATE_TRACES * spacing)
        buf[time_idx] = shifted.view(np.uint8).reshape(-1, 8)
        yield buf.tobytes(), [bytes(r).hex() for r in ids]


def build_lake(data: Path, spans: int, flush_spans: int) -> str:
    """Writes the lake; returns a trace id from the middle of it."""
    shutil.rmtree(data, ignore_errors=True)
    end = time.time_ns() - 3600 * 10**9
    per_request = TEMPLATE_TRACES * SPANS_PER_TRACE
    flush_every = max(1, flush_spans // per_request)
    middle = ""
    start = time.perf_counter()
    with LakeWriter(data, durability="os", background=False) as writer:
        for i, (payload, ids) in enumerate(requests(spans, end, 2 * 86400 * 10**9)):
            writer.ingest_traces(payload)
            if (i + 1) % flush_every == 0:
                writer.flush()
            if i * per_request <= spans // 2 < (i + 1) * per_request:
                middle = ids[len(ids) // 2]
    written = time.perf_counter() - start
    for table in TABLES:
        compact_table(DeltaTable(str(data / table)))
    (data / "bench-spans").write_text(f"{spans} {middle}\n")
    print(
        f"built the lake: {spans:,} spans in {written:.0f} s ({spans / written:,.0f} spans/s),"
        f" compacted in {time.perf_counter() - start - written:.0f} s"
    )
    return middle


def plain_duckdb(data: Path) -> duckdb.DuckDBPyConnection:
    """What a DuckDB user writes by hand: views over read_parquet of the snapshot's files."""
    con = duckdb.connect()
    con.execute(_core.ROLLUP_SQL_MACROS)
    for table in ("spans", "rollups"):
        files = DeltaTable(str(data / table)).file_uris()
        listing = ", ".join(f"'{f}'" for f in files)
        con.execute(
            f"CREATE VIEW {table} AS SELECT * FROM read_parquet([{listing}],"
            " hive_partitioning = true)"
        )
    return con


def paired_ratio(ours: list[float], theirs: list[float]) -> float:
    """The median over repetitions of ours/theirs, each pair timed back to back, so that
    load from other processes (this is a shared machine) hits both sides of a ratio alike."""
    return statistics.median(a / b for a, b in zip(ours, theirs, strict=True))


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    """Builds or reuses the lake, times the queries both ways, prints the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--spans", type=int, default=10_000_000)
    p.add_argument("--flush-spans", type=int, default=200_000, help="spans per flush")
    p.add_argument("--data", type=Path, default=Path("/tmp/aftershock-bench-query"))
    p.add_argument("--reps", type=int, default=7)
    args = p.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    marker = args.data / "bench-spans"
    if marker.exists() and int(marker.read_text().split()[0]) == args.spans:
        trace_id = marker.read_text().split()[1]
        print(f"reusing the lake in {args.data}")
    else:
        trace_id = build_lake(args.data, args.spans, args.flush_spans)
    for table in ("spans", "rollups"):
        files = DeltaTable(str(args.data / table)).file_uris()
        size = sum(os.path.getsize(f) for f in files)
        print(f"{table}: {len(files)} files, {size / 2**20:.0f} MiB")

    lake = aftershock.open(args.data)
    plain = plain_duckdb(args.data)
    # Two pairs per query, run in turns: results as Polars (Lake.sql against DuckDB's .pl())
    # and as Arrow (Lake.arrow against .to_arrow_table()).
    paths: list[tuple[str, Callable[[str], object]]] = [
        ("Lake.sql", lake.sql),
        ("duckdb .pl()", lambda q: plain.sql(q).pl()),
        ("Lake.arrow", lake.arrow),
        ("duckdb arrow", lambda q: plain.sql(q).to_arrow_table()),
    ]
    results: dict[str, list[list[float]]] = {}
    for name, sql in QUERIES.items():
        q = sql.format(trace_id=trace_id)
        sizes = {len(run(q)) for _, run in paths}  # warm caches, and the same answer size
        assert len(sizes) == 1, (name, sizes)
        times: list[list[float]] = [[] for _ in paths]
        for _ in range(args.reps):
            for i, (_, run) in enumerate(paths):
                times[i].append(timed(lambda run=run, q=q: run(q)))
        results[name] = times
    tree = [timed(lambda: lake.trace(trace_id)) for _ in range(args.reps)]
    assert len(lake.trace(trace_id)) == SPANS_PER_TRACE

    print(f"\n{args.spans:,} spans, best (median) of {args.reps} runs, milliseconds")
    head = f"{'query':40}" + "".join(f"{p:>18}" for p, _ in paths) + f"{'ratio pl':>10}{'arrow':>7}"
    print(head)
    print("-" * len(head))
    ratios: dict[str, float] = {}
    for name, times in results.items():
        cells = "".join(f"{min(t) * 1e3:9.1f} ({statistics.median(t) * 1e3:6.1f})" for t in times)
        pl_ratio, arrow_ratio = paired_ratio(times[0], times[1]), paired_ratio(times[2], times[3])
        ratios[name] = max(pl_ratio, arrow_ratio)
        print(f"{name:40}{cells}{pl_ratio:10.2f}{arrow_ratio:7.2f}")
    tree_ms = f"{min(tree) * 1e3:9.1f} ({statistics.median(tree) * 1e3:6.1f})"
    print(f"{'Lake.trace (tree built)':40}{tree_ms}")
    print("\ntargets (median of paired ratios, the worse of the two pairs):")
    for name, ratio in ratios.items():
        verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
        print(f"  {name}: {ratio:.2f}x plain DuckDB -> {verdict} (<= {TARGET_RATIO}x)")
    by_id = max(min(results["one trace by id"][0]), min(tree))
    verdict = "met" if by_id < TARGET_TRACE_S else "NOT met"
    print(f"  one trace by id: {by_id * 1e3:.0f} ms -> {verdict} (< {TARGET_TRACE_S * 1e3:.0f} ms)")


if __name__ == "__main__":
    main()
