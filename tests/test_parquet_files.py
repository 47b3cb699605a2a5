"""Parquet data files from rust/core/src/parquet_files.rs as a Delta Lake table.

The Rust writer runs as the `write_parquet` example (built here with cargo), so this needs no
Python bindings for it: the files it writes are committed with the `deltalake` package,
exactly as the lake does, and read back with DuckDB. `realistic_request` is also the payload
behind the bytes-per-span figure in rust/core/src/parquet_files.rs.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, Schema
from deltalake.transaction import AddAction, create_table_with_add_actions
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

ROOT = Path(__file__).resolve().parents[1]

#: 2024-02-29T20:00:00Z: four hours before the end of a leap day.
T0 = 1_709_236_800_000_000_000
SECOND = 1_000_000_000
#: Longer than Delta's 32-character statistics prefix, so its max bound is truncated.
LONG_SERVICE = "recommendation-engine-with-a-very-long-service-name"
SERVICES = ["cart", "checkout", "frontend", LONG_SERVICE]
ROUTES = ["GET /api/cart", "POST /api/cart/items", "POST /api/checkout", "GET /api/products/{id}"]


def _kv(key: str, value: str | int | bool) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def realistic_request(
    n_spans: int = 8192,
    seed: int = 7,
    start_ns: int = T0,
    window_s: int = 8 * 3600,
    services: list[str] = SERVICES,
) -> ExportTraceServiceRequest:
    """Traces of 5-10 spans (a root and its children, milliseconds apart) spread over
    `window_s` seconds, attribute values drawn from small pools as real services repeat
    them; one resource per service, spans of a service in arrival order."""
    rng = random.Random(seed)
    by_service: dict[str, list[Span]] = {s: [] for s in services}
    made = 0
    while made < n_spans:
        service = rng.choice(services)
        trace_id = rng.randbytes(16)
        start = start_ns + rng.randrange(window_s * SECOND)
        parent = b""
        for k in range(min(rng.randint(5, 10), n_spans - made)):
            span_id = rng.randbytes(8)
            route = rng.choice(ROUTES)
            status = rng.choices([200, 404, 500], weights=[90, 6, 4])[0]
            begin = start + k * rng.randrange(100_000, 2_000_000)
            duration = int(rng.lognormvariate(15.0, 1.0))
            by_service[service].append(
                Span(
                    trace_id=trace_id,
                    span_id=span_id,
                    parent_span_id=parent,
                    name=route if k == 0 else rng.choice(["SELECT orders", "redis GET", route]),
                    kind=Span.SPAN_KIND_SERVER if k == 0 else Span.SPAN_KIND_CLIENT,
                    start_time_unix_nano=begin,
                    end_time_unix_nano=begin + duration,
                    attributes=[
                        _kv("http.request.method", route.split()[0]),
                        _kv("http.route", route.split()[1]),
                        _kv("http.response.status_code", status),
                        _kv("server.address", f"{service}.shop.svc.cluster.local"),
                        _kv("network.peer.address", f"10.0.{rng.randrange(4)}.{rng.randrange(8)}"),
                        _kv("app.cache_hit", rng.random() < 0.7),
                    ],
                    status=Status(code=Status.STATUS_CODE_ERROR if status >= 500 else 0),
                )
            )
            parent = parent or span_id
            made += 1
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(
                    attributes=[
                        _kv("service.name", service),
                        _kv("service.version", "1.4.2"),
                        _kv("service.instance.id", f"{service}-6f9c"),
                        _kv("deployment.environment.name", "prod"),
                        _kv("telemetry.sdk.language", "python"),
                    ]
                ),
                scope_spans=[
                    ScopeSpans(
                        scope=InstrumentationScope(name="opentelemetry.instrumentation.flask"),
                        spans=spans,
                    )
                ],
            )
            for service, spans in by_service.items()
            if spans
        ]
    )


def spans_of(request: ExportTraceServiceRequest) -> list[tuple[str, Span]]:
    return [
        (rs.resource.attributes[0].value.string_value, span)
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    ]


def day_of(ns: int) -> str:
    return datetime.fromtimestamp(ns // SECOND, timezone.utc).strftime("%Y-%m-%d")


def iso(ns: int) -> str:
    seconds, nanos = divmod(ns, SECOND)
    return datetime.fromtimestamp(seconds, timezone.utc).strftime(f"%Y-%m-%dT%H:%M:%S.{nanos:09d}Z")


@pytest.fixture(scope="module")
def write_parquet() -> Path:
    """The example binary, built in release mode as the lake would run it."""
    if shutil.which("cargo") is None:
        pytest.skip("cargo is not installed")
    cmd = ["cargo", "build", "--release", "-p", "aftershock-core", "--example", "write_parquet"]
    subprocess.run(cmd, cwd=ROOT, check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target / "release" / "examples" / "write_parquet"


def write(
    binary: Path, request: ExportTraceServiceRequest, table_dir: Path
) -> list[dict[str, Any]]:
    payload = table_dir.parent / f"request-{os.urandom(4).hex()}.pb"
    payload.write_bytes(request.SerializeToString())
    out = subprocess.run(
        [binary, payload, table_dir], check=True, capture_output=True, text=True
    ).stdout
    return [json.loads(line) for line in out.splitlines()]


def test_files_commit_to_delta_and_read_back(write_parquet: Path, tmp_path: Path) -> None:
    table_dir = tmp_path / "spans"
    # Two flushes: 20:00-04:00 across midnight, then a later hour with a service of its own.
    first = realistic_request()
    later = realistic_request(
        n_spans=500, seed=8, start_ns=T0 + 14 * 3600 * SECOND, window_s=3600, services=["worker"]
    )
    files = write(write_parquet, first, table_dir) + write(write_parquet, later, table_dir)
    spans = spans_of(first) + spans_of(later)

    want_days = Counter(day_of(s.start_time_unix_nano) for _, s in spans)
    assert sorted(want_days) == ["2024-02-29", "2024-03-01"]
    assert [f["partition_values"] for f in files] == [
        {"day": "2024-02-29"},
        {"day": "2024-03-01"},
        {"day": "2024-03-01"},
    ]
    got_days: Counter[str] = Counter()
    for f in files:
        assert f["path"].startswith(f"day={f['partition_values']['day']}/part-")
        assert (table_dir / f["path"]).stat().st_size == f["size"]
        got_days[f["partition_values"]["day"]] += f["rows"]
        stats = json.loads(f["stats_json"])
        assert stats["numRecords"] == f["rows"]
        assert set(stats["nullCount"]) >= {"trace_id", "start_time", "service_name"}
    assert got_days == want_days
    # Nothing but the data files: no temp files left behind.
    on_disk = sorted(str(p.relative_to(table_dir)) for p in table_dir.rglob("*") if p.is_file())
    assert on_disk == sorted(f["path"] for f in files)

    # The statistics of the later flush, against the request.
    later_spans = [s for _, s in spans_of(later)]
    stats = json.loads(files[2]["stats_json"])
    starts = [s.start_time_unix_nano for s in later_spans]
    assert stats["minValues"]["start_time"] == iso(min(starts))
    assert stats["maxValues"]["start_time"] == iso(max(starts))
    assert stats["minValues"]["trace_id"] == min(s.trace_id.hex() for s in later_spans)
    assert stats["nullCount"]["parent_span_id"] == sum(not s.parent_span_id for s in later_spans)
    first_stats = json.loads(files[0]["stats_json"])
    assert first_stats["maxValues"]["service_name"] == LONG_SERVICE[:32] + "\x7f"

    # Commit as the lake does: the partition column joins the files' own schema.
    file_schema = pq.read_schema(table_dir / files[0]["path"])
    schema = Schema.from_arrow(file_schema.append(pa.field("day", pa.string())))
    actions = [
        AddAction(
            f["path"],
            f["size"],
            f["partition_values"],
            f["modification_time_ms"],
            True,
            f["stats_json"],
        )
        for f in files
    ]
    create_table_with_add_actions(str(table_dir), schema, actions, partition_by=["day"])

    dt = DeltaTable(str(table_dir))
    assert dt.version() == 0
    assert dt.metadata().partition_columns == ["day"]
    adds = pa.table(dt.get_add_actions(flatten=True))
    by_path = {f["path"]: f for f in files}
    assert sorted(adds["path"].to_pylist()) == sorted(by_path)
    # delta-rs parsed every bound, timestamps to the nanosecond.
    for i, path in enumerate(adds["path"].to_pylist()):
        stats = json.loads(by_path[path]["stats_json"])
        assert adds["num_records"][i].as_py() == stats["numRecords"]
        for side, key in (("min", "minValues"), ("max", "maxValues")):
            ns = adds[f"{side}.start_time"].cast(pa.int64())[i].as_py()
            assert iso(ns) == stats[key]["start_time"]
            assert adds[f"{side}.service_name"][i].as_py() == stats[key]["service_name"]
    # delta-rs parsed the statistics: min/max pruning keeps exactly the files that can match.
    only_worker = dt.file_uris(file_pruning_predicate="service_name = 'worker'")
    assert [Path(u).name for u in only_worker] == [Path(files[2]["path"]).name]
    long_name = dt.file_uris(file_pruning_predicate=f"service_name = '{LONG_SERVICE}'")
    assert sorted(Path(u).name for u in long_name) == sorted(
        Path(f["path"]).name for f in files[:2]
    )
    assert dt.file_uris(file_pruning_predicate="duration_ns < 0") == []

    con = duckdb.connect()
    uris = dt.file_uris()
    view = "read_parquet($uris, hive_partitioning = true)"
    per_day = con.execute(
        f"select day::varchar, count(*) from {view} group by day order by day", {"uris": uris}
    ).fetchall()
    assert per_day == sorted(want_days.items())
    assert con.execute(f"select count(*) from {view}", {"uris": uris}).fetchone() == (len(spans),)

    trace = later_spans[17].trace_id
    want = sorted(s.span_id.hex() for _, s in spans if s.trace_id == trace)
    found = con.execute(
        f"select span_id from {view} where trace_id = $t order by span_id",
        {"uris": uris, "t": trace.hex()},
    ).fetchall()
    assert [r[0] for r in found] == want
    assert 5 <= len(want) <= 10
