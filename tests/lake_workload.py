"""Deterministic OTLP requests for lake tests: each request is tagged so that tests can
count, per request, how many of its rows reached the tables."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import duckdb
from deltalake import DeltaTable
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

#: The span/log attribute carrying the request tag.
TAG = "test.request"
BASE_NS = 1_764_400_000_000_000_000  # 2025-11-29T07:06:40Z


def _id(tag: str, i: int, n: int) -> bytes:
    return hashlib.blake2b(f"{tag}/{i}".encode(), digest_size=n).digest()


def trace_request(tag: str, spans: int = 20, services: int = 2) -> bytes:
    """An export request of ``spans`` spans, all carrying attribute ``TAG = tag``."""
    req = ExportTraceServiceRequest()
    for s in range(services):
        rs = req.resource_spans.add()
        rs.resource.attributes.extend(
            [
                KeyValue(key="service.name", value=AnyValue(string_value=f"svc-{s}")),
                KeyValue(key="service.version", value=AnyValue(string_value="1.0.0")),
            ]
        )
        scope = rs.scope_spans.add()
        scope.scope.name = "lake-tests"
        for i in range(s, spans, services):
            span = scope.spans.add(
                trace_id=_id(tag, i // 5, 16),
                span_id=_id(tag, i, 8),
                name=f"op-{i % 3}",
                kind=2,
                start_time_unix_nano=BASE_NS + i * 1_000_000,
                end_time_unix_nano=BASE_NS + i * 1_000_000 + 250_000 * (i % 7 + 1),
            )
            span.status.code = 2 if i % 10 == 0 else 0
            span.attributes.append(KeyValue(key=TAG, value=AnyValue(string_value=tag)))
    return req.SerializeToString()


def logs_request(tag: str, records: int = 10) -> bytes:
    """An export request of ``records`` log records, all carrying attribute ``TAG = tag``."""
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value="svc-logs"))
    )
    scope = rl.scope_logs.add()
    for i in range(records):
        rec = scope.log_records.add(time_unix_nano=BASE_NS + i, severity_number=9)
        rec.body.string_value = f"record {i} of {tag}"
        rec.attributes.append(KeyValue(key=TAG, value=AnyValue(string_value=tag)))
    return req.SerializeToString()


def files(data_dir: Path, table: str) -> list[str]:
    """The data files of ``table``'s current Delta snapshot."""
    return list(DeltaTable(str(data_dir / table)).file_uris())


def tag_counts(data_dir: Path, table: str) -> Counter[str]:
    """Rows per request tag in ``table`` (spans or logs)."""
    uris = files(data_dir, table)
    if not uris:
        return Counter()
    column = "span_attributes" if table == "spans" else "log_attributes"
    rows = duckdb.sql(
        f"select {column}['{TAG}'] as tag, count(*) from read_parquet($files) group by 1",
        params={"files": uris},
    ).fetchall()
    return Counter({tag: n for tag, n in rows})


def rollup_calls(data_dir: Path) -> int:
    """Total calls over all rollup rows."""
    uris = files(data_dir, "rollups")
    if not uris:
        return 0
    [(calls,)] = duckdb.sql(
        "select coalesce(sum(calls), 0) from read_parquet($files)", params={"files": uris}
    ).fetchall()
    return int(calls)
