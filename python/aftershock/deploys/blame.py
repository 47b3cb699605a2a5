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
    exception_type: str | None
    status_message: str | None  # masked as in error_type()


def error_spans(
    con: duckdb.DuckDBPyConnection,
    windows: list[tuple[int, str, str | None, int, int]],
    table: str = "spans",
) -> dict[int, list[ErrorSpan]]:
    """Per window ``(key, service, environment, since, until)``, the service's error spans
    starting in ``[since, until)`` (ns), each with its origin from its trace's leaf error
    spans. ``table`` may hold only the error spans."""
    import pyarrow as pa

    if not windows:
        return {}
    margin = 10 * MINUTE_NS
    con.register(
        "_aftershock_error_windows",
        pa.table(
            {
                "idx": pa.array([w[0] for w in windows], pa.int64()),
                "service": pa.array([w[1] for w in windows], pa.string()),
                "env": pa.array([w[2] for w in windows], pa.string()),
                "since": pa.array([w[3] for w in windows], pa.int64()),
                "until": pa.array([w[4] for w in windows], pa.int64()),
            }
        ),
    )
    try:
        rows = con.execute(
            f"""
            with mine as (
                select w.idx, s.trace_id, s.span_id, s.span_name, s.span_kind, s.service_name,
                       s.service_version, epoch_ns(s.start_time) as t, s.status_message,
                       list_filter(s.events, lambda e: e.name = 'exception')[1]
                           .attributes['exception.type'] as exc
                from {table} s join _aftershock_error_windows w
                  on s.service_name = w.service
                 and s.deployment_environment is not distinct from w.env
                where s.status_code = 'ERROR'
                  and s.start_time >= timezone('UTC', make_timestamp_ns(w.since))
                  and s.start_time < timezone('UTC', make_timestamp_ns(w.until))
            ),
            err as (
                select s.trace_id, s.span_id, s.parent_span_id, s.service_name, s.span_name
                from {table} s
                where s.status_code = 'ERROR'
                  and s.start_time >= timezone('UTC', make_timestamp_ns($lo))
                  and s.start_time < timezone('UTC', make_timestamp_ns($hi))
                  and s.trace_id in (select trace_id from mine)
            ),
            leaf as (
                select e.trace_id, e.service_name, e.span_name from err e
                where not exists (select 1 from err c
                                  where c.trace_id = e.trace_id and c.parent_span_id = e.span_id)
            )
            select m.idx, m.t, m.service_version, m.span_name, m.span_kind,
                   coalesce(bool_or(l.service_name = m.service_name), true),
                   min(l.service_name) filter (where l.service_name <> m.service_name),
                   min(l.span_name) filter (where l.service_name <> m.service_name),
                   m.exc, m.status_message
            from mine m left join leaf l using (trace_id)
            group by m.idx, m.span_id, m.t, m.service_version, m.span_name, m.span_kind,
                     m.exc, m.status_message
            """,
            {
                "lo": min(w[3] for w in windows) - margin,
                "hi": max(w[4] for w in windows) + margin,
            },
        ).fetchall()
    finally:
        con.unregister("_aftershock_error_windows")
    out: dict[int, list[ErrorSpan]] = {}
    for idx, t, ver, name, kind, own, osvc, ospan, exc, msg in rows:
        out.setdefault(idx, []).append(
            ErrorSpan(
                t - t % MINUTE_NS,
                ver,
                name,
                kind in ENTRY_KINDS,
                bool(own),
                None if own else osvc,
                None if own else ospan,
                error_type(exc, msg),
                exc or None,
                error_type(None, msg),
            )
        )
    return out


def error_types_first_seen(
    con: duckdb.DuckDBPyConnection, service: str | None = None
) -> dict[tuple[str, str | None], dict[str, int]]:
    """Per service and environment, when each error type was first produced (ns)."""
    where = "" if service is None else " and service_name = $svc"
    rows = con.execute(
        f"""select service_name, deployment_environment,
                   list_filter(events, lambda e: e.name = 'exception')[1]
                       .attributes['exception.type'],
                   status_message, epoch_ns(min(start_time))
            from spans where status_code = 'ERROR'{where} group by all""",
        {} if service is None else {"svc": service},
    ).fetchall()
    out: dict[tuple[str, str | None], dict[str, int]] = {}
    for svc, env, exc, msg, first in rows:
        kind = error_type(exc, msg)
        if kind is not None:
            seen = out.setdefault((svc, env), {})
            seen[kind] = min(first, seen.get(kind, first))
    return out


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
