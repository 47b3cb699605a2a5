"""``aftershock demo``: the whole pipeline on a simulated shop, in under a minute.

Starts the receiver in-process, plays :meth:`Scenario.default` (a healthy cut-over and a
bad canary) through the real OpenTelemetry SDK over OTLP/gRPC with gzip, then prints the
deploy verdicts, where errors originate, the chart it wrote and SQL to try next.

The data directory must be new, empty, or a previous demo's (recognised by the
``demo.json`` it leaves there): a previous demo's data is replaced, since its event times
would overlap the new run's. Anything else is refused, so the demo never mixes its
traffic into real data.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aftershock.commands import CliError, add_data_option, option

if TYPE_CHECKING:
    import duckdb

    from aftershock.demo.shop import RunStats, Scenario
    from aftershock.deploys import Verdict

MARKER = "demo.json"
REPORTS = "reports"
#: What a demo's data directory may hold; only such a directory is wiped for a new run.
DEMO_ENTRIES = {MARKER, REPORTS, "spans", "logs", "rollups", "markers", "wal", "receiver-id"}

ORIGINS_SQL = """\
select e.service_name as origin, e.span_name, e.service_version as version,
       coalesce(e.events[1].attributes['exception.type'], e.status_message) as error,
       count(distinct e.trace_id) as traces
from spans e
where e.status_code = 'ERROR' and not exists (
    select 1 from spans c
    where c.trace_id = e.trace_id and c.parent_span_id = e.span_id and c.status_code = 'ERROR')
group by all order by traces desc"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds ``aftershock demo``."""
    p = subparsers.add_parser(
        "demo",
        help="run a simulated shop with a good and a bad deploy through aftershock",
        description=(
            "Starts the receiver in-process, drives a simulated multi-service shop through "
            "the OpenTelemetry SDK (40 minutes of event time in seconds), with a healthy "
            "cut-over of frontend and a bad canary of checkout, then prints the verdicts, "
            "where errors originate, the chart it wrote and SQL to try next. DIR must be "
            "new, empty, or a previous demo's (whose data is replaced)."
        ),
    )
    add_data_option(p)
    option(p, "--seed", 1, type=int, metavar="N", help="random seed: same seed, same telemetry")
    p.set_defaults(run=run)


def prepare_data_dir(data: Path) -> bool:
    """Makes ``data`` ready for a demo; True when a previous demo's data was replaced.

    Raises :class:`CliError` when ``data`` holds anything but a previous demo's data.
    """
    if data.exists() and not data.is_dir():
        raise CliError(f"--data {str(data)!r} is not a directory")
    entries = {p.name for p in data.iterdir()} if data.is_dir() else set()
    if not entries:
        return False
    if MARKER not in entries or not entries <= DEMO_ENTRIES:
        raise CliError(
            f"{str(data)!r} already holds data that is not a previous demo's;"
            " use --data with a new or empty directory"
        )
    for name in entries:
        path = data / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    return True


class _Progress:
    """Progress on stderr: a rich bar on a terminal, plain lines otherwise."""

    def __init__(self, total: int, start_ns: int) -> None:
        self.total, self.start_ns = total, start_ns
        self.bar: Any = None
        self.task: Any = None
        self.t0 = time.monotonic()
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(
                TextColumn("[bold]simulating[/] {task.description}"),
                BarColumn(),
                TextColumn("minute {task.completed:.0f}/{task.total:.0f}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self.task = self.bar.add_task("shop traffic", total=total)
            self.bar.start()

    def __call__(self, done: int, total: int, notes: list[str]) -> None:
        """Called by the simulator after each simulated minute."""
        at = _hhmm(self.start_ns + (done - 1) * 60_000_000_000)
        for note in notes:
            line = f"minute {done - 1} ({at} UTC): {note}"
            if self.bar is not None:
                self.bar.console.print(f"  {line}")
            else:
                print(f"aftershock demo: {line}", file=sys.stderr, flush=True)
        if self.bar is not None:
            self.bar.update(self.task, completed=done, description=f"shop traffic, {at} UTC")
        elif done % 10 == 0 or done == total:
            elapsed = time.monotonic() - self.t0
            print(
                f"aftershock demo: simulated minute {done}/{total} ({elapsed:.1f} s)",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        """Removes the bar."""
        if self.bar is not None:
            self.bar.stop()


def _hhmm(ns: int) -> str:
    return time.strftime("%H:%M", time.gmtime(ns / 1e9))


def _short(iso: str | None) -> str:
    return "-" if iso is None else iso[11:16]


def _table(rows: list[tuple[str, ...]], indent: str = "  ") -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in rows
    )


def _pct(x: float) -> str:
    return f"{100 * x:.3g}%"


def _verdict_lines(v: Verdict) -> list[str]:
    j = v.to_json()
    lines = [f"{j['service']} {j['version']}: {j['verdict'].upper()}"]
    if j["verdict"] == "regression":
        sig = next((s for s in j["signals"] if s["span_name"]), j["signals"][0])
        rate = next((s for s in j["signals"] if s["kind"] == "error_rate"), None)
        what = (
            f"error rate {_pct(rate['candidate'])} on {j['version']} vs"
            f" {_pct(rate['baseline'])} on {j['previous_version']}"
            if rate is not None and rate["span_name"] == sig["span_name"]
            else sig["kind"].replace("_", " ")
        )
        lines.append(f"  regressed endpoint: {sig['span_name'] or 'all entry spans'} ({what})")
        for s in j["signals"]:
            lines.append(
                f"  signal {s['kind']}: evidence {s['evidence']:.3g} ({s['test'].split(';')[0]})"
            )
        from aftershock.deploys.attribution import GROUP_ORDER

        # Attribute values (who is affected), not span names or error types (where, what).
        causes = [s for s in j["suspects"] if s["attribute"] not in GROUP_ORDER]
        if causes:
            top = causes[0]
            lines.append(
                f"  suspect: {top['attribute']}={top['value']}"
                f" ({_pct(top['share_of_errors'])} of its errors)"
            )
        others = [s for s in j["suspects"] if not causes or s is not causes[0]]
        if others:
            lines.append(
                "  also over-represented in its errors: "
                + ", ".join(f"{s['attribute']}={s['value']}" for s in others)
            )
    lines.append(f"  {j['explanation']}")
    return lines


def _origins(con: duckdb.DuckDBPyConnection) -> list[tuple[str, ...]]:
    rows = con.execute(ORIGINS_SQL).fetchall()
    out: list[tuple[str, ...]] = [("ORIGIN", "SPAN", "VERSION", "ERROR", "TRACES")]
    out += [(o, s, v or "-", str(e), f"{n:,}") for o, s, v, e, n in rows]
    return out


def _write_reports(
    con: duckdb.DuckDBPyConnection, verdicts: list[Verdict], folder: Path
) -> list[tuple[Verdict, Path, Path]]:
    from aftershock.deploys.report import render_html, render_png

    folder.mkdir(exist_ok=True)
    written = []
    for v in verdicts:
        base = f"{v.service}-{v.version}".replace("/", "_")
        png, page = folder / f"{base}.png", folder / f"{base}.html"
        render_png(con, v, png)
        render_html(con, v, page, png)
        written.append((v, png, page))
    return written


def _queries(data: Path, regression: Verdict | None) -> list[tuple[str, str]]:
    svc = regression.service if regression is not None else "checkout"
    ver = regression.version if regression is not None else "2.4.0"
    return [
        (
            f"{svc} by version and payment method:",
            "select service_version, span_attributes['app.payment.method'] as method,"
            " count(*) as calls, round(avg((status_code = 'ERROR')::int), 3) as error_rate"
            f" from spans where service_name = '{svc}' and span_kind = 'SERVER'"
            " group by all order by error_rate desc",
        ),
        (
            "where errors originate (the failed leaf span of each failed trace):",
            " ".join(ORIGINS_SQL.split()),
        ),
        (
            f"the error logs of {svc} {ver}, with the span each was written in:",
            "select l.time, l.service_instance_id, l.body, s.span_name from logs l"
            " join spans s on l.trace_id = s.trace_id and l.span_id = s.span_id"
            f" where l.severity_text = 'ERROR' and s.service_name = '{svc}'"
            f" and s.service_version = '{ver}' order by l.time limit 10",
        ),
    ]


def _simulate(data: Path, seed: int, scenario: Scenario) -> tuple[RunStats, float]:
    from aftershock.demo.shop import MINUTE_NS, Shop
    from aftershock.receiver import Receiver, ReceiverOptions

    # durability "os": the demo's data is throwaway, and an fsync per export would only
    # slow it down on a busy disk. Everything is still committed before the verdicts.
    receiver = Receiver(
        data,
        ReceiverOptions(
            otlp_grpc="127.0.0.1:0",
            otlp_http=None,
            metrics=None,
            durability="os",
            flush_interval=1.0,
        ),
    ).start()
    t0 = time.monotonic()
    try:
        endpoint = f"127.0.0.1:{receiver.ports['otlp_grpc']}"
        print(
            f"aftershock demo: receiver on {endpoint} (OTLP/gRPC), writing to {data};"
            f" the shop's SDK exporters send to it with gzip",
            file=sys.stderr,
            flush=True,
        )
        shop = Shop(seed)
        now = time.time_ns()
        shop.start_ns = now - now % MINUTE_NS - scenario.minutes * MINUTE_NS
        progress = _Progress(scenario.minutes, shop.start_ns)
        try:
            stats = shop.run(endpoint, scenario, progress)
        finally:
            progress.close()
    finally:
        receiver.stop()
    return stats, time.monotonic() - t0


def run(args: argparse.Namespace) -> int:
    """Runs the demo and prints what aftershock found."""
    data = Path(args.data)
    try:
        from aftershock.demo.shop import Scenario
    except ImportError as e:  # the SDK is a test/demo dependency, not a runtime one
        raise CliError(
            f"the demo needs the OpenTelemetry SDK ({e.name} is missing): pip install"
            " opentelemetry-sdk opentelemetry-exporter-otlp-proto-grpc"
        ) from None
    replaced = prepare_data_dir(data)
    from aftershock.deploys import connect, deploy_verdicts

    scenario = Scenario.default()
    data.mkdir(parents=True, exist_ok=True)
    (data / MARKER).write_text(
        json.dumps({"seed": args.seed, "scenario": scenario.to_dict()}, indent=2) + "\n"
    )
    if replaced:
        print(f"aftershock demo: replaced the previous demo's data in {data}", file=sys.stderr)
    stats, elapsed = _simulate(data, args.seed, scenario)
    con = connect(data)
    counts = con.execute("select (select count(*) from spans), (select count(*) from logs)")
    n_spans, n_logs = counts.fetchone() or (0, 0)
    verdicts = deploy_verdicts(con)
    reports = _write_reports(con, verdicts, data / REPORTS)
    out: list[str] = []
    out.append(
        f"Simulated {scenario.minutes} minutes of shop traffic"
        f" ({_hhmm(stats.start_ns)}-{_hhmm(stats.end_ns)} UTC event time) in {elapsed:.1f} s:"
        f" {stats.requests:,} requests, {stats.spans:,} spans and {stats.log_records:,} log"
        f" records from {len(stats.instances)} service instances."
    )
    lost = stats.spans - n_spans, stats.log_records - n_logs
    out.append(
        f"In the lake: {n_spans:,} spans and {n_logs:,} log records"
        + (
            " (everything sent)."
            if lost == (0, 0)
            else f" ({lost[0]} spans, {lost[1]} logs missing)."
        )
    )
    out.append("")
    out.append("Deploys found in the telemetry:")
    rows: list[tuple[str, ...]] = [
        ("SERVICE", "VERSION", "PREVIOUS", "ROLLOUT", "STARTED", "VERDICT", "DECIDED")
    ]
    for v in verdicts:
        j = v.to_json()
        rows.append(
            (
                j["service"],
                j["version"],
                j["previous_version"] or "-",
                j["rollout"],
                _short(j["started_at"]),
                j["verdict"],
                _short(j["decided_at"]),
            )
        )
    out.append(_table(rows) if verdicts else "  none")
    for v in sorted(verdicts, key=lambda v: v.verdict != "regression"):
        out.append("")
        out.extend(_verdict_lines(v))
    out.append("")
    out.append("Where errors originate (the failed leaf span of each failed trace):")
    out.append(_table(_origins(con)))
    out.append("")
    regression = next((v for v in verdicts if v.verdict == "regression"), None)
    out.append("Charts (error rate and latency by version, deploy markers, signals):")
    for v, png, page in sorted(reports, key=lambda r: r[0].verdict != "regression"):
        out.append(f"  {v.service} {v.version}: {png}")
        out.append(f"  {' ' * len(f'{v.service} {v.version}: ')}{page}")
    out.append("")
    out.append("Try next:")
    for what, sql in _queries(data, regression):
        out.append(f"  # {what}")
        # Double quotes, as one would type them: the queries hold no $, `, \\, " or !.
        out.append(f'  aftershock sql --data {shlex.quote(str(data))} "{sql}"')
    out.append(f"  aftershock deploys --data {shlex.quote(str(data))} --json")
    print("\n".join(out))
    return 0
