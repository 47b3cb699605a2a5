"""Deploy detection and verdicts on synthetic telemetry with a known truth.

The tables come from ``aftershock.deploys.synthetic``: per-minute rollups (calls, errors,
latency sketches) and the error spans with their traces, in the lake's schemas.
"""

from __future__ import annotations

import numpy as np
import pytest

from aftershock.deploys import deploy_verdicts, detect_deploys, evidence
from aftershock.deploys.synthetic import Synthetic
from aftershock.deploys.verdict import ALPHA_ERRORS, Verdict


def fleet(
    s: Synthetic,
    service: str = "checkout",
    version: str = "1.0",
    minutes: range = range(0, 100),
    calls_per_minute: float = 3000,
    instances: int = 4,
    **kw: object,
) -> None:
    """A service at one version on several instances."""
    for i in range(instances):
        s.traffic(
            service,
            version,
            minutes,
            calls_per_minute / instances,
            instance=f"{service}-{i}",
            **kw,  # type: ignore[arg-type]
        )


def only(verdicts: list[Verdict], service: str = "checkout") -> Verdict:
    found = [v for v in verdicts if v.service == service]
    assert len(found) == 1, [v.to_json() for v in verdicts]
    return found[0]


def test_sparse_canary_regression_is_caught_before_the_rollout_completes() -> None:
    s = Synthetic(seed=1)
    fleet(s, error_rate=0.0002)
    s.traffic("checkout", "1.1", range(40, 100), 300, error_rate=0.002, instance="canary-0")
    v = only(deploy_verdicts(s.install()))
    j = v.to_json()
    assert (j["verdict"], j["rollout"], j["previous_version"]) == ("regression", "canary", "1.0")
    assert j["completed_at"] is None
    assert j["signals"][0]["kind"] == "error_rate"
    assert j["signals"][0]["evidence"] >= 1 / ALPHA_ERRORS
    assert v.decided_at is not None and v.decided_at - s.minute(40) <= s.minute(30) - s.t0
    assert set(j) == {
        "service", "environment", "version", "previous_version", "started_at",
        "completed_at", "source", "rollout", "verdict", "signals", "suspects",
        "decided_at", "explanation",
    }  # fmt: skip


def test_healthy_canary_is_called_healthy_not_regression() -> None:
    s = Synthetic(seed=2)
    fleet(s, error_rate=0.01)
    s.traffic("checkout", "1.1", range(40, 100), 300, error_rate=0.01, instance="canary-0")
    v = only(deploy_verdicts(s.install()))
    assert v.verdict == "healthy", v.explanation
    assert v.decided_at is not None and v.decided_at >= s.minute(50)
    assert v.signals == [] and v.suspects == []


def test_verdict_is_the_same_on_replayed_and_on_longer_data() -> None:
    """Event time only: the decision and its time do not depend on when we look."""

    s = Synthetic(seed=3)
    fleet(s, error_rate=0.001)
    s.traffic("checkout", "1.1", range(40, 100), 300, error_rate=0.01, instance="c")
    long = only(deploy_verdicts(s.install()))
    cut = s.install()  # the same telemetry, as it stood at minute 75
    cut.execute("delete from spans where epoch_ns(start_time) >= ?", [s.minute(75)])
    cut.execute("delete from rollups where epoch_ns(minute) >= ?", [s.minute(75)])
    short = only(deploy_verdicts(cut))
    assert short.verdict == long.verdict == "regression"
    assert short.decided_at == long.decided_at
    assert short.signals == long.signals
    assert only(deploy_verdicts(cut)).to_json() == short.to_json()


def test_latency_only_regression_is_a_latency_signal() -> None:
    s = Synthetic(seed=4)
    fleet(s, latency_ms=40, error_rate=0.001)
    s.traffic("checkout", "1.1", range(40, 100), 300, latency_ms=60, error_rate=0.001)
    v = only(deploy_verdicts(s.install()))
    assert v.verdict == "regression"
    assert [sig["kind"] for sig in v.signals] == ["latency"], v.signals
    assert v.signals[0]["candidate"] > v.signals[0]["baseline"]


def test_downstream_outage_after_an_upstream_cutover_is_not_blamed_on_it() -> None:
    s = Synthetic(seed=5)
    fleet(s, "frontend", "1.0", range(0, 60), error_rate=0.001)
    fleet(s, "frontend", "1.1", range(60, 70), error_rate=0.001)
    # Five minutes after the cut-over, the payment service falls over: frontend's calls fail.
    fleet(s, "frontend", "1.1", range(70, 100), error_rate=0.001)
    fleet(s, "frontend", "1.1", range(70, 100), 600, error_rate=0.2, error_origin="payment")
    v = only(deploy_verdicts(s.install()), "frontend")
    assert v.deploy.rollout == "cutover"
    assert v.verdict != "regression", v.to_json()
    assert "payment" in v.explanation and "downstream" in v.explanation


def test_own_errors_after_a_cutover_are_a_regression() -> None:
    s = Synthetic(seed=6)
    fleet(s, "frontend", "1.0", range(0, 60), error_rate=0.001)
    fleet(s, "frontend", "1.1", range(60, 100), error_rate=0.01)
    v = only(deploy_verdicts(s.install()), "frontend")
    assert (v.deploy.rollout, v.verdict) == ("cutover", "regression")
    assert v.deploy.completed_at is not None


def test_low_traffic_service_is_not_a_false_alarm() -> None:
    s = Synthetic(seed=7)
    fleet(s, "admin", "1.0", range(0, 100), 2, instances=1, error_rate=0.02)
    s.traffic("admin", "1.1", range(50, 100), 2, error_rate=0.02, instance="admin-new")
    v = only(deploy_verdicts(s.install()), "admin")
    assert v.verdict in ("pending", "inconclusive"), v.to_json()
    assert "more calls" in v.explanation


def test_idle_service_coming_back_and_versions_at_data_start_are_not_deploys() -> None:
    s = Synthetic(seed=8)
    fleet(s, "batch", "3.2", range(0, 20), 100)
    fleet(s, "batch", "3.2", range(80, 100), 100)  # idle for an hour, same version
    # Two versions already serving when the data begins (a canary in progress).
    fleet(s, "search", "7.0", range(0, 100), 100)
    s.traffic("search", "7.1", range(0, 100), 10, instance="search-canary")
    assert detect_deploys(s.install()) == []


def test_a_rollback_to_the_previous_version_is_a_deploy_of_its_own() -> None:
    """1.0 -> 1.1 (bad) -> 1.0 on new instances: 1.1 is a regression, and the return of 1.0
    is a cut-over after 1.1, judged against it; neither deploy takes the other's data."""
    s = Synthetic(seed=9)
    fleet(s, minutes=range(0, 60), error_rate=0.01)
    for i in range(4):
        s.traffic("checkout", "1.1", range(60, 75), 750, error_rate=0.2, instance=f"new-{i}")
        s.traffic("checkout", "1.0", range(75, 130), 750, error_rate=0.01, instance=f"back-{i}")
    verdicts = [v for v in deploy_verdicts(s.install()) if v.service == "checkout"]
    got = [
        (j["version"], j["previous_version"], j["rollout"], j["verdict"])
        for j in (v.to_json() for v in verdicts)
    ]
    assert got == [("1.1", "1.0", "cutover", "regression"), ("1.0", "1.1", "cutover", "healthy")]
    bad, back = verdicts
    assert bad.deploy.completed_at is not None and bad.deploy.completed_at < s.minute(61)
    assert back.deploy.started_at == min(w.first for w in back.deploy.instances)
    assert s.minute(75) <= back.deploy.started_at < s.minute(76)
    assert {w.instance for w in back.deploy.instances} == {f"back-{i}" for i in range(4)}
    assert {w.instance for w in bad.deploy.instances} == {f"new-{i}" for i in range(4)}


def test_a_version_idle_during_a_canary_is_not_a_rollback() -> None:
    """The old version's instances keep serving through a quiet spell while a canary runs:
    its instances never all stopped, so nothing came back."""
    s = Synthetic(seed=10)
    for i in range(3):
        s.traffic("checkout", "1.0", range(0, 40), 10, instance=f"checkout-{i}")
        s.traffic("checkout", "1.0", range(50, 90), 10, instance=f"checkout-{i}")
    s.traffic("checkout", "1.1", range(30, 90), 10, instance="canary-0")
    got = [(d.version, d.rollout) for d in detect_deploys(s.install())]
    assert got == [("1.1", "canary")]


def test_rollouts_are_told_apart_by_instances() -> None:
    s = Synthetic(seed=9)
    # Rolling: instances move from 1.0 to 1.1 one every ten minutes.
    for i in range(4):
        s.traffic("cart", "1.0", range(0, 40 + 10 * i), 50, instance=f"cart-{i}")
        s.traffic("cart", "1.1", range(40 + 10 * i, 100), 50, instance=f"cart-{i}")
    # Canary: one new instance next to four old ones that keep serving.
    fleet(s, "search", "2.0", range(0, 100), 400)
    s.traffic("search", "2.1", range(50, 100), 100, instance="search-canary")
    # A canary instance alone for half an hour, then the other instances at once.
    for i in range(4):
        switch = 30 if i == 0 else 60
        s.traffic("pay", "4.0", range(0, switch), 50, instance=f"pay-{i}")
        s.traffic("pay", "4.1", range(switch, 100), 50, instance=f"pay-{i}")
    # Cut-over: every instance switches within a minute.
    fleet(s, "auth", "5.0", range(0, 50), 400)
    fleet(s, "auth", "5.1", range(50, 100), 400)
    found = {d.service: d for d in detect_deploys(s.install())}
    assert {k: d.rollout for k, d in found.items()} == {
        "cart": "rolling",
        "search": "canary",
        "pay": "canary",
        "auth": "cutover",
    }
    assert found["cart"].completed_at == s.minute(69)  # the last span of 1.0
    assert found["search"].completed_at is None


def test_new_error_type_in_the_candidate_is_a_signal() -> None:
    s = Synthetic(seed=10)
    fleet(s, error_rate=0.002, error_type="TimeoutError")
    s.traffic("checkout", "1.1", range(40, 100), 300, error_rate=0.002, instance="c",
              error_type="TimeoutError")  # fmt: skip
    s.traffic("checkout", "1.1", range(45, 100), 300, error_rate=0.001, instance="c",
              error_type="KeyError")  # fmt: skip
    v = only(deploy_verdicts(s.install()))
    assert v.verdict == "regression"
    new = [sig for sig in v.signals if sig["kind"] == "new_error"]
    assert new and "KeyError" in new[0]["test"]


def test_attribution_names_the_attribute_value_of_the_failing_calls() -> None:
    s = Synthetic(seed=11)
    methods = {"app.payment.method": ["card", "paypal", "giftcard", "invoice"]}
    s.traffic("checkout", "1.0", range(0, 60), 200, error_rate=0.005, attributes=methods,
              full_spans=True, instance="c-0")  # fmt: skip
    s.traffic("checkout", "1.1", range(30, 60), 100, error_rate=0.005, attributes=methods,
              full_spans=True, instance="c-1")  # fmt: skip
    s.traffic("checkout", "1.1", range(30, 60), 25, error_rate=0.4, instance="c-1",
              attributes={"app.payment.method": ["paypal"]}, full_spans=True,
              error_type="PaymentDeclined")  # fmt: skip
    v = only(deploy_verdicts(s.install()))
    assert v.verdict == "regression"
    pairs = [(x["attribute"], x["value"]) for x in v.suspects]
    assert ("app.payment.method", "paypal") in pairs, v.suspects
    assert ("app.payment.method", "card") not in pairs
    top = v.suspects[0]
    assert top["share_of_errors"] > 0.5
    assert ("exception.type", "PaymentDeclined") in pairs


def test_markers_set_the_start_and_unknown_versions_are_pending() -> None:
    s = Synthetic(seed=12)
    fleet(s, error_rate=0.001)
    s.traffic("checkout", "1.1", range(42, 100), 300, error_rate=0.001, instance="c")
    s.marker("checkout", "1.1", 40)
    s.marker("checkout", "1.2", 99)
    verdicts = deploy_verdicts(s.install())
    by_version = {v.version: v for v in verdicts}
    assert by_version["1.1"].deploy.source == "marker"
    assert by_version["1.1"].deploy.started_at == s.minute(40)
    assert by_version["1.2"].verdict == "pending"
    assert by_version["1.2"].deploy.previous_version == "1.1"


def test_log_records_with_deployment_attributes_are_markers() -> None:
    s = Synthetic(seed=13)
    fleet(s, error_rate=0.001)
    s.traffic("checkout", "1.1", range(45, 100), 300, error_rate=0.001, instance="c")
    con = s.install()
    con.execute(
        """insert into logs (time, severity_number, service_name, service_version,
                             deployment_environment, resource_attributes, log_attributes)
           values (timezone('UTC', make_timestamp_ns(?)), 9, 'checkout', '1.0', 'prod', map(),
                   map {'deployment.id': 'd-42', 'service.version': '1.1'})""",
        [s.minute(43)],
    )
    (d,) = detect_deploys(con)
    assert (d.version, d.source, d.started_at) == ("1.1", "log", s.minute(43))


@pytest.mark.parametrize("share", [0.05, 0.5])
def test_rechecking_does_not_inflate_false_alarms(share: float) -> None:
    """A/A canaries checked every 10 s for an hour: the e-process's false alarm rate stays
    within its level, while a fixed-sample z-test re-run at each check inflates it."""
    rng = np.random.default_rng(0)
    sims, steps, calls_per_step, p = 2000, 360, 50, 0.01
    threshold = 1 / ALPHA_ERRORS
    cc = rng.poisson(calls_per_step * share, (sims, steps)).astype(float)
    bc = rng.poisson(calls_per_step * (1 - share), (sims, steps)).astype(float)
    ce, be = rng.binomial(cc.astype(int), p), rng.binomial(bc.astype(int), p)
    alarms = sum(
        evidence.first_crossing(evidence.split_eprocess(cc[i], ce[i], bc[i], be[i]), threshold)
        is not None
        for i in range(sims)
    )
    assert alarms / sims <= ALPHA_ERRORS + 3 * np.sqrt(ALPHA_ERRORS / sims)
    # The naive alternative: a one-sided two-proportion z-test at 0.5% after every check.
    c, b = cc.cumsum(axis=1) + 1, bc.cumsum(axis=1) + 1
    pc, pb = ce.cumsum(axis=1) / c, be.cumsum(axis=1) / b
    pooled = (ce.cumsum(axis=1) + be.cumsum(axis=1)) / (c + b)
    se = np.sqrt(pooled * (1 - pooled) * (1 / c + 1 / b))
    with np.errstate(divide="ignore", invalid="ignore"):
        naive = np.nan_to_num((pc - pb) / se > 2.576).any(axis=1).mean()
    assert naive > 3 * alarms / sims


def test_healthy_deploys_over_many_seeds_are_never_regressions() -> None:
    for seed in range(5):
        s = Synthetic(seed=100 + seed)
        fleet(s, error_rate=0.003, latency_ms=80)
        s.traffic("checkout", "1.1", range(40, 100), 400, error_rate=0.003, latency_ms=80)
        v = only(deploy_verdicts(s.install()))
        assert v.verdict == "healthy", v.to_json()


def test_downstream_latency_after_a_cutover_is_not_blamed_on_it() -> None:
    s = Synthetic(seed=14)
    fleet(s, "frontend", "1.0", range(0, 60), latency_ms=50)
    fleet(s, "frontend", "1.1", range(60, 62), latency_ms=50)
    # Payment, which frontend calls, slows down two minutes after frontend's cut-over.
    fleet(s, "frontend", "1.1", range(62, 100), latency_ms=90)
    fleet(s, "payment", "3.0", range(0, 62), latency_ms=30)
    fleet(s, "payment", "3.0", range(62, 100), latency_ms=70)
    con = s.install()
    # One call from frontend to payment in the window, so the trace links the two services.
    con.execute(
        """insert into spans
           select * replace ('payment' as service_name, '3.0' as service_version,
                             span_id as parent_span_id, 'ffffffffffffffff' as span_id)
           from spans where service_name = 'frontend' and service_version = '1.1' limit 1"""
    )
    v = only(deploy_verdicts(con), "frontend")
    assert v.deploy.rollout == "cutover"
    assert v.verdict != "regression", v.to_json()
    assert "payment" in v.explanation and "latency" in v.explanation.lower()


def test_cutover_after_an_idle_gap_is_compared_with_the_last_active_hour() -> None:
    s = Synthetic(seed=15)
    fleet(s, "reports", "1.0", range(0, 60), 600, error_rate=0.01)
    # Three idle hours (unrelated to the deploy), then the new version fails three times as
    # often.
    fleet(s, "reports", "1.1", range(240, 280), 600, error_rate=0.03)
    v = only(deploy_verdicts(s.install()), "reports")
    assert (v.deploy.rollout, v.verdict) == ("cutover", "regression"), v.to_json()
    assert v.signals[0]["baseline"] == pytest.approx(0.01, abs=0.003)
