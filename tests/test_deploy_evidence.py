"""The statistics of deploy verdicts: e-processes, bounds and multiple-testing control."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aftershock.deploys import evidence


def test_split_eprocess_has_mean_at_most_one_under_the_null() -> None:
    """A test martingale: at any fixed time its expectation under the null is <= 1."""
    rng = np.random.default_rng(0)
    sims, steps = 5_000, 30
    cc = rng.poisson(20, (sims, steps)).astype(float)
    bc = rng.poisson(80, (sims, steps)).astype(float)
    ce, be = rng.binomial(cc.astype(int), 0.05), rng.binomial(bc.astype(int), 0.05)
    final = np.array([evidence.split_eprocess(cc[i], ce[i], bc[i], be[i])[-1] for i in range(sims)])
    assert final.mean() < 1.1  # 1 up to simulation error
    assert (final >= 20).mean() <= 1 / 20


def test_split_eprocess_grows_under_a_regression_and_ignores_one_sided_minutes() -> None:
    c, b = np.full(30, 100.0), np.full(30, 900.0)
    e = evidence.split_eprocess(c, np.full(30, 3.0), b, np.full(30, 9.0))  # 3x the rate
    assert e[-1] > 1e6 and e[0] < e[-1]
    alone = evidence.split_eprocess(c, np.full(30, 50.0), np.zeros(30), np.zeros(30))
    assert np.allclose(alone, 1.0)  # no baseline alongside: no split evidence


def test_combined_eprocess_tests_candidate_only_minutes_against_the_bound() -> None:
    c = np.full(20, 300.0)
    zeros = np.zeros(20)
    worse = evidence.combined_eprocess(c, np.full(20, 9.0), zeros, zeros, 0.01)  # 3% vs 1%
    same = evidence.combined_eprocess(c, np.full(20, 3.0), zeros, zeros, 0.01)
    assert worse[-1] > 1e6
    assert same[-1] < 1
    unbounded = evidence.combined_eprocess(c, np.full(20, 9.0), zeros, zeros, math.inf)
    assert np.allclose(unbounded, 1.0)


def test_pair_baseline_takes_disjoint_recent_blocks_by_calls() -> None:
    pre_c = np.array([100.0, 100.0, 100.0, 100.0, 100.0])
    pre_e = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    c = np.array([50.0, 0.0, 50.0, 50.0, 50.0])
    only = np.array([True, True, True, False, True])
    bc, be = evidence.pair_baseline(pre_c, pre_e, c, only, ratio=3.0)
    # Most recent first, until the blocks so far hold 3x the candidate's calls so far
    # (150, 300, 450), none when the minute has no calls or a concurrent baseline.
    assert bc.tolist() == [200.0, 0.0, 100.0, 0.0, 200.0]
    assert be.tolist() == [9.0, 0.0, 3.0, 0.0, 3.0]
    # At least one minute per block; nothing once the window is used up.
    bc, be = evidence.pair_baseline(pre_c[:2], pre_e[:2], np.full(4, 10.0), np.ones(4, bool))
    assert bc.tolist() == [100.0, 100.0, 0.0, 0.0]
    assert be.tolist() == [2.0, 1.0, 0.0, 0.0]


@pytest.mark.parametrize("rate", [0.002, 0.01, 0.05])
def test_paired_before_after_is_a_test_martingale_under_the_null(rate: float) -> None:
    """Whatever the baseline's rate, the paired cut-over e-process has mean <= 1 at a fixed
    time and rarely ever reaches 1/alpha (no bound needed while blocks last)."""
    rng = np.random.default_rng(int(rate * 1000))
    sims, steps = 3_000, 12
    finals, ever = [], 0
    for _ in range(sims):
        pc = rng.poisson(300, 60).astype(float)
        pe = rng.binomial(pc.astype(int), rate).astype(float)
        cc = rng.poisson(300, steps).astype(float)
        ce = rng.binomial(cc.astype(int), rate).astype(float)
        zeros = np.zeros(steps)
        paired = evidence.pair_baseline(pc, pe, cc, np.ones(steps, dtype=bool))
        e = evidence.combined_eprocess(cc, ce, zeros, zeros, math.inf, paired)
        finals.append(e[-1])
        ever += bool((e >= 20).any())
    assert np.mean(finals) < 1.1
    assert ever / sims <= 1 / 20


def test_paired_before_after_catches_a_2x_cutover_within_minutes() -> None:
    rng = np.random.default_rng(3)
    delays = []
    for _ in range(200):
        pc = rng.poisson(300, 60).astype(float)
        pe = rng.binomial(pc.astype(int), 0.01).astype(float)
        cc = rng.poisson(300, 60).astype(float)
        ce = rng.binomial(cc.astype(int), 0.02).astype(float)
        zeros = np.zeros(60)
        bound = evidence.poisson_upper_bound(pe.sum(), pc.sum())
        paired = evidence.pair_baseline(pc, pe, cc, np.ones(60, dtype=bool))
        e = evidence.combined_eprocess(cc, ce, zeros, zeros, bound, paired)
        i = evidence.first_crossing(e, 200)
        delays.append(60 if i is None else i + 1)
    assert np.median(delays) <= 9
    assert np.mean(np.array(delays) < 60) >= 0.97


@pytest.mark.parametrize("mu", [0.5, 3.0, 40.0, 400.0])
def test_poisson_upper_bound_covers_the_rate(mu: float) -> None:
    rng = np.random.default_rng(int(mu))
    alpha = 0.05
    draws = rng.poisson(mu, 4000)
    misses = np.mean([evidence.poisson_upper_bound(k, 1.0, alpha) < mu for k in draws])
    assert misses <= alpha + 0.015
    assert evidence.poisson_upper_bound(0, 1000.0, alpha) == pytest.approx(
        -math.log(alpha) / 1000, rel=1e-6
    )


def test_poisson_cdf_matches_the_sum() -> None:
    for k, mu in [(0, 2.0), (3, 2.0), (10, 7.5), (150, 140.0)]:
        exact = sum(math.exp(-mu + i * math.log(mu) - math.lgamma(i + 1)) for i in range(k + 1))
        assert evidence.poisson_cdf(k, mu) == pytest.approx(exact, abs=0.01)


def test_healthy_eprocesses_grow_only_when_the_candidate_is_no_worse() -> None:
    c, b = np.full(60, 500.0), np.full(60, 500.0)
    same = evidence.split_healthy_eprocess(c, np.full(60, 10.0), b, np.full(60, 10.0), 2.0)
    worse = evidence.split_healthy_eprocess(c, np.full(60, 20.0), b, np.full(60, 10.0), 2.0)
    assert same[-1] > 20 > worse[-1]
    good = evidence.poisson_healthy_eprocess(c, np.full(60, 5.0), 0.01, 0.02)
    assert good[-1] > 20


def test_new_type_evalue_and_binomial_tail() -> None:
    assert evidence.new_type_evalue(0.1, 3) == pytest.approx(1000)
    assert evidence.new_type_evalue(0.5, 0) == 1.0
    assert evidence.binomial_sf(0, 10, 0.3) == 1.0
    assert evidence.binomial_sf(10, 10, 0.5) == pytest.approx(0.5**10)
    assert evidence.binomial_sf(3, 10, 0.2) == pytest.approx(
        1 - sum(math.comb(10, i) * 0.2**i * 0.8 ** (10 - i) for i in range(3))
    )


def test_benjamini_hochberg() -> None:
    p = [0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216]
    assert evidence.benjamini_hochberg(p, 0.05) == [True, True] + [False] * 8
    assert evidence.benjamini_hochberg([0.01, 0.02, 0.03], 0.05) == [True, True, True]
    assert evidence.benjamini_hochberg([], 0.05) == []
