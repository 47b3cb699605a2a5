"""Trace-aware blame: where each error of a service originates.

An error span's trace is followed down to its *leaf* error spans (error spans none of whose
children failed). An error of service S originates in S when one of those leaves is S's own
span; otherwise it originates in the service of the leaf, downstream, and is not counted
against a deploy of S.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import duckdb

from aftershock.deploys.detect import MINUTE_NS

#: Span kinds that are a service's entry points; calls and errors are counted on these.
ENTRY_KINDS = ("SERVER", "CONSUMER")
_VOLATILE = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|\b[0-9a-fA-F]{16,}\b|\d+(?:\.\d+)?"
)


def error_type(exception_type: str | None, status_message: str | None) -> str | None:
    """A stable name for an error: its exception type, else its status message with
    numbers and ids masked (so ``order 123 failed`` and ``order 456 failed`` are one)."""
    if exception_type:
        return exception_type
    if status_message:
        return _VOLATILE.sub("#", status_message)[:200]
    return None


@dataclass(frozen=True)
class ErrorSpan:
    """One error span of the service, with where its error originates."""

    minute: int
    version: str | None
    span_name: str
    entry: bool
    own: bool
    origin_service: str | None
    origin_span: str | None
    kind: str | None  # error_type()


def error_spans(
    con: duckdb.DuckDBPyConnection,
    service: str,
    environment: str | None,
    since: int,
    until: int,
) -> list[ErrorSpan]:
    """The error spans of ``service`` starting in ``[since, until)`` (ns), each with its
    origin from its trace's leaf error spans."""
    margin = 10 * MINUTE_NS
    rows = con.execute(
        """
        with mine as (
            select trace_id, span_id, span_name, span_kind, service_version,
                   epoch_ns(start_time) as t, status_message,
                   list_filter(events, lambda e: e.name = 'exception')[1]
                       .attributes['exception.type'] as exc
            from spans
            where service_name = $svc and deployment_environment is not distinct from $env
              and status_code = 'ERROR'
              and start_time >= timezone('UTC', make_timestamp_ns($since))
              and start_time < timezone('UTC', make_timestamp_ns($until))
        ),
        err as (
            select s.trace_id, s.span_id, s.parent_span_id, s.service_name, s.span_name
            from spans s
            where s.status_code = 'ERROR'
              and s.start_time >= timezone('UTC', make_timestamp_ns($since - $margin))
              and s.start_time < timezone('UTC', make_timestamp_ns($until + $margin))
              and s.trace_id in (select trace_id from mine)
        ),
        leaf as (
            select e.trace_id, e.service_name, e.span_name from err e
            where not exists (select 1 from err c
                              where c.trace_id = e.trace_id and c.parent_span_id = e.span_id)
        ),
        origin as (
            select trace_id, bool_or(service_name = $svc) as own,
                   min(service_name) filter (where service_name <> $svc) as osvc,
                   min(span_name) filter (where service_name <> $svc) as ospan
            from leaf group by trace_id
        )
        select m.t, m.service_version, m.span_name, m.span_kind, coalesce(o.own, true),
               o.osvc, o.ospan, m.exc, m.status_message
        from mine m left join origin o using (trace_id)
        """,
        {
            "svc": service,
            "env": environment,
            "since": since,
            "until": until,
            "margin": margin,
        },
    ).fetchall()
    return [
        ErrorSpan(
            t - t % MINUTE_NS,
            ver,
            name,
            kind in ENTRY_KINDS,
            bool(own),
            None if own else osvc,
            None if own else ospan,
            error_type(exc, msg),
        )
        for t, ver, name, kind, own, osvc, ospan, exc, msg in rows
    ]


def seen_error_types(
    con: duckdb.DuckDBPyConnection, service: str, environment: str | None, before: int
) -> set[str]:
    """Every error type the service produced before ``before`` (its whole history)."""
    rows = con.execute(
        """select distinct
               list_filter(events, lambda e: e.name = 'exception')[1]
                   .attributes['exception.type'], status_message
           from spans
           where service_name = ? and deployment_environment is not distinct from ?
             and status_code = 'ERROR' and start_time < timezone('UTC', make_timestamp_ns(?))""",
        [service, environment, before],
    ).fetchall()
    return {t for exc, msg in rows if (t := error_type(exc, msg)) is not None}


def downstream_services(
    con: duckdb.DuckDBPyConnection,
    service: str,
    environment: str | None,
    since: int,
    until: int,
) -> list[str]:
    """Services whose spans are children of this service's spans in ``[since, until)``."""
    rows = con.execute(
        """
        with mine as (
            select trace_id, span_id from spans
            where service_name = $svc and deployment_environment is not distinct from $env
              and start_time >= timezone('UTC', make_timestamp_ns($since))
              and start_time < timezone('UTC', make_timestamp_ns($until))
        )
        select distinct c.service_name from spans c
        join mine p on c.trace_id = p.trace_id and c.parent_span_id = p.span_id
        where c.service_name <> $svc
          and c.start_time >= timezone('UTC', make_timestamp_ns($since))
          and c.start_time < timezone('UTC', make_timestamp_ns($until))
        order by 1
        """,
        {"svc": service, "env": environment, "since": since, "until": until},
    ).fetchall()
    return [r[0] for r in rows if r[0] is not None]
