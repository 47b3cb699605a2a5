"""Attribution: what the candidate's errors have in common.

Span names and span attribute values are tested for over-representation among the new
version's failed entry spans against all its entry spans; exception types and status
messages (numbers and ids masked) among its errors against the baseline's errors. Each is
a one-sided binomial test, and the Benjamini-Hochberg procedure keeps the false discovery
rate over all of them at ``FDR``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import duckdb

from aftershock.deploys import evidence
from aftershock.deploys.blame import ErrorSpan
from aftershock.deploys.detect import Deploy

FDR = 0.05
#: Attributes with more distinct values than this among the candidate's spans are ids.
MAX_DISTINCT_VALUES = 50
MAX_SUSPECTS = 5
#: A suspect must account for at least this share of the candidate's errors.
MIN_SHARE = 0.2
GROUP_ORDER = {"span_name": 1, "exception.type": 2, "status_message": 3}
#: Span attributes that record the outcome rather than the request: they are always
#: over-represented among failures and only restate that the call failed.
OUTCOME_ATTRIBUTES = frozenset(
    {
        "error",
        "error.type",
        "otel.status_code",
        "otel.status_description",
        "rpc.grpc.status_code",
        "rpc.response.status_code",
        "http.status_code",
        "http.response.status_code",
    }
)


def is_outcome(attribute: str) -> bool:
    """True for attributes describing how a call ended (see ``OUTCOME_ATTRIBUTES``)."""
    return attribute in OUTCOME_ATTRIBUTES or attribute.startswith("exception.")


def suspects(
    con: duckdb.DuckDBPyConnection,
    d: Deploy,
    since: int,
    until: int,
    errors: list[ErrorSpan],
    kinds: list[str],
) -> list[dict[str, Any]]:
    """The attribute values, span names and error types over-represented in the errors of
    ``d.version`` in ``[since, until)``, most significant first."""
    kind_list = "(" + ", ".join(f"'{k}'" for k in kinds) + ")"
    base = f"""
        select span_name, span_attributes, status_code = 'ERROR' as err from spans
        where service_name = $svc and deployment_environment is not distinct from $env
          and service_version = $ver and span_kind in {kind_list}
          and start_time >= timezone('UTC', make_timestamp_ns($since))
          and start_time < timezone('UTC', make_timestamp_ns($until))"""
    rows = con.execute(
        f"""with c as ({base}),
            kv as (select unnest(map_entries(span_attributes)) as e, err from c),
            counts as (
                select 'span_name' as k, span_name as v, count(*) as n,
                       count(*) filter (where err) as ne from c group by all
                union all
                select e.key, e.value, count(*), count(*) filter (where err) from kv group by all
            )
            select k, v, n, ne, count(*) over (partition by k) as distinct_values,
                   sum(n) over (partition by k) as total
            from counts""",
        {
            "svc": d.service,
            "env": d.environment,
            "ver": d.version,
            "since": since,
            "until": until,
        },
    ).fetchall()
    calls = max((int(t) for k, _, _, _, _, t in rows if k == "span_name"), default=0)
    n_err = sum(ne for k, _, _, ne, _, _ in rows if k == "span_name")
    tests: list[tuple[float, str, str, float]] = []  # p, attribute, value, share
    if n_err and calls:
        for k, v, n, ne, distinct, _ in rows:
            if distinct > MAX_DISTINCT_VALUES or v is None or ne == 0 or is_outcome(k):
                continue
            share = ne / n_err
            tests.append((evidence.binomial_sf(int(ne), int(n_err), n / calls), k, v, share))
    mine = [e for e in errors if e.version == d.version and e.own and e.minute >= since]
    others = [e for e in errors if e.version != d.version]
    for attribute, field in (
        ("exception.type", "exception_type"),
        ("status_message", "status_message"),
    ):
        cand = Counter(getattr(e, field) for e in mine if getattr(e, field))
        other = Counter(getattr(e, field) for e in others if getattr(e, field))
        n_cand, n_other = len(mine), len(others)
        for value, k in cand.items():
            p0 = (other[value] + 0.5) / (n_other + 1)
            if p0 < 1:
                p = evidence.binomial_sf(k, n_cand, p0)
                tests.append((p, attribute, value, k / n_cand))
    rejected = evidence.benjamini_hochberg([t[0] for t in tests], FDR)
    # Who is affected (attribute values) first, then where (span names), then what
    # (exception types, messages); within each, the strongest evidence first.
    found = sorted(
        (t for t, r in zip(tests, rejected, strict=True) if r and t[3] >= MIN_SHARE),
        key=lambda t: (GROUP_ORDER.get(t[1], 0), t[0], -t[3]),
    )
    return [
        {"attribute": a, "value": v, "share_of_errors": round(share, 4)}
        for _, a, v, share in found[:MAX_SUSPECTS]
    ]
