"""The DuckDB sketch macros (rust/core/src/rollup.sql) against exact quantiles.

Rollups are built by hand here, with buckets computed by the formula the Rust sketch
documents, so the SQL is checked without the Rust extension.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[1]
ROLLUP_RS = ROOT / "rust" / "core" / "src" / "rollup.rs"
MACROS_SQL = ROOT / "rust" / "core" / "src" / "rollup.sql"

GAMMA = 1.01 / 0.99
TOLERANCE = 0.01 + 1e-9
QS = (0.0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0)

SKETCH_TYPE = pa.list_(
    pa.field(
        "item",
        pa.struct([pa.field("bucket", pa.int32(), False), pa.field("count", pa.int64(), False)]),
        False,
    )
)

Sketch = list[dict[str, int]]


def bucket(ns: int) -> int:
    """ceil(log_gamma(ns)); durations below 1 ns count as 1 ns."""
    return math.ceil(math.log(max(ns, 1)) / math.log(GAMMA))


def sketch(durations: Iterable[int]) -> Sketch:
    counts = Counter(bucket(d) for d in durations)
    return [{"bucket": b, "count": n} for b, n in sorted(counts.items())]


def bucket_value(b: int) -> float:
    return 2 * GAMMA**b / (GAMMA + 1)


def exact_quantile(ordered: list[int], q: float) -> int:
    """The element of 0-based rank floor(q * (n - 1)) of sorted values: the sketch's rank
    rule."""
    return ordered[int(q * (len(ordered) - 1))]


def sketch_quantile(s: Sketch, q: float) -> float:
    """The rank rule as LatencySketch::quantile implements it."""
    total = sum(e["count"] for e in s)
    seen = 0
    for e in s:
        seen += e["count"]
        if seen > q * (total - 1):
            return bucket_value(e["bucket"])
    raise AssertionError("rank past the last bucket")


def distributions(rng: random.Random) -> dict[str, list[int]]:
    n = 20_000
    return {
        "uniform": [rng.randrange(1_000, 1_000_000_000) for _ in range(n)],
        "lognormal": [max(1, int(rng.lognormvariate(math.log(5e6), 2.0))) for _ in range(n)],
        "ns_to_minutes": [int(6e11 ** rng.random()) for _ in range(n)],
        "bimodal": [30_000_000_000 if i % 10 == 0 else 1_000_000 for i in range(n)],
        "constant": [42_000_000] * 1_000,
        "single": [123_456],
    }


def rollups_table(groups: dict[str, list[int]], rng: random.Random) -> pa.Table:
    """Each group's durations spread over a few minutes and two versions, one row each
    per (minute, version), as the Rust aggregator would write them."""
    rows: dict[tuple[str, int, str], list[int]] = {}
    for name, values in groups.items():
        for v in values:
            key = (name, rng.randrange(3), rng.choice(["1.0", "1.1"]))
            rows.setdefault(key, []).append(v)
    keys = sorted(rows)
    sketches = [sketch(rows[k]) for k in keys]
    return pa.table(
        {
            "minute": pa.array([k[1] * 60_000_000_000 for k in keys], pa.timestamp("ns", "UTC")),
            "service_name": [k[0] for k in keys],
            "service_version": [k[2] for k in keys],
            "deployment_environment": pa.nulls(len(keys), pa.string()),
            "span_name": ["GET /"] * len(keys),
            "span_kind": ["SERVER"] * len(keys),
            "calls": pa.array([len(rows[k]) for k in keys], pa.int64()),
            "latency_sketch": pa.array(sketches, SKETCH_TYPE),
        }
    )


@pytest.fixture(scope="module")
def data() -> dict[str, list[int]]:
    return distributions(random.Random(42))


@pytest.fixture(scope="module")
def con(data: dict[str, list[int]], tmp_path_factory: pytest.TempPathFactory):
    table = rollups_table(data, random.Random(7))
    # Through Parquet, as the lake stores it.
    path = tmp_path_factory.mktemp("lake") / "rollups.parquet"
    pq.write_table(table, path)
    c = duckdb.connect()
    c.execute(MACROS_SQL.read_text().replace("{gamma}", repr(GAMMA)))
    c.execute(f"create view rollups as select * from read_parquet('{path}')")
    yield c
    c.close()


def test_gamma_matches_the_rust_constant() -> None:
    assert "pub const SKETCH_GAMMA: f64 = 1.01 / 0.99;" in ROLLUP_RS.read_text()


def test_grouped_quantiles_are_within_one_percent(
    con: duckdb.DuckDBPyConnection, data: dict[str, list[int]]
) -> None:
    sketches = {name: sketch(values) for name, values in data.items()}
    ordered = {name: sorted(values) for name, values in data.items()}
    for q in QS:
        got = dict(
            con.execute(
                "select service_name, sketch_quantile(list(latency_sketch), ?)"
                " from rollups group by 1",
                [q],
            ).fetchall()
        )
        assert got.keys() == data.keys()
        for name in data:
            exact = exact_quantile(ordered[name], q)
            err = abs(got[name] - exact) / exact
            assert err <= TOLERANCE, (name, q, got[name], exact)
            # Bucket for bucket what the Rust sketch answers.
            assert got[name] == pytest.approx(sketch_quantile(sketches[name], q), rel=1e-12)


def test_quantiles_per_row_and_per_version(con: duckdb.DuckDBPyConnection) -> None:
    rows = con.execute(
        "select latency_sketch, sketch_quantile([latency_sketch], 0.95) from rollups"
    ).fetchall()
    for s, p95 in rows:
        assert p95 == pytest.approx(sketch_quantile(s, 0.95), rel=1e-12)
    by_version = con.execute(
        "select service_version, sketch_quantile(list(latency_sketch), 0.5),"
        " list(latency_sketch) from rollups where service_name = 'lognormal' group by 1"
    ).fetchall()
    assert len(by_version) == 2
    for _, p50, sketches in by_version:
        merged = Counter()
        for s in sketches:
            merged.update({e["bucket"]: e["count"] for e in s})
        expected = [{"bucket": b, "count": n} for b, n in sorted(merged.items())]
        assert p50 == pytest.approx(sketch_quantile(expected, 0.5), rel=1e-12)


def test_merge_sums_counts_per_bucket(
    con: duckdb.DuckDBPyConnection, data: dict[str, list[int]]
) -> None:
    merged = dict(
        con.execute(
            "select service_name, sketch_merge(list(latency_sketch)) from rollups group by 1"
        ).fetchall()
    )
    for name, values in data.items():
        assert merged[name] == sketch(values)
    column_type, merged_type = con.execute(
        "select any_value(typeof(latency_sketch)), typeof(sketch_merge(list(latency_sketch)))"
        " from rollups"
    ).fetchone()
    assert merged_type == column_type


def test_merge_is_associative(con: duckdb.DuckDBPyConnection) -> None:
    # Per minute first, then across minutes: the same as merging every row at once.
    two_step = con.execute(
        "select service_name, sketch_merge(list(m)) from ("
        "  select service_name, minute, sketch_merge(list(latency_sketch)) as m"
        "  from rollups group by all) group by 1 order by 1"
    ).fetchall()
    one_step = con.execute(
        "select service_name, sketch_merge(list(latency_sketch)) from rollups group by 1 order by 1"
    ).fetchall()
    assert two_step == one_step


def test_edge_cases_are_null(con: duckdb.DuckDBPyConnection) -> None:
    empty = "[]::STRUCT(bucket INTEGER, count BIGINT)[][]"
    assert con.execute(
        f"select sketch_quantile({empty}, 0.5), sketch_merge({empty})"
    ).fetchone() == (None, [])
    assert con.execute(
        "select sketch_quantile(list(latency_sketch), 1.5),"
        " sketch_quantile(list(latency_sketch), -0.1) from rollups"
    ).fetchone() == (None, None)


def test_zero_durations_read_below_one_nanosecond(con: duckdb.DuckDBPyConnection) -> None:
    (p50,) = con.execute(
        "select sketch_quantile([?::STRUCT(bucket INTEGER, count BIGINT)[]], 0.5)",
        [sketch([0, 0, 0])],
    ).fetchone()
    assert 0.98 < p50 < 1.0
