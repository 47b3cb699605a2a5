"""Deploy verdicts: false alarms, detection delay and speed, over many simulated deploys.

1. **A/A, checked every 10 s.** The engine's error-rate and latency e-processes on
   simulated A/A canaries (both versions identical), 10-second steps for 30 minutes, 5
   requests/s in total: the share of deploys that *ever* reach a regression threshold.
   Checking at every step is what ``aftershock watch --interval 10s`` does.
2. **A/A through the whole engine.** Synthetic telemetry (``aftershock.deploys.synthetic``)
   of healthy canaries and cut-overs, judged by ``deploy_verdicts``: the share called
   ``regression``. Each verdict already contains every minute's check (the e-process runs
   minute by minute over the data).
3. **Detection delay.** 2x error-rate regressions of a new version serving 5 requests/s, as
   canaries (one of four instances, of 20 req/s in all) and as cut-overs, at several
   baseline error rates: ``decided_at`` minus the deploy's start (median over all deploys,
   undetected ones counting as never), and the share detected in the 30 minutes observed
   (canaries) or the hour (cut-overs). Also, without a target, a canary on a quarter of
   5 req/s (1.25 req/s on the new version), which shows where the information runs out.
4. **Speed.** Verdicts for 100 services over 7 days of rollups (one deploy each), built in
   DuckDB: the wall time of ``deploy_verdicts``.

Targets (issue 6): false alarms at most 1%; 2x regressions at 5 req/s detected with median
delay under 10 minutes; 100 services over 7 days in under 1 s. A miss is reported, not fatal.

Run: ``python benches/bench_deploys.py`` (``--quick`` for fewer simulations).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import duckdb
import numpy as np

from aftershock.deploys import deploy_verdicts, evidence
from aftershock.deploys.synthetic import Synthetic
from aftershock.deploys.verdict import ALPHA_ERRORS, ALPHA_LATENCY
from aftershock.lake import table_schema

MINUTE_NS = 60_000_000_000


def aa_every_10s(sims: int, share: float, error_rate: float, rng: np.random.Generator) -> float:
    """Share of A/A canaries whose error or latency e-process ever crosses, 10 s steps."""
    steps, per_step = 180, 5 * 10  # 30 minutes of 10 s at 5 requests/s
    alarms = 0
    # The latency family counts calls slower than the baseline's p50, p90 and p99.
    slow_rates = (0.5, 0.1, 0.01)
    for _ in range(sims):
        cc = rng.poisson(per_step * share, steps).astype(float)
        bc = rng.poisson(per_step * (1 - share), steps).astype(float)
        err = evidence.split_eprocess(
            cc,
            rng.binomial(cc.astype(int), error_rate),
            bc,
            rng.binomial(bc.astype(int), error_rate),
        )
        # As the engine combines them (one span name, both versions serving throughout).
        hit = bool((err >= 1 / ALPHA_ERRORS).any())
        lat = np.mean(
            [
                evidence.split_eprocess(
                    cc, rng.binomial(cc.astype(int), r), bc, rng.binomial(bc.astype(int), r)
                )
                for r in slow_rates
            ],
            axis=0,
        )
        hit |= bool((lat >= 1 / ALPHA_LATENCY).any())
        alarms += hit
    return alarms / sims


def simulate(
    n: int,
    seed: int,
    error_rate: float,
    factor: float,
    rollout: str,
    per_minute: float = 300,
) -> list[tuple[str, int | None]]:
    """``n`` services deploying at minute 60, judged on 30 minutes after (canary) or 60
    (cut-over); returns (verdict, delay in ns) per deploy."""
    s = Synthetic(seed=seed)
    end = 90 if rollout == "canary" else 120
    for k in range(n):
        svc = f"svc-{k}"
        if rollout == "canary":
            for i in range(3):
                s.traffic(svc, "1.0", range(0, end), per_minute / 4, error_rate=error_rate,
                          instance=f"{svc}-{i}")  # fmt: skip
            s.traffic(svc, "1.0", range(0, 60), per_minute / 4, error_rate=error_rate,
                      instance=f"{svc}-c")  # fmt: skip
            s.traffic(svc, "1.1", range(60, end), per_minute / 4, error_rate=error_rate * factor,
                      instance=f"{svc}-c")  # fmt: skip
        else:
            s.traffic(svc, "1.0", range(0, 60), per_minute, error_rate=error_rate,
                      instance=f"{svc}-0")  # fmt: skip
            s.traffic(svc, "1.1", range(60, end), per_minute, error_rate=error_rate * factor,
                      instance=f"{svc}-0")  # fmt: skip
    out = []
    for v in deploy_verdicts(s.install()):
        delay = None if v.decided_at is None else v.decided_at - v.deploy.started_at
        out.append((v.verdict, delay))
    return out


def speed(services: int = 100, days: int = 7) -> tuple[int, int, float]:
    """Rows of rollups, deploys found, and the seconds ``deploy_verdicts`` takes."""
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    for name in ("spans", "rollups", "markers", "logs"):
        schema = table_schema(name)
        schema = schema.remove(schema.get_field_index("day"))
        con.register("_empty", schema.empty_table())
        con.execute(f"create table {name} as select * from _empty")
        con.unregister("_empty")
    minutes = days * 1440
    t0 = 1_795_000_020 * 1_000_000_000
    con.execute(
        f"""
        insert into rollups (minute, service_name, service_version, deployment_environment,
                             span_name, span_kind, calls, errors, duration_sum_ns,
                             duration_min_ns, duration_max_ns, latency_sketch)
        select timezone('UTC', make_timestamp_ns({t0} + m * {MINUTE_NS})),
               'svc-' || s,
               case when m >= {minutes} - 1440 + s * 7 then '2.0' else '1.0' end,
               'prod', n, 'SERVER', 150, (hash(s, m, n) % 100 = 0)::bigint, 0, 0, 0,
               [{{'bucket': 880, 'count': 50::bigint}}, {{'bucket': 895, 'count': 80::bigint}},
                {{'bucket': 910, 'count': 20::bigint}}]
        from range({services}) a(s), range({minutes}) b(m),
             (values ('GET /'), ('POST /order')) c(n)
        """
    )
    (rows,) = con.execute("select count(*) from rollups").fetchone() or (0,)
    best = float("inf")
    found = 0
    for _ in range(3):
        start = time.perf_counter()
        found = len(deploy_verdicts(con))
        best = min(best, time.perf_counter() - start)
    return int(rows), found, best


def verdict_vs_target(median_min: float, new_version_rps: float) -> str:
    """The detection-delay target is for a new version serving 5 req/s."""
    if new_version_rps < 5:
        return f"no target: the new version serves {new_version_rps:g} req/s, under 5"
    return f"target < 10 min: {'met' if median_min < 10 else 'MISSED'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer simulations")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    rng = np.random.default_rng(1)
    sims = 500 if args.quick else 4000
    print("\n1. A/A canaries, e-processes checked every 10 s for 30 min, 5 req/s")
    for share in (0.25, 0.5):
        for rate in (0.01, 0.05):
            fa = aa_every_10s(sims, share, rate, rng)
            print(f"   canary share {share:.0%}, error rate {rate:.0%}: false alarms {fa:.2%}"
                  f" of {sims}  (target <= 1%: {'met' if fa <= 0.01 else 'MISSED'})")  # fmt: skip
    batches = 2 if args.quick else 10
    print("\n2. A/A deploys through the engine (20 services per batch)")
    for rollout in ("canary", "cutover"):
        verdicts = [
            v for b in range(batches) for v, _ in simulate(20, 1000 + b, 0.01, 1.0, rollout)
        ]
        fa = verdicts.count("regression") / len(verdicts)
        counts = {k: verdicts.count(k) for k in sorted(set(verdicts))}
        print(f"   {rollout}: {len(verdicts)} deploys, false alarms {fa:.2%}, verdicts {counts}"
              f"  (target <= 1%: {'met' if fa <= 0.01 else 'MISSED'})")  # fmt: skip
    print("\n3. 2x error-rate regressions: delay from deploy start to decision")
    # The canary takes a quarter of the service's calls: of 5 req/s in all (1.25 req/s on the
    # new version), or of 20 req/s (the new version itself at 5 req/s, as in a cut-over).
    # The first has no target (the new version sees 1.25 req/s); it shows the information limit.
    cases = (("canary", 300, "canary, 1/4 of 5 req/s"), ("canary", 1200, "canary at 5 req/s"),
             ("cutover", 300, "cut-over, 5 req/s"))  # fmt: skip
    for rollout, per_minute, label in cases:
        new_version_rps = per_minute / 60 / (4 if rollout == "canary" else 1)
        for rate in (0.01, 0.02, 0.05):
            results = [
                r
                for b in range(batches // 2 or 1)
                for r in simulate(20, 2000 + b, rate, 2.0, rollout, per_minute)
            ]
            # Undetected deploys count as never detected, so the median is over all of them.
            delays = [
                d / MINUTE_NS if v == "regression" and d is not None else float("inf")
                for v, d in results
            ]
            detected = sum(d < float("inf") for d in delays) / len(results)
            med = statistics.median(delays)
            print(f"   {label}, baseline {rate:.0%} -> {2 * rate:.0%}: detected {detected:.0%}"
                  f" of {len(results)}, median delay {med:.1f} min"
                  f"  ({verdict_vs_target(med, new_version_rps)})")  # fmt: skip
    rows, found, secs = speed()
    met = "met" if secs < 1 else "MISSED"
    print(f"\n4. speed: {rows:,} rollup rows (100 services x 7 days x 2 spans), {found} deploys,"
          f" verdicts in {secs:.2f} s (best of 3)  (target < 1 s: {met})")  # fmt: skip


if __name__ == "__main__":
    main()
