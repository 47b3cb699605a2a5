"""Deploy detection: new versions seen in the telemetry, and explicit markers.

Detection reads one cheap projection of ``spans`` (service, environment, version, instance
and start time, grouped per instance and version), so it never touches attributes. A deploy
is the first appearance of a ``service.version`` for a service and environment, or a
version coming back on new instances after all of its instances had stopped while another
version served (a rollback, A -> B -> A). A version already serving when the service's data
begins is not a deploy, and a service that goes idle and comes back with the same version is
not one either. A rollback is seen only through new instance ids (as Kubernetes gives new
pods): an instance that keeps its ``service.instance.id`` across versions looks continuous.

Whether it was a canary, a rolling update or a cut-over comes from the instances:

* ``cutover``: the previous version stopped within ``CUTOVER_OVERLAP_NS`` of the new one's
  first span;
* ``canary``: a few instances of the new version served next to the old ones for a while
  (then, maybe, the rest followed at once);
* ``rolling``: the new version's instances came up in waves at a steady pace while the old
  version drained.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from dataclasses import dataclass, field, replace

import duckdb

MINUTE_NS = 60_000_000_000
#: A version first seen this close to the start of a service's data was already serving.
DATA_START_GRACE_NS = MINUTE_NS
#: Two versions serving together for less than this is a cut-over, not a canary.
CUTOVER_OVERLAP_NS = 2 * MINUTE_NS
#: A version not seen for this long before the end of the data has stopped serving.
STOPPED_AFTER_NS = 2 * MINUTE_NS
#: A marker this close (either side) to a new version's first span is that deploy.
MARKER_MATCH_NS = 30 * MINUTE_NS
#: The ``source`` of a deploy.
OBSERVED, MARKER, LOG = "observed", "marker", "log"


@dataclass(frozen=True)
class InstanceWindow:
    """When one instance served one version: first and last span start, in event time."""

    version: str
    instance: str | None
    first: int
    last: int
    spans: int


@dataclass(frozen=True)
class Deploy:
    """One deploy of ``version`` of ``service`` in ``environment``; times in ns since epoch."""

    service: str
    environment: str | None
    version: str
    previous_version: str | None
    started_at: int
    completed_at: int | None
    source: str
    rollout: str
    data_end: int
    instances: tuple[InstanceWindow, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class Marker:
    """An explicit deploy marker, from the ``markers`` table or a ``deployment.*`` log."""

    service: str
    environment: str | None
    version: str
    time: int
    source: str


def _table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    found = con.execute(
        "select count(*) from information_schema.tables where table_name = ?", [name]
    ).fetchone()
    return bool(found and found[0])


def instance_windows(
    con: duckdb.DuckDBPyConnection, service: str | None = None
) -> dict[tuple[str, str | None], list[InstanceWindow]]:
    """Per service and environment, when each instance served each version.

    From ``spans`` when it has data for the service, else from ``rollups`` (one pseudo
    instance per version, minute resolution).
    """
    where = "service_name is not null and service_version is not null"
    params: list[object] = []
    if service is not None:
        where += " and service_name = ?"
        params.append(service)
    out: dict[tuple[str, str | None], list[InstanceWindow]] = defaultdict(list)
    if _table_exists(con, "spans"):
        rows = con.execute(
            f"""select service_name, deployment_environment, service_version,
                       service_instance_id, epoch_ns(min(start_time)),
                       epoch_ns(max(start_time)), count(*)
                from spans where {where} group by all""",
            params,
        ).fetchall()
        for svc, env, ver, inst, first, last, n in rows:
            out[(svc, env)].append(InstanceWindow(ver, inst, first, last, n))
    from_spans = set(out)
    if _table_exists(con, "rollups"):
        rows = con.execute(
            f"""select service_name, deployment_environment, service_version,
                       epoch_ns(min(minute)), epoch_ns(max(minute)) + {MINUTE_NS - 1},
                       sum(calls)
                from rollups where {where} group by all""",
            params,
        ).fetchall()
        for svc, env, ver, first, last, n in rows:
            if (svc, env) not in from_spans:  # spans are finer; rollups only fill in
                out[(svc, env)].append(InstanceWindow(ver, None, first, last, int(n)))
    return dict(out)


def read_markers(con: duckdb.DuckDBPyConnection, service: str | None = None) -> list[Marker]:
    """Markers from the ``markers`` table and from log records with ``deployment.*``
    attributes (the version from ``service.version`` in the record, else the resource)."""
    markers: list[Marker] = []
    params: list[object] = [] if service is None else [service]
    svc_filter = "" if service is None else " and service_name = ?"
    if _table_exists(con, "markers"):
        for svc, env, ver, t, src in con.execute(
            f"""select service_name, deployment_environment, service_version, epoch_ns(time),
                       source from markers where true{svc_filter}""",
            params,
        ).fetchall():
            markers.append(Marker(svc, env, ver, t, src or MARKER))
    if _table_exists(con, "logs"):
        rows = con.execute(
            f"""select service_name,
                       coalesce(log_attributes['deployment.environment.name'],
                                log_attributes['deployment.environment'],
                                deployment_environment),
                       coalesce(log_attributes['service.version'], service_version),
                       epoch_ns(min(time))
                from logs
                where service_name is not null{svc_filter}
                  and (len(list_filter(map_keys(log_attributes), lambda k:
                           k like 'deployment.%' and k not like 'deployment.environment%')) > 0
                       or event_name like 'deployment%')
                group by all""",
            params,
        ).fetchall()
        for svc, env, ver, t in rows:
            if ver is not None and t is not None:
                markers.append(Marker(svc, env, ver, t, LOG))
    return markers


def _classify(
    new: list[InstanceWindow], old: list[InstanceWindow], start: int, data_end: int
) -> tuple[str, int | None]:
    """The rollout kind and when it completed (the old version's last span), if it did."""
    old_last = max((w.last for w in old), default=start)
    stopped = old_last < data_end - STOPPED_AFTER_NS
    completed = max(old_last, start) if stopped else None
    if old_last - start <= CUTOVER_OVERLAP_NS:
        return "cutover", completed
    # Waves: new instances coming up within a minute of each other.
    waves: list[list[int]] = []
    for t in sorted(w.first for w in new if w.instance is not None):
        if waves and t - waves[-1][-1] <= MINUTE_NS:
            waves[-1].append(t)
        else:
            waves.append([t])
    if len(waves) < 2:
        return "canary", completed
    # A canary is a small first wave left alone for a while, then the rest (quickly, or
    # in one go); a rolling update moves in waves at a steady pace.
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(waves)]
    small_first = len(waves[0]) * 3 <= sum(len(w) for w in waves)
    paused = len(gaps) == 1 or gaps[0] > 2 * max(gaps[1:])
    return ("canary" if small_first and paused else "rolling"), completed


def _returns(by_version: dict[str, list[InstanceWindow]]) -> list[tuple[str, int]]:
    """(version, time) of each version coming back on a new instance after every instance
    of it had stopped for ``STOPPED_AFTER_NS`` while another version served."""
    found = []
    for version, ws in by_version.items():
        reach: int | None = None  # the last span of this version so far
        for w in sorted(ws, key=lambda w: w.first):
            if reach is not None and w.first - reach > STOPPED_AFTER_NS:
                served = any(
                    o.first < w.first and o.last > reach
                    for v, os_ in by_version.items()
                    if v != version
                    for o in os_
                )
                if served:
                    found.append((version, w.first))
            reach = w.last if reach is None else max(reach, w.last)
    return found


def _observed(
    key: tuple[str, str | None], windows: list[InstanceWindow]
) -> tuple[list[Deploy], dict[str, int], int]:
    by_version: dict[str, list[InstanceWindow]] = defaultdict(list)
    for w in windows:
        by_version[w.version].append(w)
    first = {v: min(w.first for w in ws) for v, ws in by_version.items()}
    t0 = min(first.values())
    data_end = max(w.last for w in windows)
    returns = _returns(by_version)
    starts = [(start, v) for v, start in first.items() if start > t0 + DATA_START_GRACE_NS]
    starts += [(t, v) for v, t in returns]

    def until_return(version: str, after: int) -> float:
        """When ``version`` next comes back after ``after``: its windows before that are
        one serving period."""
        return min((t for v, t in returns if v == version and t > after), default=math.inf)

    deploys = []
    for start, version in sorted(starts):
        # The previous version: of those serving before, the one serving last.
        before = {
            v: [w for w in ws if w.first < until_return(v, start)]
            for v, ws in by_version.items()
            if v != version and first[v] < start
        }
        previous = max(
            before,
            key=lambda v: (max(w.last for w in before[v]), sum(w.spans for w in before[v])),
            default=None,
        )
        old = before[previous] if previous is not None else []
        end = until_return(version, start)
        new = [w for w in by_version[version] if start <= w.first < end]
        rollout, completed = _classify(new, old, start, data_end)
        deploys.append(
            Deploy(
                key[0],
                key[1],
                version,
                previous,
                start,
                completed,
                OBSERVED,
                rollout,
                data_end,
                tuple(new),
            )
        )
    return deploys, first, data_end


def detect_deploys(con: duckdb.DuckDBPyConnection, service: str | None = None) -> list[Deploy]:
    """Every deploy in the data (observed versions merged with markers), oldest first."""
    all_windows = instance_windows(con, service)
    deploys: list[Deploy] = []
    firsts: dict[tuple[str, str | None], dict[str, int]] = {}
    ends: dict[tuple[str, str | None], int] = {}
    for key, windows in all_windows.items():
        found, firsts[key], ends[key] = _observed(key, windows)
        deploys.extend(found)
    for m in sorted(read_markers(con, service), key=lambda m: m.time):
        same = [
            i
            for i, d in enumerate(deploys)
            if d.service == m.service
            and d.version == m.version
            and (m.environment is None or d.environment == m.environment)
        ]
        close = sorted(
            (i for i in same if abs(deploys[i].started_at - m.time) <= MARKER_MATCH_NS),
            key=lambda i: abs(deploys[i].started_at - m.time),
        )
        if close:
            i = close[0]
            if deploys[i].source == OBSERVED or m.source == MARKER:
                deploys[i] = replace(
                    deploys[i], started_at=min(m.time, deploys[i].started_at), source=m.source
                )
            continue
        if same:
            continue  # a second marker for a deploy already known
        keys = [k for k in all_windows if k[0] == m.service and k[1] == m.environment]
        key = keys[0] if keys else (m.service, m.environment)
        seen = firsts.get(key, {})
        previous = max(
            (v for v, t in seen.items() if v != m.version and t < m.time),
            key=lambda v: seen[v],
            default=None,
        )
        windows = all_windows.get(key, [])
        new = [w for w in windows if w.version == m.version]
        rollout, completed = (
            _classify(new, [w for w in windows if w.version == previous], m.time, ends[key])
            if new and key in ends
            else ("unknown", None)
        )
        deploys.append(
            Deploy(
                m.service,
                m.environment,
                m.version,
                previous,
                m.time,
                completed,
                m.source,
                rollout,
                ends.get(key, m.time),
                tuple(new),
            )
        )
    deploys.sort(key=lambda d: (d.started_at, d.service, d.version))
    return deploys
