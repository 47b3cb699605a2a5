"""The demo's shop simulator: what it sends through the OpenTelemetry SDK lands as designed."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pytest

import aftershock
from aftershock.demo.shop import MINUTE_NS, Deploy, Fault, Incident, RunStats, Scenario, Shop
from aftershock.receiver import Receiver, ReceiverOptions

T0 = 1_795_000_020 * 1_000_000_000 - 1_795_000_020 * 1_000_000_000 % MINUTE_NS
SMALL = Scenario(
    minutes=6,
    requests_per_minute=60,
    deploys=(
        Deploy("frontend", "1.9.0", 2),
        Deploy(
            "checkout",
            "2.4.0",
            3,
            replaces=1,
            faults=(
                Fault("PlaceOrder", "KeyError", "'x'", when=(("app.payment.method", "paypal"),)),
            ),
        ),
    ),
    incidents=(Incident("payment", 4, 5, Fault("Charge", "GatewayTimeout", "upstream timed out")),),
)


def play(data: Path, seed: int, scenario: Scenario = SMALL) -> tuple[RunStats, Any]:
    """Runs ``scenario`` into a fresh receiver at ``data``; the stats and a DuckDB connection."""
    receiver = Receiver(
        data,
        ReceiverOptions(otlp_grpc="127.0.0.1:0", otlp_http=None, metrics=None, durability="os"),
    ).start()
    try:
        stats = Shop(seed, start_ns=T0).run(f"127.0.0.1:{receiver.ports['otlp_grpc']}", scenario)
    finally:
        receiver.stop()
    return stats, aftershock.open(data).duckdb()


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunStats, duckdb.DuckDBPyConnection]:
    return play(tmp_path_factory.mktemp("shop"), seed=7)


def test_every_record_sent_lands_in_the_event_time_window(played: Any) -> None:
    stats, con = played
    n_spans, n_logs, traces, first, last = con.execute(
        """select (select count(*) from spans), (select count(*) from logs),
                  (select count(distinct trace_id) from spans),
                  (select epoch_ns(min(start_time)) from spans),
                  (select epoch_ns(max(end_time)) from spans)"""
    ).fetchone()
    assert (n_spans, n_logs, traces) == (stats.spans, stats.log_records, stats.requests)
    assert stats.requests > 250 and stats.spans > 4 * stats.requests
    assert first >= T0 and last < T0 + (SMALL.minutes + 1) * MINUTE_NS
    assert (stats.start_ns, stats.end_ns) == (T0, T0 + SMALL.minutes * MINUTE_NS)
    log_times = con.execute("select epoch_ns(min(time)), epoch_ns(max(time)) from logs").fetchone()
    assert log_times[0] >= T0 and log_times[1] < T0 + (SMALL.minutes + 1) * MINUTE_NS


def test_traces_cross_services_with_one_frontend_root_each(played: Any) -> None:
    _, con = played
    roots = con.execute(
        """select service_name, span_kind, count(*), count(distinct trace_id) from spans
           where parent_span_id is null group by all"""
    ).fetchall()
    assert [(svc, kind) for svc, kind, _, _ in roots] == [("frontend", "SERVER")]
    assert roots[0][2] == roots[0][3]  # one root per trace
    orphans = con.execute(
        """select count(*) from spans c where parent_span_id is not null and not exists (
               select 1 from spans p
               where p.trace_id = c.trace_id and p.span_id = c.parent_span_id)"""
    ).fetchone()[0]
    assert orphans == 0
    # Every cross-service edge is a CLIENT span calling a SERVER span (context propagated).
    edges = con.execute(
        """select p.service_name, c.service_name, p.span_kind, c.span_kind,
                  p.span_name = c.span_name
           from spans c join spans p on c.trace_id = p.trace_id and c.parent_span_id = p.span_id
           where c.service_name <> p.service_name group by all order by 1, 2"""
    ).fetchall()
    assert {(a, b) for a, b, *_ in edges} == {
        ("frontend", "inventory"),
        ("frontend", "shipping"),
        ("frontend", "checkout"),
        ("checkout", "inventory"),
        ("checkout", "payment"),
        ("checkout", "shipping"),
    }
    assert {tuple(e[2:]) for e in edges} == {("CLIENT", "SERVER", True)}
    # Children lie within their parents in time.
    outside = con.execute(
        """select count(*) from spans c join spans p
           on c.trace_id = p.trace_id and c.parent_span_id = p.span_id
           where c.start_time < p.start_time or c.end_time > p.end_time"""
    ).fetchone()[0]
    assert outside == 0


def test_resources_logs_and_the_canary_fault(played: Any) -> None:
    stats, con = played
    instances = con.execute(
        """select distinct service_instance_id, service_name, service_version,
                  deployment_environment from spans"""
    ).fetchall()
    assert {r[0]: (r[1], r[2]) for r in instances} == stats.instances
    assert {r[3] for r in instances} == {"prod"}
    versions = Counter((svc, ver) for svc, ver in stats.instances.values())
    assert versions[("frontend", "1.9.0")] == 3 and versions[("checkout", "2.4.0")] == 1
    # Log records written inside a span carry its trace and span ids.
    uncorrelated = con.execute(
        """select count(*) from logs l where trace_id is not null and not exists (
               select 1 from spans s where s.trace_id = l.trace_id and s.span_id = l.span_id)"""
    ).fetchone()[0]
    assert uncorrelated == 0
    assert con.execute("select count(*) from logs where trace_id is not null").fetchone()[0] > 50
    rows = con.execute(
        """select service_version, span_attributes['app.payment.method'], status_code,
                  events[1].attributes['exception.type'], count(*)
           from spans where service_name = 'checkout' and span_name = 'PlaceOrder'
             and span_kind = 'SERVER' group by all"""
    ).fetchall()
    key_errors = {(r[0], r[1]) for r in rows if r[3] == "KeyError"}
    assert key_errors == {("2.4.0", "paypal")}
    assert not [r for r in rows if r[0] == "2.4.0" and r[1] == "paypal" and r[2] != "ERROR"]
    # The incident: every Charge in minute 4 fails in payment, and checkout shows it.
    incident = con.execute(
        """select service_name, status_code, count(*) from spans
           where span_name in ('Charge', 'PlaceOrder') and span_kind = 'SERVER'
             and epoch_ns(start_time) >= $a and epoch_ns(start_time) < $b
             and service_version <> '2.4.0' group by all""",
        {"a": T0 + 4 * MINUTE_NS + MINUTE_NS // 10, "b": T0 + 5 * MINUTE_NS - MINUTE_NS // 10},
    ).fetchall()
    assert {(svc, code) for svc, code, _ in incident} == {
        ("payment", "ERROR"),
        ("checkout", "ERROR"),
    }


def test_the_same_seed_gives_the_same_telemetry(played: Any, tmp_path: Path) -> None:
    stats, con = played
    again, con2 = play(tmp_path / "again", seed=7)
    assert again == stats
    query = "select trace_id, span_id, start_time, status_code from spans order by all"
    assert con.execute(query).fetchall() == con2.execute(query).fetchall()
