"""Synthetic telemetry with a known truth, for the deploy tests and the benchmark.

Builds DuckDB tables with the lake's schemas (``spans``, ``rollups``, ``markers``,
``logs``) directly from counts: per minute a Poisson number of calls, a binomial number of
errors and log-normal latencies folded into the rollup sketch. Only error spans and one span
per instance and minute are written as spans unless ``full_spans`` asks for every call, so
millions of calls stay cheap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from aftershock.lake import table_schema

MINUTE_NS = 60_000_000_000
GAMMA = 1.01 / 0.99


def _schema(table: str) -> pa.Schema:
    schema = table_schema(table)
    return schema.remove(schema.get_field_index("day"))


@dataclass
class Synthetic:
    """Accumulates rows; ``install(con)`` creates the tables."""

    t0: int = 1_795_000_020 * 1_000_000_000  # 2026-11-18T11:07:00Z
    seed: int = 0
    spans: list[dict[str, Any]] = field(default_factory=list)
    rollups: list[dict[str, Any]] = field(default_factory=list)
    markers: list[dict[str, Any]] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self._ids = 0

    def _id(self, n: int) -> str:
        self._ids += 1
        return f"{self._ids:0{n}x}"

    def minute(self, m: float) -> int:
        """Event time (ns) of minute ``m`` of the scenario."""
        return self.t0 + int(m * MINUTE_NS)

    def _span(self, **kw: Any) -> dict[str, Any]:
        row: dict[str, Any] = {
            "trace_id": self._id(32),
            "span_id": self._id(16),
            "parent_span_id": None,
            "trace_state": None,
            "span_kind": "SERVER",
            "duration_ns": 1_000_000,
            "status_code": "UNSET",
            "status_message": None,
            "service_instance_id": None,
            "deployment_environment": "prod",
            "resource_attributes": [],
            "scope_name": None,
            "scope_version": None,
            "span_attributes": [],
            "events": [],
            "links": [],
        }
        row.update(kw)
        row["end_time"] = row["start_time"] + row["duration_ns"]
        return row

    def traffic(
        self,
        service: str,
        version: str,
        minutes: range,
        calls_per_minute: float,
        error_rate: float = 0.0,
        latency_ms: float = 50.0,
        latency_sigma: float = 0.5,
        instance: str | None = None,
        span_name: str = "GET /",
        environment: str | None = "prod",
        error_type: str = "Boom",
        error_origin: str | None = None,
        attributes: dict[str, list[str]] | None = None,
        error_attributes: dict[str, str] | None = None,
        full_spans: bool = False,
    ) -> None:
        """Entry-span traffic of one instance of ``service`` at ``version``.

        ``error_origin`` names a downstream service whose span fails first in each error's
        trace; ``attributes`` gives each call a random value per key, and
        ``error_attributes`` fixes the values that failed calls carry.
        """
        instance = instance or f"{service}-{version}-0"
        gamma_log = math.log(GAMMA)
        for m in minutes:
            t = self.minute(m)
            n = int(self.rng.poisson(calls_per_minute))
            e = int(self.rng.binomial(n, error_rate)) if n else 0
            durations = np.maximum(
                1, self.rng.lognormal(math.log(latency_ms * 1e6), latency_sigma, n)
            ).astype(np.int64)
            if n:
                buckets = np.ceil(np.log(durations) / gamma_log).astype(np.int64)
                b, c = np.unique(buckets, return_counts=True)
                self.rollups.append(
                    {
                        "minute": t,
                        "service_name": service,
                        "service_version": version,
                        "deployment_environment": environment,
                        "span_name": span_name,
                        "span_kind": "SERVER",
                        "calls": n,
                        "errors": e,
                        "duration_sum_ns": int(durations.sum()),
                        "duration_min_ns": int(durations.min()),
                        "duration_max_ns": int(durations.max()),
                        "latency_sketch": [
                            {"bucket": int(x), "count": int(y)} for x, y in zip(b, c, strict=True)
                        ],
                        "p50_ns": None,
                        "p95_ns": None,
                        "p99_ns": None,
                    }
                )
            common = {
                "service_name": service,
                "service_version": version,
                "service_instance_id": instance,
                "deployment_environment": environment,
                "span_name": span_name,
            }
            offsets = np.sort(self.rng.integers(0, MINUTE_NS, max(n, 1)))
            written = range(n) if full_spans else range(min(e, n))
            if not full_spans:
                # One healthy span per instance and minute, so detection sees the instance.
                self.spans.append(self._span(start_time=t, **common))
            for i in range(n if full_spans else 0):
                if i < e:
                    continue
                pairs = [(k, str(self.rng.choice(v))) for k, v in (attributes or {}).items()]
                self.spans.append(
                    self._span(
                        start_time=t + int(offsets[i]),
                        duration_ns=int(durations[i]),
                        span_attributes=pairs,
                        **common,
                    )
                )
            for i in written:
                if i >= e:
                    break
                attrs = {k: str(self.rng.choice(v)) for k, v in (attributes or {}).items()}
                attrs.update(error_attributes or {})
                start = t + int(offsets[i])
                row = self._span(
                    start_time=start,
                    duration_ns=int(durations[i]),
                    status_code="ERROR",
                    status_message=f"{error_type} for order {self.rng.integers(1_000_000)}",
                    span_attributes=list(attrs.items()),
                    events=[
                        {
                            "time": start,
                            "name": "exception",
                            "attributes": [("exception.type", error_type)],
                        }
                    ],
                    **common,
                )
                self.spans.append(row)
                if error_origin is not None:
                    client = self._span(
                        trace_id=row["trace_id"],
                        parent_span_id=row["span_id"],
                        start_time=start,
                        span_kind="CLIENT",
                        status_code="ERROR",
                        **(common | {"span_name": f"call {error_origin}"}),
                    )
                    server = self._span(
                        trace_id=row["trace_id"],
                        parent_span_id=client["span_id"],
                        start_time=start,
                        status_code="ERROR",
                        status_message="upstream connect error",
                        service_name=error_origin,
                        service_version="1.0",
                        service_instance_id=f"{error_origin}-0",
                        deployment_environment=environment,
                        span_name="Handle",
                    )
                    self.spans.extend([client, server])

    def marker(self, service: str, version: str, minute: float, environment: str = "prod") -> None:
        """An explicit deploy marker at ``minute``."""
        t = self.minute(minute)
        self.markers.append(
            {
                "time": t,
                "service_name": service,
                "service_version": version,
                "deployment_environment": environment,
                "source": "marker",
                "recorded_at": t,
                "attributes": [],
            }
        )

    def tables(self) -> dict[str, pa.Table]:
        """The accumulated rows as Arrow tables with the lake's schemas."""
        out = {}
        for name in ("spans", "rollups", "markers", "logs"):
            schema = _schema(name)
            rows = getattr(self, name)
            out[name] = pa.Table.from_pylist(rows, schema=schema)
        return out

    def install(self, con: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyConnection:
        """Creates the four tables in ``con`` (a new in-memory connection by default)."""
        con = con or duckdb.connect()
        for name, table in self.tables().items():
            con.register(f"_{name}_arrow", table)
            con.execute(f"create or replace table {name} as select * from _{name}_arrow")
            con.unregister(f"_{name}_arrow")
        return con
