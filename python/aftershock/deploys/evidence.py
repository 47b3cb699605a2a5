"""The statistics behind verdicts: anytime-valid e-processes on counts of events.

An *event* is an error, or a call slower than a latency threshold fixed before the deploy.
Every test here is a test martingale (an e-process) under its null hypothesis, so by Ville's
inequality the chance that it *ever* reaches ``1 / alpha`` is at most ``alpha``, however
often it is looked at. That is what lets ``aftershock watch`` re-check every few seconds
without inflating false alarms.

Two designs:

* **split** (canary and rolling updates): in each minute where both versions serve, given
  the minute's total number of events, each event comes from the candidate with probability
  ``pi = c / (c + b)`` (its share of calls) when both versions have the same event rate. If the
  candidate's rate is ``rho`` times the baseline's, that probability is
  ``rho c / (rho c + b)``. The likelihood ratio of ``rho`` against 1, multiplied over minutes
  and mixed over a grid of ``rho``, is the e-process. Anything that hits both versions at once
  (a downstream outage, a traffic spike) cancels out.
* **before/after** (full cut-overs, and candidate-only minutes after a rollout): each
  candidate-only minute is paired with its own block of the baseline window before the
  deploy (the most recent minutes not used yet, ``PAIR_RATIO`` times the minute's calls),
  and tested with the split design against that block. The blocks are disjoint and chosen
  from calls alone, so given each pair's total the split is exact under the null whatever
  the baseline's rate: no estimate of it is needed. Once the window is used up, the
  candidate's events are a Poisson stream tested against an upper bound on the baseline
  rate from the whole window (a Poisson upper confidence bound at level ``BOUND_ALPHA``),
  again mixed over ``rho``; that part holds when the bound does, which adds
  ``BOUND_ALPHA`` to the false-alarm chance of those late minutes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

#: Alternatives mixed: the candidate's event rate over the baseline's, and their prior
#: weights (most on the 1.5x-5x regressions that are hard to see; sparse 10x+ ones pile up
#: evidence fast enough with less).
RHO_GRID: tuple[float, ...] = (1.25, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 100.0)
RHO_WEIGHTS: tuple[float, ...] = (0.1, 0.2, 0.2, 0.2, 0.1, 0.1, 0.05, 0.05)
#: Level of the upper bound on the baseline rate in the before/after design.
BOUND_ALPHA = 0.001
#: Baseline calls per candidate call in the blocks of the before/after design: more makes
#: each minute's test sharper (a 2x regression at 1% errors, 5 req/s: 0.92 nats a minute at 5,
#: 1.16 with the rate known exactly), fewer makes the hour of baseline last longer.
PAIR_RATIO = 5.0
#: E-values are capped at exp(LOG_CAP), far past any threshold, to stay finite.
LOG_CAP = 700.0


def _as_array(values: Sequence[float] | Array) -> Array:
    return np.asarray(values, dtype=np.float64)


def split_log_lr(
    cand_calls: Sequence[float] | Array,
    cand_events: Sequence[float] | Array,
    base_calls: Sequence[float] | Array,
    base_events: Sequence[float] | Array,
    rho: float | Sequence[float],
    null_rho: float = 1.0,
) -> Array:
    """Per-minute log likelihood ratios of ``rho`` against ``null_rho`` for the split of
    events between candidate and baseline; minutes without both versions contribute 0.

    With a sequence of ``rho``, one row per value.
    """
    c, x = _as_array(cand_calls), _as_array(cand_events)
    b, y = _as_array(base_calls), _as_array(base_events)
    both = (c > 0) & (b > 0)
    cs, bs = np.where(both, c, 1.0), np.where(both, b, 1.0)
    r = np.asarray(rho, dtype=np.float64)
    r = r[:, None] if r.ndim else r
    q1 = r * cs / (r * cs + bs)
    q0 = null_rho * cs / (null_rho * cs + bs)
    out = x * np.log(q1 / q0) + y * np.log((1 - q1) / (1 - q0))
    return np.asarray(np.where(both, out, 0.0), dtype=np.float64)


def mixture(log_lrs: list[Array] | Array, weights: Sequence[float] = RHO_WEIGHTS) -> Array:
    """The running e-value of a weighted mixture of per-step log likelihood ratios (one
    row per alternative)."""
    if len(log_lrs) == 0:
        return np.ones(0)
    cum = np.cumsum(np.atleast_2d(np.asarray(log_lrs, dtype=np.float64)), axis=1)
    top = cum.max(axis=0)
    w = np.asarray(weights, dtype=np.float64)[:, None]
    return np.asarray(
        np.exp(np.minimum(top, LOG_CAP)) * (w * np.exp(cum - top)).sum(axis=0), dtype=np.float64
    )  # log-sum-exp: a long regression overflows a plain exp


def split_eprocess(
    cand_calls: Sequence[float] | Array,
    cand_events: Sequence[float] | Array,
    base_calls: Sequence[float] | Array,
    base_events: Sequence[float] | Array,
) -> Array:
    """Running e-value, minute by minute, against "the candidate's event rate is not
    higher than the baseline's", in the split design."""
    return mixture(split_log_lr(cand_calls, cand_events, base_calls, base_events, RHO_GRID))


def split_healthy_eprocess(
    cand_calls: Sequence[float] | Array,
    cand_events: Sequence[float] | Array,
    base_calls: Sequence[float] | Array,
    base_events: Sequence[float] | Array,
    tolerance: float,
) -> Array:
    """Running e-value against "the candidate's rate is ``tolerance`` times the baseline's
    or worse": large values show the candidate is no worse than the tolerance allows.

    Valid for every rate ratio at or above ``tolerance``, since the binomial likelihood
    ratio is monotone in the candidate's count.
    """
    lr = split_log_lr(cand_calls, cand_events, base_calls, base_events, 1.0, tolerance)
    return np.asarray(np.exp(np.minimum(np.cumsum(lr), LOG_CAP)), dtype=np.float64)


def poisson_upper_bound(events: float, exposure: float, alpha: float = BOUND_ALPHA) -> float:
    """Exact one-sided upper confidence bound on a Poisson rate per unit of exposure."""
    if exposure <= 0:
        return math.inf
    return _poisson_mean_bound(int(events), alpha) / exposure


@lru_cache(maxsize=4096)
def _poisson_mean_bound(k: int, alpha: float) -> float:
    """The mean ``mu`` with P(X <= k | mu) = alpha."""
    if k >= 100:  # Wilson-Hilferty: within 0.1% here, and the exact sum is O(k)
        z = NormalDist().inv_cdf(1 - alpha)
        n = k + 1
        return float(n * (1 - 1 / (9 * n) + z / (3 * math.sqrt(n))) ** 3)
    lo, hi = float(k), float(k) + 10.0 + 10.0 * math.sqrt(k + 1)
    while poisson_cdf(k, hi) > alpha:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        if poisson_cdf(k, mid) > alpha:
            lo = mid
        else:
            hi = mid
    return hi


def pair_baseline(
    pre_calls: Sequence[float] | Array,
    pre_events: Sequence[float] | Array,
    cand_calls: Sequence[float] | Array,
    only: Sequence[bool] | npt.NDArray[np.bool_],
    ratio: float = PAIR_RATIO,
) -> tuple[Array, Array]:
    """Disjoint blocks of the baseline window, one per candidate-only minute with calls,
    for the split design: calls and events per minute (0 where no block is left).

    Blocks are whole baseline minutes, most recent first, at least one each, as many as
    make the blocks so far hold ``ratio`` times the candidate's calls so far. They depend
    only on calls, never on events, so given each pair's total events the candidate's
    share is binomial under the null whatever the baseline's rate: every minute's factor
    has mean 1, in whatever order the blocks are revealed, and the product stays a test
    martingale.
    """
    pc, pe = _as_array(pre_calls)[::-1], _as_array(pre_events)[::-1]
    c = _as_array(cand_calls)
    bc, be = np.zeros(len(c)), np.zeros(len(c))
    idx = np.flatnonzero(np.asarray(only, dtype=bool) & (c > 0))
    if len(pc) == 0 or len(idx) == 0:
        return bc, be
    cum_calls = np.concatenate(([0.0], np.cumsum(pc)))
    cum_events = np.concatenate(([0.0], np.cumsum(pe)))
    # Minutes needed to reach each cumulative target, then at least one more per block.
    k = np.searchsorted(cum_calls[1:], ratio * np.cumsum(c[idx]), side="left") + 1
    steps = np.arange(len(idx))
    k = np.minimum(np.maximum.accumulate(k - steps) + steps, len(pc))
    prev = np.concatenate(([0], k[:-1]))
    bc[idx] = cum_calls[k] - cum_calls[prev]
    be[idx] = cum_events[k] - cum_events[prev]
    return bc, be


def combined_eprocess(
    cand_calls: Sequence[float] | Array,
    cand_events: Sequence[float] | Array,
    base_calls: Sequence[float] | Array,
    base_events: Sequence[float] | Array,
    rate: float,
    paired: tuple[Array, Array] | None = None,
) -> Array:
    """Split design in minutes where both versions serve; in minutes where only the
    candidate serves, the split design against its block of the baseline window
    (``paired``, from ``pair_baseline``) while blocks last, then before/after against
    ``rate`` (an upper bound on the baseline's rate from the whole window).

    For each alternative the per-minute factors multiply into one martingale, since each
    has mean at most 1 given the past (the bound's minutes: when the bound holds), so a
    canary that completes keeps its evidence.
    """
    c, x = _as_array(cand_calls), _as_array(cand_events)
    bc, be = _as_array(base_calls), _as_array(base_events)
    only = bc == 0
    if paired is not None:
        use = only & (paired[0] > 0)
        bc, be = np.where(use, paired[0], bc), np.where(use, paired[1], be)
        only = only & ~use
    rate = max(rate, 1e-12) if math.isfinite(rate) else math.inf
    lr = split_log_lr(c, x, bc, be, RHO_GRID)
    if math.isfinite(rate):
        r = np.asarray(RHO_GRID)[:, None]
        lr = lr + np.where(only, x * np.log(r) - (r - 1) * rate * c, 0.0)
    return mixture(lr)


def poisson_cdf(k: float, mu: float) -> float:
    """P(X <= k) for X ~ Poisson(mu); a normal approximation past 100 events."""
    k = int(k)
    if mu <= 0:
        return 1.0
    if k >= 100:
        z = (k + 0.5 - mu) / math.sqrt(mu)
        return NormalDist().cdf(z)
    term = total = math.exp(-mu)
    for i in range(1, k + 1):
        term *= mu / i
        total += term
    return min(total, 1.0)


def poisson_healthy_eprocess(
    cand_calls: Sequence[float] | Array,
    cand_events: Sequence[float] | Array,
    good_rate: float,
    bad_rate: float,
) -> Array:
    """Running e-value against "the candidate's rate is ``bad_rate`` or worse", with
    ``good_rate`` as the alternative."""
    c, x = _as_array(cand_calls), _as_array(cand_events)
    if bad_rate <= good_rate or not math.isfinite(bad_rate):
        return np.ones(len(c))
    good_rate = max(good_rate, 1e-12)
    lr = x * math.log(good_rate / bad_rate) - (good_rate - bad_rate) * c
    return np.asarray(np.exp(np.minimum(np.cumsum(lr), LOG_CAP)), dtype=np.float64)


def first_crossing(evalues: Array, threshold: float) -> int | None:
    """Index of the first step where ``evalues`` reaches ``threshold``, else None."""
    hits = np.flatnonzero(evalues >= threshold)
    return int(hits[0]) if len(hits) else None


def new_type_evalue(cand_share: float, count: int) -> float:
    """E-value that all ``count`` occurrences of one error type came from the candidate,
    when its share of calls is ``cand_share`` and the type is as likely on both sides.

    The likelihood ratio of "only the candidate produces it" against the null; a single
    baseline occurrence would make it 0.
    """
    if count <= 0 or cand_share >= 1:
        return 1.0
    return float(math.exp(min(count * -math.log(max(cand_share, 1e-300)), 700.0)))


def binomial_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), computed in log space."""
    if k <= 0:
        return 1.0
    if p <= 0:
        return 0.0
    if p >= 1:
        return 1.0
    lp, lq = math.log(p), math.log1p(-p)
    terms = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq
        for i in range(k, n + 1)
    ]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def benjamini_hochberg(p_values: Sequence[float], q: float) -> list[bool]:
    """Which hypotheses are rejected with the false discovery rate controlled at ``q``."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    cutoff = -1
    for rank, i in enumerate(order, start=1):
        if p_values[i] <= q * rank / m:
            cutoff = rank
    rejected = [False] * m
    for rank, i in enumerate(order, start=1):
        rejected[i] = rank <= cutoff
    return rejected
