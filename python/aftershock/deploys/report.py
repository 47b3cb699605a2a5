"""``aftershock report``: one deploy in depth, as text, a PNG chart and an HTML page.

The chart shows, per minute and per version, the error rate and the p50/p95 latency of the
service's entry spans (from the rollups), with the deploy's start, completion and decision
marked, and the signals and suspects written under it.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from pathlib import Path

import duckdb

from aftershock import _core
from aftershock.deploys.detect import MINUTE_NS
from aftershock.deploys.verdict import HORIZON_NS, PRE_WINDOW_NS, Verdict

VERDICT_COLORS = {
    "regression": "#c62828",
    "healthy": "#2e7d32",
    "inconclusive": "#9e9e9e",
    "pending": "#f9a825",
}


@dataclass
class Series:
    """One version's per-minute entry-span figures."""

    minutes: list[int]
    calls: list[int]
    errors: list[int]
    p50_ms: list[float | None]
    p95_ms: list[float | None]


def timeline(con: duckdb.DuckDBPyConnection, v: Verdict) -> dict[str, Series]:
    """Per version, the service's entry-span traffic around the deploy, minute by minute."""
    d = v.deploy
    con.execute(_core.ROLLUP_SQL_MACROS)
    since = d.started_at - PRE_WINDOW_NS
    until = min(d.started_at + HORIZON_NS, d.data_end + 1)
    rows = con.execute(
        """
        with r as (
            select * from rollups
            where service_name = $svc and deployment_environment is not distinct from $env
              and minute >= timezone('UTC', make_timestamp_ns($since))
              and minute < timezone('UTC', make_timestamp_ns($until))
        ),
        kinds as (
            select coalesce(
                nullif(list(distinct span_kind) filter (
                    where span_kind in ('SERVER', 'CONSUMER')), []),
                list(distinct span_kind)) as ks from r
        )
        select epoch_ns(minute), coalesce(service_version, '?'), sum(calls)::bigint,
               sum(errors)::bigint, sketch_quantile(list(latency_sketch), 0.5),
               sketch_quantile(list(latency_sketch), 0.95)
        from r, kinds where list_contains(kinds.ks, span_kind)
        group by all order by 1
        """,
        {"svc": d.service, "env": d.environment, "since": since, "until": until},
    ).fetchall()
    out: dict[str, Series] = {}
    for m, ver, calls, errors, p50, p95 in rows:
        s = out.setdefault(ver, Series([], [], [], [], []))
        s.minutes.append(m)
        s.calls.append(calls)
        s.errors.append(errors)
        s.p50_ms.append(None if p50 is None else p50 / 1e6)
        s.p95_ms.append(None if p95 is None else p95 / 1e6)
    return out


def summary(v: Verdict) -> str:
    """The verdict as a few lines of text for a terminal."""
    j = v.to_json()
    lines = [
        f"{j['service']} {j['version']} ({j['environment'] or 'no environment'}):"
        f" {j['verdict'].upper()}",
        f"  {j['rollout']} after {j['previous_version'] or '-'}, source {j['source']},"
        f" started {j['started_at']}, completed {j['completed_at'] or '-'},"
        f" decided {j['decided_at'] or '-'}",
        f"  {j['explanation']}",
    ]
    for s in j["signals"]:
        lines.append(
            f"  signal {s['kind']} on {s['span_name'] or 'all entry spans'}: baseline"
            f" {s['baseline']:.4g}, candidate {s['candidate']:.4g}, evidence {s['evidence']:.3g}"
        )
    for s in j["suspects"]:
        lines.append(
            f"  suspect {s['attribute']}={s['value']}: {100 * s['share_of_errors']:.1f}% of errors"
        )
    return "\n".join(lines) + "\n"


def render_png(con: duckdb.DuckDBPyConnection, v: Verdict, path: Path) -> None:
    """Writes the chart: error rate and latency by version, with the deploy's moments."""
    import matplotlib

    matplotlib.use("Agg")
    import datetime as dt

    import matplotlib.pyplot as plt

    series = timeline(con, v)
    d = v.deploy
    fig, (ax_err, ax_lat) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)

    def when(ns: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(ns / 1e9, dt.timezone.utc)

    for i, (ver, s) in enumerate(sorted(series.items())):
        xs = [when(m + MINUTE_NS // 2) for m in s.minutes]
        rate = [100 * e / c if c else 0.0 for e, c in zip(s.errors, s.calls, strict=True)]
        style = "-" if ver == d.version else "--"
        label = f"{ver} (new)" if ver == d.version else ver
        color = f"C{i}"
        ax_err.plot(xs, rate, style, color=color, marker=".", label=label)
        ax_lat.plot(xs, s.p95_ms, style, color=color, label=f"{label} p95")
        ax_lat.plot(xs, s.p50_ms, style, color=color, alpha=0.4, label=f"{label} p50")
    for ax in (ax_err, ax_lat):
        ax.axvline(when(d.started_at), color="black", lw=1, label="deploy started")
        if d.completed_at is not None:
            ax.axvline(when(d.completed_at), color="gray", lw=1, ls=":", label="completed")
        if v.decided_at is not None:
            color = VERDICT_COLORS[v.verdict]
            ax.axvline(when(v.decided_at), color=color, lw=1.5, label=f"decided: {v.verdict}")
        ax.grid(alpha=0.3)
    ax_err.set_ylabel("error rate (%)")
    ax_lat.set_ylabel("latency (ms)")
    ax_lat.set_xlabel("event time (UTC)")
    ax_err.legend(fontsize=7, loc="upper left")
    ax_lat.legend(fontsize=7, loc="upper left", ncol=2)
    signals = "; ".join(
        f"{s['kind']} on {s['span_name'] or 'all'} (e={s['evidence']:.3g})" for s in v.signals
    )
    fig.suptitle(
        f"{d.service} {d.version}: {v.verdict}" + (f" | {signals}" if signals else ""),
        color=VERDICT_COLORS[v.verdict],
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def render_html(con: duckdb.DuckDBPyConnection, v: Verdict, path: Path, png: Path) -> None:
    """Writes a self-contained HTML page: the chart (embedded), the verdict and evidence."""
    j = v.to_json()
    image = base64.b64encode(png.read_bytes()).decode()
    rows = "".join(
        f"<tr><td>{html.escape(str(s['kind']))}</td><td>{html.escape(str(s['span_name']))}</td>"
        f"<td>{s['baseline']:.4g}</td><td>{s['candidate']:.4g}</td><td>{s['evidence']:.3g}</td>"
        f"<td>{html.escape(s['test'])}</td></tr>"
        for s in j["signals"]
    )
    suspects = "".join(
        f"<tr><td>{html.escape(s['attribute'])}</td><td>{html.escape(str(s['value']))}</td>"
        f"<td>{100 * s['share_of_errors']:.1f}%</td></tr>"
        for s in j["suspects"]
    )
    color = VERDICT_COLORS[v.verdict]
    title = html.escape(f"{v.service} {v.version}: {v.verdict}")
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}
td,th{{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left}}
table{{border-collapse:collapse}} .v{{color:{color}}}</style></head><body>
<h1>{html.escape(v.service)} {html.escape(v.version)}: <span class="v">{v.verdict}</span></h1>
<p>{html.escape(j["explanation"])}</p>
<p>{html.escape(str(j["rollout"]))} after {html.escape(str(j["previous_version"]))},
source {html.escape(j["source"])}; started {j["started_at"]}, completed
{j["completed_at"] or "-"}, decided {j["decided_at"] or "-"} (event time, UTC).</p>
<img alt="error rate and latency by version" src="data:image/png;base64,{image}" width="100%">
<h2>Signals</h2><table><tr><th>kind</th><th>span</th><th>baseline</th><th>candidate</th>
<th>evidence</th><th>test</th></tr>{rows or '<tr><td colspan="6">none</td></tr>'}</table>
<h2>Suspects</h2><table><tr><th>attribute</th><th>value</th><th>share of errors</th></tr>
{suspects or '<tr><td colspan="3">none</td></tr>'}</table>
<h2>Verdict JSON</h2><pre>{html.escape(json.dumps(j, indent=2))}</pre>
</body></html>
"""
    path.write_text(page)
