"""A verdict per deploy: regression, healthy, inconclusive or pending, with the evidence.

Everything runs on event time: a deploy is judged on the minutes from its baseline window
(the last ``PRE_WINDOW_NS`` of minutes with traffic before it) to ``HORIZON_NS`` after it
started, as far as the data reaches, so replaying the same telemetry gives the same verdict
and ``decided_at`` is the minute whose data settled it.

* **regression**: one of three e-processes (see ``evidence``) reached its threshold. The
  false-alarm budget ``ALPHA`` is split between them: error rate, latency (calls slower than
  the baseline's p50, p90 and p99, a distribution shift rather than one percentile) and new
  error types. Each is the average of a test over all entry spans and the mean of the tests
  per span name, so one endpoint failing is caught without a test per endpoint spending
  the budget.
* **healthy**: after ``MIN_OBSERVE_NS``, the evidence that the candidate is *not* worse
  than ``ERROR_TOLERANCE`` times the baseline's error rate and ``LATENCY_TOLERANCE`` times its
  share of slow calls reached ``HEALTHY_EVIDENCE``.
* **inconclusive**: neither, and the horizon passed or the candidate stopped serving; the
  explanation says how much more traffic would settle it.
* **pending**: neither yet.

Errors count only when they originate in the service itself (see ``blame``).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt

from aftershock.deploys import attribution, blame, evidence
from aftershock.deploys.detect import MINUTE_NS, STOPPED_AFTER_NS, Deploy, detect_deploys
from aftershock.deploys.evidence import Array

#: The baseline before a deploy: its last this-many minutes with traffic (idle minutes
#: are unrelated periods and skipped), looking back at most ``LOOKBACK_NS``.
PRE_WINDOW_NS = 60 * MINUTE_NS
LOOKBACK_NS = 24 * 60 * MINUTE_NS
HORIZON_NS = 60 * MINUTE_NS
MIN_OBSERVE_NS = 10 * MINUTE_NS
#: Overall false-alarm budget of a deploy, and its split between the three signals.
ALPHA = 0.01
ALPHA_ERRORS, ALPHA_LATENCY, ALPHA_NEW = 0.5 * ALPHA, 0.4 * ALPHA, 0.1 * ALPHA
HEALTHY_EVIDENCE = 20.0
ERROR_TOLERANCE = 2.0
#: Error rates within this many absolute points of the baseline's are fine at any ratio.
ERROR_MARGIN = 0.0005
LATENCY_TOLERANCE = 1.5
LATENCY_QUANTILES = (0.5, 0.9, 0.99)
#: The quantile whose slow-call share decides "healthy" on latency.
HEALTHY_QUANTILE_INDEX = 1
ALL = "*"


def _ts(param: str) -> str:
    return f"timezone('UTC', make_timestamp_ns({param}))"


def iso(ns: int | None) -> str | None:
    """An event time as the verdict JSON writes it: ``2026-11-20T10:35:00Z``."""
    if ns is None:
        return None
    t = dt.datetime.fromtimestamp(ns // 1_000_000_000, dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Verdict:
    """The verdict on one deploy, as ``to_json`` writes it (CONTRACT.md)."""

    deploy: Deploy
    verdict: str
    signals: list[dict[str, Any]] = field(default_factory=list)
    suspects: list[dict[str, Any]] = field(default_factory=list)
    decided_at: int | None = None
    explanation: str = ""

    @property
    def service(self) -> str:
        """The deployed service."""
        return self.deploy.service

    @property
    def version(self) -> str:
        """The deployed version."""
        return self.deploy.version

    def to_json(self) -> dict[str, Any]:
        """The verdict JSON object, with exactly the keys of CONTRACT.md."""
        d = self.deploy
        return {
            "service": d.service,
            "environment": d.environment,
            "version": d.version,
            "previous_version": d.previous_version,
            "started_at": iso(d.started_at),
            "completed_at": iso(d.completed_at),
            "source": d.source,
            "rollout": d.rollout,
            "verdict": self.verdict,
            "signals": self.signals,
            "suspects": self.suspects,
            "decided_at": iso(self.decided_at),
            "explanation": self.explanation,
        }


@dataclass
class _Series:
    """Per-minute counts for candidate (c) and baseline (b): calls and events."""

    cc: Array
    ce: Array
    bc: Array
    be: Array


@dataclass
class _Test:
    """A family of e-processes over the post-deploy minutes."""

    evalue: Array
    per_span: dict[str, Array]
    family: dict[str, _Series]
    post: npt.NDArray[np.bool_]

    def split_only(self) -> Array:
        """The same family with the split design alone (both versions serving): what a
        canary shows regardless of anything that changed for both versions at once."""
        per = {
            n: evidence.split_eprocess(s.cc[self.post], s.ce[self.post], s.bc[self.post],
                                       s.be[self.post])
            for n, s in self.family.items()
        }  # fmt: skip
        return _combine(per)


def _combine(per: dict[str, Array]) -> Array:
    """Half on all entry spans together, half on the mean of the per-span-name tests."""
    names = [n for n in per if n != ALL] or [ALL]
    return np.asarray(
        0.5 * per[ALL] + 0.5 * np.mean([per[n] for n in names], axis=0), dtype=np.float64
    )


@dataclass(frozen=True)
class _Spec:
    """One window to fetch: the candidate is ``version``, or with no version (a service
    that did not deploy, for downstream checks) everything from ``start`` on."""

    idx: int
    service: str
    environment: str | None
    version: str | None
    start: int
    since: int
    until: int


_CAND = f"""case when w.version is null then r.minute >= {_ts("w.start")}
                 else r.service_version is not distinct from w.version end"""


def _register_specs(con: duckdb.DuckDBPyConnection, specs: list[_Spec]) -> str:
    import pyarrow as pa

    name = "_aftershock_specs"
    con.register(
        name,
        pa.table(
            {
                "idx": pa.array([x.idx for x in specs], pa.int64()),
                "service": pa.array([x.service for x in specs], pa.string()),
                "env": pa.array([x.environment for x in specs], pa.string()),
                "version": pa.array([x.version for x in specs], pa.string()),
                "start": pa.array([x.start for x in specs], pa.int64()),
                "since": pa.array([x.since for x in specs], pa.int64()),
                "until": pa.array([x.until for x in specs], pa.int64()),
            }
        ),
    )
    return name


def _join(table: str, specs: str) -> str:
    return f"""{table} r join {specs} w
        on r.service_name = w.service and r.deployment_environment is not distinct from w.env
        where r.minute >= {_ts("w.since")} and r.minute < {_ts("w.until")}"""


def _group(rows: list[Any]) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = {}
    for row in rows:
        out.setdefault(row[0], []).append(row[1:])
    return out


def _fetch_rollups(
    con: duckdb.DuckDBPyConnection, table: str, specs: list[_Spec]
) -> tuple[dict[int, list[Any]], dict[int, list[Any]]]:
    """For every window at once: calls per minute, candidate flag, span name and kind; and
    the baseline's latency histogram per span name and kind, before the start or not."""
    if not specs:
        return {}, {}
    name = _register_specs(con, specs)
    try:
        calls = con.execute(
            f"""select w.idx, epoch_ns(r.minute), {_CAND}, r.span_name, r.span_kind,
                       sum(r.calls)
                from {_join(table, name)} group by all"""
        ).fetchall()
        hist = con.execute(
            f"""select idx, span_name, span_kind, pre, e.bucket, sum(e.count) from (
                    select w.idx, r.span_name, r.span_kind, r.minute < {_ts("w.start")} as pre,
                           unnest(r.latency_sketch) as e
                    from {_join(table, name)} and not ({_CAND}))
                group by all order by all"""
        ).fetchall()
    finally:
        con.unregister(name)
    return _group(calls), _group(hist)


def _fetch_slow(
    con: duckdb.DuckDBPyConnection,
    table: str,
    specs: list[_Spec],
    thresholds: dict[int, dict[str, list[int]]],
) -> dict[int, list[Any]]:
    """For every window at once: calls slower than each latency threshold, per minute
    (minutes without any are left out)."""
    import pyarrow as pa

    th = [
        (idx, n, qi, b)
        for idx, by_name in thresholds.items()
        for n, buckets in by_name.items()
        for qi, b in enumerate(buckets)
    ]
    if not th:
        return {}
    name = _register_specs(con, specs)
    con.register(
        "_aftershock_th",
        pa.table(
            {
                "idx": pa.array([t[0] for t in th], pa.int64()),
                "span_name": pa.array([t[1] for t in th], pa.string()),
                "qi": pa.array([t[2] for t in th], pa.int32()),
                "b": pa.array([t[3] for t in th], pa.int32()),
            }
        ),
    )
    try:
        rows = con.execute(
            f"""select idx, epoch_ns(minute), cand, span_name, span_kind, th.qi, sum(e.count)
                from (select w.idx, r.minute, {_CAND} as cand, r.span_name, r.span_kind,
                             unnest(r.latency_sketch) as e
                      from {_join(table, name)}) u
                join _aftershock_th th using (idx, span_name)
                where e.bucket > th.b
                group by all"""
        ).fetchall()
    finally:
        con.unregister(name)
        con.unregister("_aftershock_th")
    return _group(rows)


class _Window:
    """The minutes around one deploy, and the rollup counts in them."""

    def __init__(self, spec: _Spec, calls: list[Any], hist: list[Any]) -> None:
        self.spec = spec
        self.start_min = spec.start
        self.since, self.until = spec.since, spec.until
        self.minutes = np.arange(self.since, self.until, MINUTE_NS, dtype=np.int64)
        self.pre = self.minutes < self.start_min
        self.post = ~self.pre
        present = {row[3] for row in calls}
        entry = [k for k in blame.ENTRY_KINDS if k in present]
        self.all_kinds = not entry
        self.kinds = entry or sorted(present)
        self._calls = [r for r in calls if r[3] in self.kinds]
        self._hist = [r for r in hist if r[1] in self.kinds]

    def _index(self, ns: int) -> int:
        return (ns - self.since) // MINUTE_NS

    def _zeros(self) -> Array:
        return np.zeros(len(self.minutes))

    def _add(
        self, out: dict[str, tuple[Array, Array]], key: str, cand: bool, i: int, n: int
    ) -> None:
        if key not in out:
            out[key] = (self._zeros(), self._zeros())
        out[key][0 if cand else 1][i] += n

    def _sums(
        self,
        out: dict[str, tuple[Array, Array]],
        minute: list[int],
        cand: list[bool],
        name: list[str],
        n: list[float],
    ) -> None:
        """Adds counts per minute into ``out`` for ``*`` and per span name (in order of
        first appearance), candidate and baseline apart."""
        size = len(self.minutes)
        i = (np.asarray(minute, dtype=np.int64) - self.since) // MINUTE_NS
        c = np.asarray(cand, dtype=bool)
        w = np.asarray(n, dtype=np.float64)
        names = np.asarray(name, dtype=object)
        for key in (ALL, *(k for k in dict.fromkeys(name) if k != ALL)):
            sel = np.ones(len(i), dtype=bool) if key == ALL else names == key
            sums = [
                np.asarray(np.bincount(i[m], weights=w[m], minlength=size), dtype=np.float64)
                for m in (sel & c, sel & ~c)
            ]
            if key in out:
                out[key][0][:] += sums[0]
                out[key][1][:] += sums[1]
            else:
                out[key] = (sums[0], sums[1])

    def calls(self) -> dict[str, tuple[Array, Array]]:
        """Calls per span name (and ``*``): candidate and baseline arrays."""
        out: dict[str, tuple[Array, Array]] = {ALL: (self._zeros(), self._zeros())}
        if self._calls:
            m, cand, name, _kind, n = (list(col) for col in zip(*self._calls, strict=True))
            self._sums(out, m, cand, name, n)
        return out

    def thresholds(self) -> dict[str, list[int]]:
        """Per span name, the sketch buckets of the baseline's latency quantiles, from
        before the deploy (or, without such data, from the baseline alongside it)."""
        hist: dict[str, dict[bool, dict[int, int]]] = {}
        for name, _kind, pre, b, n in self._hist:
            for when in (True, False) if pre else (False,):
                h = hist.setdefault(name, {}).setdefault(when, {})
                h[b] = h.get(b, 0) + int(n)
        out: dict[str, list[int]] = {}
        for name, by_pre in hist.items():
            entries = sorted((by_pre.get(True) or by_pre.get(False) or {}).items())
            total = sum(n for _, n in entries)
            buckets = []
            for q in LATENCY_QUANTILES:
                seen = 0
                for b, n in entries:
                    seen += n
                    if seen > q * (total - 1):
                        buckets.append(b)
                        break
            out[name] = buckets
        return out

    def slow(self, rows: list[Any]) -> list[dict[str, tuple[Array, Array]]]:
        """Per latency quantile: calls slower than the baseline's quantile, per span name."""
        out: list[dict[str, tuple[Array, Array]]] = [
            {ALL: (self._zeros(), self._zeros())} for _ in LATENCY_QUANTILES
        ]
        by_q: list[list[Any]] = [[] for _ in LATENCY_QUANTILES]
        for row in rows:
            if row[3] in self.kinds and row[5]:
                by_q[row[4]].append(row)
        for qi, q_rows in enumerate(by_q):
            if q_rows:
                m, cand, name, _kind, _qi, n = (list(col) for col in zip(*q_rows, strict=True))
                self._sums(out[qi], m, cand, name, n)
        return out

    def series(
        self,
        calls: dict[str, tuple[Array, Array]],
        events: dict[str, tuple[Array, Array]],
    ) -> dict[str, _Series]:
        """Calls and events side by side, per span name present in ``calls``."""
        out = {}
        for name, (cc, bc) in calls.items():
            ce, be = events.get(name, (self._zeros(), self._zeros()))
            out[name] = _Series(cc, np.minimum(ce, cc), bc, np.minimum(be, bc))
        return out

    def test(self, family: dict[str, _Series], paired: bool = False) -> _Test:
        """The e-process of a family: split design while both versions serve, before/after
        for candidate-only minutes, over all spans and per span name.

        Before/after compares with an upper bound on the rate before the deploy or, with
        ``paired``, first with disjoint blocks of the minutes before it (exact, and much
        sharper). Pairing needs events that do not depend on the baseline's data: errors,
        not calls slower than thresholds taken from the same minutes."""
        post = self.post
        per: dict[str, Array] = {}
        for name, s in family.items():
            args = (s.cc[post], s.ce[post], s.bc[post], s.be[post])
            pre_c, pre_e = s.bc[self.pre], s.be[self.pre]
            bound = evidence.poisson_upper_bound(pre_e.sum(), pre_c.sum())
            blocks = evidence.pair_baseline(pre_c, pre_e, args[0], args[2] == 0) if paired else None
            per[name] = evidence.combined_eprocess(*args, bound, blocks)
        names = [n for n in per if n != ALL] or [ALL]
        return _Test(_combine(per), {n: per[n] for n in names}, family, post)


def _quantile_value(bucket: int) -> float:
    gamma = 1.01 / 0.99
    return float(2 * gamma**bucket / (gamma + 1))


def _rate(events: float, calls: float) -> float:
    return float(events / calls) if calls else 0.0


def _fmt_pct(x: float) -> str:
    return f"{100 * x:.3g}%"


def _fmt_ms(ns: float) -> str:
    return f"{ns / 1e6:.3g} ms"


def _merge(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping ``[since, until)`` intervals merged, sorted."""
    out: list[tuple[int, int]] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


@dataclass
class _Sources:
    """Where an evaluation reads: the rows of every deploy's window, fetched once."""

    rollups: str
    errors: str
    first_seen: dict[tuple[str, str | None], dict[str, int]]


def _window(d: Deploy, since: int) -> tuple[int, int]:
    """The deploy's window: from the baseline's start to the horizon, without the minute
    the data ends in. That minute is still filling, and its error spans and its rollups
    are separate Delta commits: one can be ahead of the other."""
    last_full = d.data_end - d.data_end % MINUTE_NS
    return max(since, d.started_at - LOOKBACK_NS), min(d.started_at + HORIZON_NS, last_full)


def _prefetch(
    con: duckdb.DuckDBPyConnection, windows: list[tuple[Deploy, int]], service: str | None
) -> _Sources:
    """Copies the rollups and error spans of the deploys' windows into temp tables, so each
    deploy's queries scan a few thousand rows instead of the whole retention."""
    import pyarrow as pa

    margin = 10 * MINUTE_NS
    by_key: dict[tuple[str, str | None], list[tuple[int, int]]] = {}
    for d, since in windows:
        by_key.setdefault((d.service, d.environment), []).append(_window(d, since))
    keyed = [(k, iv) for k, ivs in by_key.items() for iv in _merge(ivs)]
    anywhere = _merge([(a - margin, b + margin) for _, (a, b) in keyed])
    con.register(
        "_aftershock_windows",
        pa.table(
            {
                "service": [k[0] for k, _ in keyed],
                "env": pa.array([k[1] for k, _ in keyed], pa.string()),
                "since": pa.array([a for _, (a, _) in keyed], pa.int64()),
                "until": pa.array([b for _, (_, b) in keyed], pa.int64()),
            }
        ),
    )
    con.register(
        "_aftershock_times",
        pa.table(
            {
                "since": pa.array([a for a, _ in anywhere], pa.int64()),
                "until": pa.array([b for _, b in anywhere], pa.int64()),
            }
        ),
    )
    # Windows are merged per service (and across services for spans), so joins copy each
    # row at most once.
    con.execute(
        f"""create or replace temp table _aftershock_rollups as
            select r.* from rollups r join _aftershock_windows w
              on r.service_name = w.service
             and r.deployment_environment is not distinct from w.env
            where r.minute >= {_ts("w.since")} and r.minute < {_ts("w.until")}"""
    )
    con.execute(
        f"""create or replace temp table _aftershock_errors as
            select s.* from spans s join _aftershock_times w
              on s.start_time >= {_ts("w.since")} and s.start_time < {_ts("w.until")}
            where s.status_code = 'ERROR'"""
    )
    con.unregister("_aftershock_times")
    con.unregister("_aftershock_windows")
    return _Sources(
        "_aftershock_rollups", "_aftershock_errors", blame.error_types_first_seen(con, service)
    )


def _spec(idx: int, d: Deploy, since: int, version: str | None) -> _Spec:
    """The minute-aligned window of deploy ``d`` (baseline from ``since``)."""
    since, until = _window(d, since)
    start = d.started_at - d.started_at % MINUTE_NS
    return _Spec(
        idx,
        d.service,
        d.environment,
        version,
        start,
        min(since - since % MINUTE_NS, start),
        max(until, start + MINUTE_NS),
    )


def _prepare(
    con: duckdb.DuckDBPyConnection, table: str, specs: list[_Spec]
) -> dict[int, tuple[_Window, list[Any]]]:
    """Every window with its latency thresholds applied: four queries for all of them."""
    calls, hist = _fetch_rollups(con, table, specs)
    windows = {x.idx: _Window(x, calls.get(x.idx, []), hist.get(x.idx, [])) for x in specs}
    slow = _fetch_slow(con, table, specs, {i: w.thresholds() for i, w in windows.items()})
    return {i: (w, slow.get(i, [])) for i, w in windows.items()}


class _Evaluation:
    """Everything computed for one deploy; ``verdict()`` assembles the result."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        d: Deploy,
        window: tuple[_Window, list[Any]],
        errors: list[blame.ErrorSpan],
        first_seen: dict[str, int],
    ) -> None:
        self.con, self.d, self.first_seen = con, d, first_seen
        self.w, slow_rows = window
        until = self.w.until
        self.calls = self.w.calls()
        self.errors = errors
        own: dict[str, tuple[Array, Array]] = {ALL: (self.w._zeros(), self.w._zeros())}
        for e in self.errors:
            if e.own and (e.entry or self.w.all_kinds) and self.w.since <= e.minute < until:
                self.w._add(own, ALL, e.version == d.version, self.w._index(e.minute), 1)
                self.w._add(own, e.span_name, e.version == d.version, self.w._index(e.minute), 1)
        self.err_family = self.w.series(self.calls, own)
        self.err = self.w.test(self.err_family, paired=True)
        self.thresholds = self.w.thresholds()
        self.lat_families = [self.w.series(self.calls, s) for s in self.w.slow(slow_rows)]
        lat_tests = [self.w.test(f) for f in self.lat_families]
        self.lat_tests = lat_tests
        self.lat = np.mean([t.evalue for t in lat_tests], axis=0)
        self.new, self.new_types = self._new_errors()

    def _new_errors(self) -> tuple[Array, dict[str, int]]:
        d, w = self.d, self.w
        post_minutes = w.minutes[w.post]
        seen = {kind for kind, t in self.first_seen.items() if t < w.start_min}
        base_after = {e.kind for e in self.errors if e.version != d.version and e.kind}
        s = self.err_family[ALL]
        cand_cum = np.cumsum(s.cc[w.post])
        base_cum = s.bc[w.pre].sum() + np.cumsum(s.bc[w.post])
        share = cand_cum / np.maximum(cand_cum + base_cum, 1)
        counts: dict[str, Array] = {}
        cand_types: set[str] = set()
        for e in self.errors:
            if e.version != d.version or not e.own or e.kind is None or e.minute < w.start_min:
                continue
            cand_types.add(e.kind)
            if e.kind in seen or e.kind in base_after:
                continue
            arr = counts.setdefault(e.kind, np.zeros(len(post_minutes)))
            arr[w._index(e.minute) - int(w.pre.sum())] += 1
        if not counts:
            return np.ones(len(post_minutes)), {}
        per_type = [
            np.array(
                [
                    evidence.new_type_evalue(p, int(k))
                    for p, k in zip(share, np.cumsum(c), strict=True)
                ]
            )
            for c in counts.values()
        ]
        e_new = np.max(per_type, axis=0) / max(len(cand_types), 1)
        return e_new, {k: int(c.sum()) for k, c in counts.items()}

    def _minute_time(self, post_index: int) -> int:
        end = int(self.w.minutes[self.w.post][post_index]) + MINUTE_NS
        return min(end, self.d.data_end)

    def _healthy_evalue(self, s: _Series, tolerance: float, margin: float = 0.0) -> Array:
        """Evidence that the candidate's event rate is below ``tolerance`` times the
        baseline's (or its rate plus ``margin``): split minutes, then candidate-only ones
        against the rate before the deploy."""
        post, pre = self.w.post, self.w.pre
        only = s.bc[post] == 0
        p_pre = _rate(s.be[pre].sum(), s.bc[pre].sum())
        return evidence.split_healthy_eprocess(
            s.cc[post], s.ce[post], s.bc[post], s.be[post], tolerance
        ) * evidence.poisson_healthy_eprocess(
            np.where(only, s.cc[post], 0),
            np.where(only, s.ce[post], 0),
            p_pre,
            max(tolerance * p_pre, p_pre + margin),
        )

    def _healthy_from(self) -> tuple[int | None, dict[str, float]]:
        """First post-deploy index where both the error and latency checks pass."""
        w, s = self.w, self.err_family[ALL]
        post = w.post
        p_base = _rate(s.be.sum(), s.bc.sum())
        err_h = self._healthy_evalue(s, ERROR_TOLERANCE, ERROR_MARGIN)
        limit = max(ERROR_TOLERANCE * p_base, p_base + ERROR_MARGIN)
        cum_c, cum_e = np.cumsum(s.cc[post]), np.cumsum(s.ce[post])
        # The candidate's 95% upper bound is within the limit: P(X <= e | limit) <= 5%.
        ucb_ok = np.array(
            [
                c > 0 and evidence.poisson_cdf(e, limit * c) <= 0.05
                for c, e in zip(cum_c, cum_e, strict=True)
            ],
            dtype=bool,
        )
        err_ok = (err_h >= HEALTHY_EVIDENCE) | ucb_ok
        lat = self.lat_families[HEALTHY_QUANTILE_INDEX].get(ALL)
        if lat is None or lat.bc.sum() + lat.cc.sum() == 0:
            lat_h = np.full(int(post.sum()), np.inf)
        else:
            lat_h = self._healthy_evalue(lat, LATENCY_TOLERANCE)
        observed = w.minutes[post] + MINUTE_NS - w.start_min >= MIN_OBSERVE_NS
        ok = err_ok & (lat_h >= HEALTHY_EVIDENCE) & observed & (cum_c > 0)
        idx = np.flatnonzero(ok)
        # Traffic still needed, assuming evidence keeps growing with traffic as it has.
        calls = float(cum_c[-1]) if len(cum_c) else 0.0
        need_err = 0.0 if len(err_ok) == 0 or err_ok[-1] else (float(cum_e[-1]) + 3) / limit
        last = float(lat_h[-1]) if len(lat_h) else 0.0
        lat_log = math.log(last) if 0 < last < math.inf else 0.0
        need_lat = (
            0.0
            if len(lat_h) and lat_h[-1] >= HEALTHY_EVIDENCE
            else (calls * math.log(HEALTHY_EVIDENCE) / lat_log if lat_log > 0.1 else 2 * calls)
        )
        return (int(idx[0]) if len(idx) else None), {
            "calls": calls,
            "need_calls": max(need_err, need_lat),
            "minutes": float(observed.size),
        }

    def _downstream_latency(self) -> str | None:
        """A downstream service whose own latency shifted at the deploy, if any."""
        d, w = self.d, self.w
        threshold = 1 / ALPHA_LATENCY
        others = blame.downstream_services(self.con, d.service, d.environment, w.since, w.until)
        specs = [
            _Spec(i, other, d.environment, None, w.start_min, w.since, w.until)
            for i, other in enumerate(others)
        ]
        for i, (ow, slow_rows) in _prepare(self.con, "rollups", specs).items():
            calls = ow.calls()
            tests = [ow.test(ow.series(calls, s)) for s in ow.slow(slow_rows)]
            e = np.mean([t.evalue for t in tests], axis=0)
            if len(e) and e.max() >= threshold:
                return others[i]
        return None

    def verdict(self) -> Verdict:
        """Regression, healthy, inconclusive or pending, with signals and explanation."""
        d, w = self.d, self.w
        prev = d.previous_version or "the previous version"
        s = self.err_family[ALL]
        post = w.post
        cand_calls = float(s.cc[post].sum())
        notes = self._downstream_note()
        if cand_calls == 0:
            return Verdict(
                d, "pending", explanation=f"No entry-span traffic of {d.version} yet." + notes
            )
        crossings: list[tuple[int, dict[str, Any]]] = []
        i = evidence.first_crossing(self.err.evalue, 1 / ALPHA_ERRORS)
        if i is not None:
            crossings.append((i, self._error_signal(i)))
        i = evidence.first_crossing(self.lat, 1 / ALPHA_LATENCY)
        blamed = None
        if i is not None:
            lat_split = np.mean([t.split_only() for t in self.lat_tests], axis=0)
            split_alone = evidence.first_crossing(lat_split, 1 / ALPHA_LATENCY)
            if split_alone is None:
                blamed = self._downstream_latency()
            if blamed is None:
                crossings.append((i, self._latency_signal(i)))
        i = evidence.first_crossing(self.new, 1 / ALPHA_NEW)
        if i is not None:
            crossings.append((i, self._new_error_signal(i)))
        if blamed is not None:
            notes += (
                f" Latency rose after the deploy, but {blamed}, which {d.service} calls, slowed"
                " down at the same time: the latency originates there."
            )
        if crossings:
            crossings.sort(key=lambda c: c[0])
            signals = [c[1] for c in crossings]
            first = crossings[0][0]
            suspects = attribution.suspects(
                self.con, d, w.start_min, w.until, self.errors, self.w.kinds
            )
            what = "; ".join(_describe(sig, self.new_types) for sig in signals)
            where = ""
            if suspects:
                top = suspects[0]
                where = (
                    f" Errors concentrate on {top['attribute']}={top['value']}"
                    f" ({_fmt_pct(top['share_of_errors'])} of them)"
                )
                exc = [
                    x
                    for x in suspects[1:]
                    if x["attribute"] == "exception.type" and x["value"] not in what
                ]
                where += f", mostly {exc[0]['value']}." if exc else "."
            return Verdict(
                d,
                "regression",
                signals,
                suspects,
                self._minute_time(first),
                f"{d.version} of {d.service} ({d.rollout} after {prev}) is worse: {what}."
                + where
                + notes,
            )
        healthy_at, need = self._healthy_from()
        p_c = _rate(s.ce[post].sum(), cand_calls)
        p_b = _rate(s.be.sum(), s.bc.sum())
        if healthy_at is not None:
            return Verdict(
                d,
                "healthy",
                decided_at=self._minute_time(healthy_at),
                explanation=(
                    f"{d.version} served {cand_calls:,.0f} calls with error rate {_fmt_pct(p_c)}"
                    f" (baseline {_fmt_pct(p_b)}) and no latency shift; it is not worse than"
                    f" {ERROR_TOLERANCE:g}x the baseline's errors or {LATENCY_TOLERANCE:g}x its"
                    " slow calls." + notes
                ),
            )
        cand_last = max((iw.last for iw in d.instances), default=d.started_at)
        stopped = cand_last < d.data_end - STOPPED_AFTER_NS
        horizon = d.data_end >= d.started_at + HORIZON_NS
        more = max(need["need_calls"] - need["calls"], 1.0)
        rate = cand_calls / max(need["minutes"], 1.0)
        traffic = f"about {more:,.0f} more calls of {d.version}"
        if rate > 0 and not stopped:
            traffic += f" (~{math.ceil(more / rate)} min at the current {rate:,.0f}/min)"
        if stopped or horizon:
            why = "stopped serving" if stopped else "was observed for the full hour"
            return Verdict(
                d,
                "inconclusive",
                explanation=(
                    f"{d.version} {why} without enough traffic to tell: {cand_calls:,.0f} calls,"
                    f" error rate {_fmt_pct(p_c)} (baseline {_fmt_pct(p_b)}); {traffic} would"
                    " settle it." + notes
                ),
            )
        return Verdict(
            d,
            "pending",
            explanation=(
                f"Watching {d.version}: {cand_calls:,.0f} calls so far, no regression; {traffic}"
                " to call it healthy." + notes
            ),
        )

    def _downstream_note(self) -> str:
        d = self.d
        down: dict[tuple[str, str | None], int] = {}
        own = 0
        for e in self.errors:
            if e.minute < self.w.start_min:
                continue
            if e.own:
                own += 1
            elif e.origin_service is not None:
                key = (e.origin_service, e.origin_span)
                down[key] = down.get(key, 0) + 1
        total = sum(down.values())
        if total < 5 or total < own:
            return ""
        (svc, span), n = max(down.items(), key=lambda kv: kv[1])
        return (
            f" {total:,} errors of {d.service} since the deploy originate downstream, mostly in"
            f" {svc} (span {span!r}, {n:,}); they are not counted against this deploy."
        )

    def _best_span(self, per_span: dict[str, Array], i: int) -> str | None:
        if len(per_span) == 1 and ALL in per_span:
            return None
        return max(per_span, key=lambda n: float(per_span[n][i]))

    def _error_signal(self, i: int) -> dict[str, Any]:
        name = self._best_span(self.err.per_span, i)
        s = self.err_family[name or ALL]
        upto = self.w.post.copy()
        upto[np.flatnonzero(self.w.post)[i + 1 :]] = False
        design = (
            "canary/baseline split"
            if s.bc[upto].sum()
            else "before/after against blocks of the hour before the deploy"
        )
        return {
            "kind": "error_rate",
            "span_name": name,
            "baseline": round(
                _rate(s.be[self.w.pre | upto].sum(), s.bc[self.w.pre | upto].sum()), 6
            ),
            "candidate": round(_rate(s.ce[upto].sum(), s.cc[upto].sum()), 6),
            "evidence": float(f"{float(self.err.evalue[i]):.3g}"),
            "test": (
                f"mixture sequential probability ratio (e-value) on own-origin errors, {design}"
                f" minute by minute; regression at e >= {1 / ALPHA_ERRORS:g}"
            ),
        }

    def _latency_signal(self, i: int) -> dict[str, Any]:
        qi = int(np.argmax([t.evalue[i] for t in self.lat_tests]))
        test = self.lat_tests[qi]
        name = self._best_span(test.per_span, i)
        q = LATENCY_QUANTILES[qi]
        s = self.lat_families[qi][name or ALL]
        upto = self.w.post.copy()
        upto[np.flatnonzero(self.w.post)[i + 1 :]] = False
        b_share = _rate(s.be[self.w.pre | upto].sum(), s.bc[self.w.pre | upto].sum())
        c_share = _rate(s.ce[upto].sum(), s.cc[upto].sum())
        th = self.thresholds.get(name or "", None)
        threshold = f" ({_fmt_ms(_quantile_value(th[qi]))})" if th else ""
        return {
            "kind": "latency",
            "span_name": name,
            "baseline": round(b_share, 6),
            "candidate": round(c_share, 6),
            "evidence": float(f"{float(self.lat[i]):.3g}"),
            "test": (
                f"e-value on the share of calls slower than the baseline's p{q * 100:g}{threshold}"
                f" (baseline/candidate are those shares), mixed over p50/p90/p99 from the rollup"
                f" sketches; regression at e >= {1 / ALPHA_LATENCY:g}"
            ),
        }

    def _new_error_signal(self, i: int) -> dict[str, Any]:
        kind, count = max(self.new_types.items(), key=lambda kv: kv[1])
        spans = [e for e in self.errors if e.kind == kind and e.version == self.d.version]
        s = self.err_family[ALL]
        return {
            "kind": "new_error",
            "span_name": spans[0].span_name if spans else None,
            "baseline": 0.0,
            "candidate": round(_rate(count, s.cc[self.w.post].sum()), 6),
            "evidence": float(f"{float(self.new[i]):.3g}"),
            "test": (
                f"error type {kind!r} never seen before the deploy, {count} times in"
                f" {self.d.version}; e-value that only the candidate produces it,"
                f" regression at e >= {1 / ALPHA_NEW:g}"
            ),
        }


def _describe(sig: dict[str, Any], new_types: dict[str, int]) -> str:
    where = f" on {sig['span_name']}" if sig.get("span_name") else ""
    if sig["kind"] == "error_rate":
        return f"error rate{where} {_fmt_pct(sig['candidate'])} vs {_fmt_pct(sig['baseline'])}"
    if sig["kind"] == "latency":
        return (
            f"latency shifted{where}: {_fmt_pct(sig['candidate'])} of calls slower than the"
            f" baseline's threshold vs {_fmt_pct(sig['baseline'])}"
        )
    top = max(new_types.items(), key=lambda kv: kv[1])[0] if new_types else "?"
    return f"a new error type{where}, {top}"


def evaluate(con: duckdb.DuckDBPyConnection, d: Deploy, since: int | None = None) -> Verdict:
    """The verdict on deploy ``d``; ``since`` bounds the baseline window before it."""
    bound = d.started_at - LOOKBACK_NS if since is None else since
    return _judge(con, [(d, bound)], d.service)[0]


def _active_since(
    con: duckdb.DuckDBPyConnection, windows: list[tuple[Deploy, int]]
) -> list[tuple[Deploy, int]]:
    """Each deploy with its baseline's start: the earliest of the last ``PRE_WINDOW_NS``
    worth of minutes in which the service served another version, after the bound."""
    specs = [_spec(i, d, bound, d.version) for i, (d, bound) in enumerate(windows)]
    name = _register_specs(con, specs)
    try:
        rows = con.execute(
            f"""select idx, epoch_ns(min(minute)) from (
                    select idx, minute,
                           row_number() over (partition by idx order by minute desc) as rn
                    from (select distinct w.idx, r.minute
                          from {_join("rollups", name)}
                            and r.minute < {_ts("w.start")}
                            and r.service_version is distinct from w.version))
                where rn <= {PRE_WINDOW_NS // MINUTE_NS} group by idx"""
        ).fetchall()
    finally:
        con.unregister(name)
    first = dict(rows)
    return [(d, first.get(i, d.started_at)) for i, (d, _) in enumerate(windows)]


def _judge(
    con: duckdb.DuckDBPyConnection, windows: list[tuple[Deploy, int]], service: str | None
) -> list[Verdict]:
    windows = _active_since(con, windows)
    src = _prefetch(con, windows, service)
    specs = [_spec(i, d, since, d.version) for i, (d, since) in enumerate(windows)]
    prepared = _prepare(con, src.rollups, specs)
    errors = blame.error_spans(
        con, [(x.idx, x.service, x.environment, x.since, x.until) for x in specs], src.errors
    )
    return [
        _Evaluation(
            con,
            d,
            prepared[i],
            errors.get(i, []),
            src.first_seen.get((d.service, d.environment), {}),
        ).verdict()
        for i, (d, _) in enumerate(windows)
    ]


def deploy_verdicts(con: duckdb.DuckDBPyConnection, service: str | None = None) -> list[Verdict]:
    """Detects the deploys in the data and judges each, oldest first.

    The baseline window of a deploy starts no earlier than the previous deploy of the same
    service and environment, so one rollout is never the baseline of the next.
    """
    windows: list[tuple[Deploy, int]] = []
    last: dict[tuple[str, str | None], Deploy] = {}
    for d in detect_deploys(con, service):
        key = (d.service, d.environment)
        prev = last.get(key)
        since = d.started_at - LOOKBACK_NS
        if prev is not None:
            bound = prev.completed_at if prev.completed_at is not None else prev.started_at
            since = max(since, min(bound, d.started_at))
        windows.append((d, since))
        last[key] = d
    return _judge(con, windows, service) if windows else []
