"""The query surface: DuckDB SQL, Polars frames, trace trees and the service map over the lake.

``aftershock.open(path)`` returns a :class:`Lake`, a read-only view of a data directory that is
safe while a writer in another process commits and compacts. It reads only the Delta logs and
the Parquet files they name; it never takes the writer's lock and never writes.

Snapshots: every table's Delta version is pinned together (``Lake.refresh``), and each view or
frame reads exactly the data files of that version. ``Lake.sql`` and the other query methods
refresh first (``update_incremental`` reads only the new log entries), so they see what the
writer committed up to the call. Compaction commits replace files in one step and vacuum keeps
replaced files for an hour, so a pinned snapshot stays readable and its counts stay exact.

Time windows (``since``/``until``) prune twice before DuckDB or Polars open a file: by the
``day`` partition, and by the per-file min/max statistics of the time column that the Delta log
records; inside the files, row groups are pruned by their Parquet statistics.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import duckdb
import polars as pl
import pyarrow as pa
from deltalake import DeltaTable

from aftershock import _core
from aftershock.errors import LakeNotFoundError, TraceNotFoundError
from aftershock.lake import PARTITION_COLUMN, table_schema
from aftershock.units import parse_duration

if TYPE_CHECKING:
    from aftershock.deploys import Verdict

#: The views every connection gets, in this order.
VIEWS: tuple[str, ...] = ("spans", "logs", "rollups", "markers")
#: The event-time column that time windows filter on, per table.
TIME_COLUMN = {"spans": "start_time", "logs": "time", "rollups": "minute", "markers": "time"}
#: Delta statistics of timestamps are written with millisecond precision (truncated); file
#: pruning widens each file's range by this much so that it never drops a matching row.
STATS_SLACK_NS = 1_000_000_000
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
DELTA_LOG = "_delta_log"
#: A commit adds a file to ``_delta_log``, which changes the directory's mtime: while that
#: mtime is unchanged, refresh skips the table. The mtime clock is coarse (a few ms), so a
#: second commit in the same tick would not change it; an mtime is trusted only once it is
#: this old.
MTIME_SETTLED_NS = 1_000_000_000
#: Quantiles `Lake.latency` reports unless told otherwise.
DEFAULT_QUANTILES = (0.5, 0.95, 0.99)

TimeLike = str | dt.datetime | dt.date | dt.timedelta


def parse_time(value: TimeLike | None, now: dt.datetime | None = None) -> dt.datetime | None:
    """A point in time, as UTC, from what a user types.

    ``"2h"``, ``"30m"``, ``"90s"``, ``"7d"``, ``"1w"`` or a ``timedelta`` mean that long before
    ``now``; a ``datetime`` (naive means UTC), a ``date`` (midnight UTC) or an ISO-8601 string
    (``2026-11-29T10:00:00Z``) is taken as it is. ``None`` stays ``None``.
    """
    if value is None:
        return None
    now = now or dt.datetime.now(dt.timezone.utc)
    if isinstance(value, dt.timedelta):
        return now - value
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc)
    try:
        return now - dt.timedelta(seconds=parse_duration(value, bare_seconds=False))
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"not a time: {value!r} (use a duration such as 2h, 30m, 7d, or ISO-8601 such as"
            " 2026-11-29T10:00:00Z)"
        ) from None
    return parse_time(parsed)


@dataclass(frozen=True)
class DataFile:
    """One Parquet data file of a snapshot, with what the Delta log says about it."""

    uri: str
    rows: int
    day: dt.date | None
    #: min/max of the table's time column in ns since the epoch (None when not recorded);
    #: the writer records milliseconds, compaction nanoseconds.
    min_time_ns: int | None
    max_time_ns: int | None
    #: min/max ``trace_id`` (spans and logs), None when not recorded.
    min_trace: str | None = None
    max_trace: str | None = None

    def overlaps(self, since: dt.datetime | None, until: dt.datetime | None) -> bool:
        """Whether rows with ``since <= time < until`` can be in this file."""
        if since is not None:
            if self.day is not None and self.day < since.date():
                return False
            if self.max_time_ns is not None and self.max_time_ns + STATS_SLACK_NS < _ns(since):
                return False
        if until is not None:
            if self.day is not None and self.day > until.date():
                return False
            if self.min_time_ns is not None and self.min_time_ns - STATS_SLACK_NS >= _ns(until):
                return False
        return True

    def may_hold_trace(self, trace_id: str) -> bool:
        """Whether ``trace_id`` is within this file's recorded trace id range."""
        if self.min_trace is None or self.max_trace is None:
            return True
        return self.min_trace <= trace_id <= self.max_trace


def _ns(t: dt.datetime) -> int:
    return (t - EPOCH) // dt.timedelta(microseconds=1) * 1000


@dataclass(frozen=True)
class TableSnapshot:
    """One table at one Delta version (``version`` is None when the table does not exist)."""

    name: str
    version: int | None
    files: tuple[DataFile, ...]
    partitioned: bool

    def select(
        self, since: dt.datetime | None = None, until: dt.datetime | None = None
    ) -> list[DataFile]:
        """The files that may hold rows of the time window."""
        return [f for f in self.files if f.overlaps(since, until)]


def _column(actions: pa.Table, name: str, n: int) -> list[Any]:
    """A column of the add actions as Python values; timestamps as integer nanoseconds."""
    if name not in actions.column_names:
        return [None] * n
    col = actions.column(name)
    if pa.types.is_timestamp(col.type):
        col = col.cast(pa.timestamp("ns", col.type.tz)).cast(pa.int64())
    return list(col.to_pylist())


def _snapshot(name: str, table: DeltaTable | None) -> TableSnapshot:
    if table is None:
        return TableSnapshot(name, None, (), True)
    actions = pa.table(table.get_add_actions(flatten=True))
    n = actions.num_rows
    time_col = TIME_COLUMN[name]
    base = table.table_uri.removeprefix("file://").rstrip("/")
    files = tuple(
        DataFile(
            uri=f"{base}/{unquote(path)}",
            rows=rows or 0,
            day=day,
            min_time_ns=lo,
            max_time_ns=hi,
            min_trace=tlo,
            max_trace=thi,
        )
        for path, rows, day, lo, hi, tlo, thi in zip(
            actions.column("path").to_pylist(),
            _column(actions, "num_records", n),
            _column(actions, f"partition.{PARTITION_COLUMN}", n),
            _column(actions, f"min.{time_col}", n),
            _column(actions, f"max.{time_col}", n),
            _column(actions, "min.trace_id", n),
            _column(actions, "max.trace_id", n),
            strict=True,
        )
    )
    partitioned = PARTITION_COLUMN in table.metadata().partition_columns
    return TableSnapshot(name, table.version(), files, partitioned)


def _empty_schema(name: str, partitioned: bool) -> pa.Schema:
    return table_schema(name) if partitioned else pa.schema(_core.table_schema(name))


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _timestamp_literal(t: dt.datetime) -> str:
    return f"TIMESTAMPTZ {_literal(t.astimezone(dt.timezone.utc).isoformat())}"


def _window_sql(column: str, since: dt.datetime | None, until: dt.datetime | None) -> str:
    conds = []
    if since is not None:
        conds.append(f"{column} >= {_timestamp_literal(since)}")
    if until is not None:
        conds.append(f"{column} < {_timestamp_literal(until)}")
    return " AND ".join(conds)


def map_timestamps(t: pa.DataType, fn: Callable[[pa.DataType], pa.DataType]) -> pa.DataType:
    """``t`` with ``fn`` applied to every timestamp type in it, however deeply nested."""
    if pa.types.is_timestamp(t):
        return fn(t)
    if pa.types.is_map(t):
        return pa.map_(map_timestamps(t.key_type, fn), map_timestamps(t.item_type, fn))
    if pa.types.is_list(t):
        return pa.list_(t.value_field.with_type(map_timestamps(t.value_type, fn)))
    if pa.types.is_large_list(t):
        return pa.large_list(t.value_field.with_type(map_timestamps(t.value_type, fn)))
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(map_timestamps(f.type, fn)) for f in t])
    return t


def _utc(t: pa.DataType) -> pa.DataType:
    return pa.timestamp(t.unit, "UTC") if t.tz is not None else t


def with_utc_timestamps(table: pa.Table) -> pa.Table:
    """``table`` with every zoned timestamp labelled ``UTC``, as the tables are.

    DuckDB labels them with its ``TimeZone`` setting (the machine's zone, e.g. ``Etc/UTC``);
    the instants are the same, only the label changes.
    """
    schema = pa.schema([f.with_type(map_timestamps(f.type, _utc)) for f in table.schema])
    return table if schema == table.schema else table.cast(schema)


#: A query that names the ``deploys`` view gets it computed for its snapshot first.
_DEPLOYS_REFERENCE = re.compile(r"\bdeploys\b", re.IGNORECASE)

#: Columns of the ``deploys`` view: the verdict JSON's keys, with signals and suspects as
#: JSON text (DuckDB's ``->>`` and ``json_extract`` read them).
DEPLOYS_SCHEMA = pa.schema(
    [
        ("service", pa.string()),
        ("environment", pa.string()),
        ("version", pa.string()),
        ("previous_version", pa.string()),
        ("started_at", pa.timestamp("ns", tz="UTC")),
        ("completed_at", pa.timestamp("ns", tz="UTC")),
        ("source", pa.string()),
        ("rollout", pa.string()),
        ("verdict", pa.string()),
        ("signals", pa.string()),
        ("suspects", pa.string()),
        ("decided_at", pa.timestamp("ns", tz="UTC")),
        ("explanation", pa.string()),
    ]
)


def register_deploys(con: duckdb.DuckDBPyConnection) -> None:
    """(Re)creates the ``deploys`` view on ``con``: every detected deploy and its verdict,
    judged over the snapshot the connection's other views read."""
    from aftershock.deploys import deploy_verdicts

    rows = [v.to_json() for v in deploy_verdicts(con)]
    columns: dict[str, list[Any]] = {name: [] for name in DEPLOYS_SCHEMA.names}
    for row in rows:
        for name in DEPLOYS_SCHEMA.names:
            value = row[name]
            if name in ("signals", "suspects"):
                value = json.dumps(value)
            elif name.endswith("_at") and value is not None:
                value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            columns[name].append(value)
    con.register("__aftershock_deploys", pa.table(columns, schema=DEPLOYS_SCHEMA))
    con.execute("CREATE OR REPLACE VIEW deploys AS SELECT * FROM __aftershock_deploys")


def install_views(
    con: duckdb.DuckDBPyConnection,
    snapshots: dict[str, TableSnapshot],
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> dict[str, list[str]]:
    """(Re)creates the views over ``snapshots`` on ``con``; returns the files each view reads.

    With a time window, each view reads only the files that may hold rows of the window and
    keeps only those rows, so SQL over a windowed connection never opens older files.
    """
    read: dict[str, list[str]] = {}
    for name in VIEWS:
        snap = snapshots[name]
        files = [f.uri for f in snap.select(since, until)]
        read[name] = files
        if files:
            uris = "[" + ", ".join(_literal(u) for u in files) + "]"
            hive = (
                f", hive_partitioning = true, hive_types = {{'{PARTITION_COLUMN}': DATE}}"
                if snap.partitioned
                else ", hive_partitioning = false"
            )
            source = f"read_parquet({uris}{hive})"
        else:
            # An absent or empty table is an empty view with the table's columns.
            source = f"__aftershock_empty_{name}"
            con.register(source, _empty_schema(name, snap.partitioned).empty_table())
        where = _window_sql(TIME_COLUMN[name], since, until)
        con.execute(
            f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM {source}"
            + (f" WHERE {where}" if where else "")
        )
    return read


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection set up for the lake, with the rollup sketch macros."""
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    # Delta data files are immutable (a rewrite gets a new name), so caching their Parquet
    # footers across queries is safe and saves re-reading every footer on every query.
    con.execute("SET parquet_metadata_cache = true")
    con.execute(_core.ROLLUP_SQL_MACROS)
    return con


@dataclass(eq=False)
class SpanNode:
    """One span of a trace tree. Times are nanoseconds since the epoch."""

    span_id: str
    parent_span_id: str | None
    service_name: str | None
    span_name: str
    span_kind: str
    start_ns: int
    duration_ns: int
    status_code: str
    status_message: str | None
    attributes: dict[str, str | None]
    depth: int = 0
    #: Duration not covered by any child span (overlapping children counted once).
    self_time_ns: int = 0
    #: True for the span an error originated in (see :attr:`Trace.error_origin`).
    error_origin: bool = False
    children: list[SpanNode] = field(default_factory=list)

    @property
    def is_error(self) -> bool:
        """Whether the span's status is ERROR."""
        return self.status_code == "ERROR"

    @property
    def end_ns(self) -> int:
        """End time, nanoseconds since the epoch."""
        return self.start_ns + self.duration_ns


@dataclass(eq=False)
class Trace:
    """A trace as a tree: ``roots`` (spans without a parent in the trace, earliest first),
    ``spans`` in depth-first order, and the span its error originated in.

    ``error_origin`` is the deepest ERROR span none of whose children is ERROR: where the
    failure started before callers reported it. None when no span is ERROR.
    """

    trace_id: str
    roots: list[SpanNode]
    spans: list[SpanNode]
    error_origin: SpanNode | None

    def __len__(self) -> int:
        return len(self.spans)

    def span(self, span_id: str) -> SpanNode:
        """The span with ``span_id``; KeyError if it is not in the trace."""
        for s in self.spans:
            if s.span_id == span_id:
                return s
        raise KeyError(span_id)

    def to_polars(self) -> pl.DataFrame:
        """One row per span in depth-first order: ids, depth, times, children, error origin."""
        return pl.DataFrame(
            {
                "span_id": [s.span_id for s in self.spans],
                "parent_span_id": [s.parent_span_id for s in self.spans],
                "depth": [s.depth for s in self.spans],
                "service_name": [s.service_name for s in self.spans],
                "span_name": [s.span_name for s in self.spans],
                "span_kind": [s.span_kind for s in self.spans],
                "start_ns": [s.start_ns for s in self.spans],
                "duration_ns": [s.duration_ns for s in self.spans],
                "self_time_ns": [s.self_time_ns for s in self.spans],
                "children": [len(s.children) for s in self.spans],
                "status_code": [s.status_code for s in self.spans],
                "status_message": [s.status_message for s in self.spans],
                "error_origin": [s.error_origin for s in self.spans],
            },
            schema_overrides={
                "parent_span_id": pl.String,
                "service_name": pl.String,
                "start_ns": pl.Int64,
                "duration_ns": pl.Int64,
                "status_message": pl.String,
            },
        )

    def render(self) -> str:
        """The tree as indented text, one span a line, offsets relative to the trace start."""
        t0 = min((s.start_ns for s in self.spans), default=0)
        lines = []
        for s in self.spans:
            mark = "  <- error origin" if s.error_origin else (" !" if s.is_error else "")
            lines.append(
                f"{'  ' * s.depth}{s.service_name} {s.span_name}"
                f"  +{(s.start_ns - t0) / 1e6:.3f} ms  {s.duration_ns / 1e6:.3f} ms"
                f" (self {s.self_time_ns / 1e6:.3f} ms){mark}"
            )
        return "\n".join(lines)


def _covered_ns(start: int, end: int, intervals: Iterable[tuple[int, int]]) -> int:
    """Nanoseconds of [start, end) covered by the union of ``intervals``."""
    covered, reach = 0, start
    for lo, hi in sorted(intervals):
        lo, hi = max(lo, reach), min(hi, end)
        if hi > lo:
            covered += hi - lo
            reach = hi
    return covered


def build_trace(trace_id: str, nodes: Sequence[SpanNode]) -> Trace:
    """Links ``nodes`` of one trace into a tree and computes depth, self time, error origin.

    A span whose parent is not in the trace (not received, or from another trace) is a root.
    """
    by_id: dict[str, SpanNode] = {}
    for n in nodes:
        by_id.setdefault(n.span_id, n)
    unique = list(by_id.values())
    roots: list[SpanNode] = []
    for n in unique:
        n.children = []
    for n in sorted(unique, key=lambda n: (n.start_ns, n.span_id)):
        parent = by_id.get(n.parent_span_id) if n.parent_span_id else None
        if parent is None or parent is n:
            roots.append(n)
        else:
            parent.children.append(n)
    ordered: list[SpanNode] = []
    seen: set[str] = set()
    # Iterative depth-first walk; spans caught in a parent cycle are unreachable from any
    # root and become roots themselves.
    root_ids = {r.span_id for r in roots}
    for top in roots + [n for n in unique if n.span_id not in root_ids]:
        if top.span_id in seen:
            continue
        if top.span_id not in root_ids:
            roots.append(top)
        stack = [(top, 0)]
        while stack:
            node, depth = stack.pop()
            if node.span_id in seen:
                continue
            seen.add(node.span_id)
            node.depth = depth
            ordered.append(node)
            stack.extend((c, depth + 1) for c in reversed(node.children))
    for n in ordered:
        n.self_time_ns = n.duration_ns - _covered_ns(
            n.start_ns, n.end_ns, ((c.start_ns, c.end_ns) for c in n.children)
        )
    origins = [n for n in ordered if n.is_error and not any(c.is_error for c in n.children)]
    origin = max(origins, key=lambda n: (n.depth, -n.start_ns), default=None)
    if origin is not None:
        origin.error_origin = True
    return Trace(trace_id, roots, ordered, origin)


class Lake:
    """A read-only view of an aftershock data directory. Use :func:`open`.

    Thread-safe; the DuckDB connection behind :meth:`sql` is this object's own, and
    :meth:`duckdb` hands out independent connections. ``files_read`` lists, per view, the data
    files the last :meth:`sql` or :meth:`trace` call could read: what time-window pruning left.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise LakeNotFoundError(f"no aftershock data directory at {str(self.path)!r}")
        self._lock = threading.RLock()
        self._tables: dict[str, DeltaTable | None] = dict.fromkeys(VIEWS)
        self._log_mtimes: dict[str, int | None] = {}
        self._snapshots: dict[str, TableSnapshot] = {}
        self._con = connect()
        self._views_key: tuple[Any, ...] | None = None
        self.files_read: dict[str, list[str]] = {}
        self.refresh()

    def refresh(self) -> dict[str, int | None]:
        """Pins the latest committed version of every table; returns the versions.

        Query methods call this themselves; call it before :meth:`duckdb` for fresh data.
        """
        with self._lock:
            for name in VIEWS:
                table = self._tables[name]
                uri = str(self.path / name)
                try:
                    # Taken before reading the log, so a commit landing meanwhile is seen next.
                    log_mtime = os.stat(self.path / name / DELTA_LOG).st_mtime_ns
                except FileNotFoundError:
                    log_mtime = None
                settled = log_mtime is not None and time.time_ns() - log_mtime > MTIME_SETTLED_NS
                if table is not None and settled and log_mtime == self._log_mtimes.get(name):
                    continue  # no commit since the last refresh
                self._log_mtimes[name] = log_mtime
                if table is None:
                    if not DeltaTable.is_deltatable(uri):
                        self._snapshots[name] = _snapshot(name, None)
                        continue
                    table = self._tables[name] = DeltaTable(uri)
                else:
                    table.update_incremental()
                old = self._snapshots.get(name)
                if old is None or old.version != table.version():
                    self._snapshots[name] = _snapshot(name, table)
            return self.versions

    @property
    def versions(self) -> dict[str, int | None]:
        """The pinned Delta version of each table (None: the table does not exist yet)."""
        return {name: snap.version for name, snap in self._snapshots.items()}

    def files(
        self, table: str, since: TimeLike | None = None, until: TimeLike | None = None
    ) -> list[str]:
        """The data files of ``table`` in the pinned snapshot that a time window reads."""
        return [f.uri for f in self._snapshot(table).select(parse_time(since), parse_time(until))]

    def _snapshot(self, table: str) -> TableSnapshot:
        if table not in VIEWS:
            raise ValueError(f"no table {table!r}; tables: {', '.join(VIEWS)}")
        return self._snapshots[table]

    def duckdb(
        self,
        *,
        since: TimeLike | None = None,
        until: TimeLike | None = None,
        deploys: bool = True,
    ) -> duckdb.DuckDBPyConnection:
        """A new DuckDB connection with the views ``spans``, ``logs``, ``rollups``,
        ``markers`` and ``deploys`` over the pinned snapshot (one version of each table,
        fixed for the life of the connection) and the rollup macros
        ``sketch_quantile``/``sketch_merge``.

        With ``since``/``until`` the views hold only that time window, and read only the
        files that may hold it. ``deploys`` judges every deploy when the connection is made
        (about a second on a large lake); ``deploys=False`` leaves that view out.
        """
        with self._lock:
            con = connect()
            install_views(con, self._snapshots, parse_time(since), parse_time(until))
        if deploys:
            register_deploys(con)
        return con

    def sql(
        self,
        query: str,
        params: Sequence[Any] | dict[str, Any] | None = None,
        *,
        since: TimeLike | None = None,
        until: TimeLike | None = None,
    ) -> pl.DataFrame:
        """Runs DuckDB SQL over the latest snapshot; returns a Polars DataFrame.

        ``since``/``until`` restrict every view to a time window (see :meth:`duckdb`).
        DuckDB errors propagate as ``duckdb.Error``.
        """
        out = pl.from_arrow(self.arrow(query, params, since=since, until=until))
        assert isinstance(out, pl.DataFrame)
        return out

    def arrow(
        self,
        query: str,
        params: Sequence[Any] | dict[str, Any] | None = None,
        *,
        since: TimeLike | None = None,
        until: TimeLike | None = None,
    ) -> pa.Table:
        """:meth:`sql`, returning a ``pyarrow.Table`` (empty for statements like ``SET``)."""
        with self._lock:
            self.refresh()
            lo, hi = parse_time(since), parse_time(until)
            key = (tuple(self.versions.items()), lo, hi)
            if key != self._views_key:
                self.files_read = install_views(self._con, self._snapshots, lo, hi)
                self._views_key = key
            if _DEPLOYS_REFERENCE.search(query):
                register_deploys(self._con)
            rel = self._con.sql(query, params=params)
            return pa.table({}) if rel is None else with_utc_timestamps(rel.to_arrow_table())

    def deploys(self, service: str | None = None) -> list[Verdict]:
        """The deploys detected in the latest snapshot with their verdicts, oldest first
        (``.service``, ``.version``, ``.verdict``, ``.to_json()``: see CONTRACT.md)."""
        from aftershock.deploys import deploy_verdicts

        self.refresh()
        return deploy_verdicts(self.duckdb(deploys=False), service)

    def _frame(
        self,
        table: str,
        service: str | Sequence[str] | None,
        since: TimeLike | None,
        until: TimeLike | None,
    ) -> pl.LazyFrame:
        with self._lock:
            self.refresh()
            snap = self._snapshot(table)
            lo, hi = parse_time(since), parse_time(until)
            files = [f.uri for f in snap.select(lo, hi)]
        if files:
            lf = pl.scan_parquet(files, hive_partitioning=snap.partitioned)
        else:
            empty = pl.from_arrow(_empty_schema(table, snap.partitioned).empty_table())
            assert isinstance(empty, pl.DataFrame)
            lf = empty.lazy()
        column = pl.col(TIME_COLUMN[table])
        if lo is not None:
            lf = lf.filter(column >= lo)
        if hi is not None:
            lf = lf.filter(column < hi)
        if isinstance(service, str):
            lf = lf.filter(pl.col("service_name") == service)
        elif service is not None:
            lf = lf.filter(pl.col("service_name").is_in(list(service)))
        return lf

    def spans(
        self,
        service: str | Sequence[str] | None = None,
        since: TimeLike | None = None,
        until: TimeLike | None = None,
    ) -> pl.LazyFrame:
        """Spans as a Polars LazyFrame, optionally of some services and a time window
        (``start_time`` in ``[since, until)``); only the files of the window are scanned."""
        return self._frame("spans", service, since, until)

    def logs(
        self,
        service: str | Sequence[str] | None = None,
        since: TimeLike | None = None,
        until: TimeLike | None = None,
    ) -> pl.LazyFrame:
        """Log records as a Polars LazyFrame, filtered like :meth:`spans` (on ``time``)."""
        return self._frame("logs", service, since, until)

    def rollups(
        self,
        service: str | Sequence[str] | None = None,
        since: TimeLike | None = None,
        until: TimeLike | None = None,
    ) -> pl.LazyFrame:
        """Per-minute RED rollups as a Polars LazyFrame, filtered like :meth:`spans`
        (on ``minute``)."""
        return self._frame("rollups", service, since, until)

    def trace(self, trace_id: str) -> Trace:
        """The span tree of one trace; :class:`TraceNotFoundError` if no span has the id.

        Only files whose recorded trace id range holds the id are read, and inside them the
        ``trace_id`` bloom filters skip most row groups.
        """
        trace_id = trace_id.strip().lower()
        with self._lock:
            self.refresh()
            files = [f.uri for f in self._snapshots["spans"].files if f.may_hold_trace(trace_id)]
            self.files_read = {"spans": files}
            rows: list[tuple[Any, ...]] = []
            if files:
                rows = self._con.execute(
                    "SELECT span_id, parent_span_id, service_name, span_name, span_kind,"
                    " epoch_ns(start_time), duration_ns, status_code, status_message,"
                    " span_attributes FROM read_parquet($files) WHERE trace_id = $id",
                    {"files": files, "id": trace_id},
                ).fetchall()
        if not rows:
            raise TraceNotFoundError(f"no spans of trace {trace_id} in {self.path}")
        nodes = [
            SpanNode(
                span_id=r[0],
                parent_span_id=r[1],
                service_name=r[2],
                span_name=r[3],
                span_kind=r[4],
                start_ns=r[5],
                duration_ns=r[6],
                status_code=r[7],
                status_message=r[8],
                attributes=dict(r[9]),
            )
            for r in rows
        ]
        return build_trace(trace_id, nodes)

    def service_map(
        self, since: TimeLike | None = None, until: TimeLike | None = None
    ) -> pl.DataFrame:
        """Calls between services: one row per ``caller -> callee`` edge, from each span whose
        parent span (same trace) belongs to another service.

        Columns: ``caller``, ``callee``, ``calls``, ``errors`` (callee spans with ERROR status),
        ``error_rate``, and ``p50_ns``/``p95_ns`` of the callee spans' durations. Spans whose
        parent started before ``since`` are not matched.
        """
        return self.sql(
            """
            SELECT p.service_name AS caller, c.service_name AS callee,
                   count(*) AS calls,
                   count(*) FILTER (WHERE c.status_code = 'ERROR') AS errors,
                   errors / calls AS error_rate,
                   quantile_cont(c.duration_ns, 0.5) AS p50_ns,
                   quantile_cont(c.duration_ns, 0.95) AS p95_ns
            FROM spans AS c
            JOIN spans AS p ON c.trace_id = p.trace_id AND c.parent_span_id = p.span_id
            WHERE c.service_name IS DISTINCT FROM p.service_name
            GROUP BY ALL
            ORDER BY calls DESC, caller, callee
            """,
            since=since,
            until=until,
        )

    def latency(
        self,
        service: str | Sequence[str] | None = None,
        by: Sequence[str] = ("service_name", "span_name"),
        since: TimeLike | None = None,
        until: TimeLike | None = None,
        quantiles: Sequence[float] = DEFAULT_QUANTILES,
    ) -> pl.DataFrame:
        """Calls, errors and latency quantiles from the rollup sketches, grouped by ``by``
        (columns of ``rollups``, e.g. ``("service_name", "service_version", "minute")``).

        Quantile columns are named ``p50_ns``, ``p95_ns``, ``p99_ns``, ``p99.9_ns``...; they
        come from the ``sketch_quantile`` SQL macro (relative error <= 1%).
        """
        columns = set(table_schema("rollups").names)
        bad = [c for c in by if c not in columns]
        if bad:
            raise ValueError(f"cannot group rollups by {bad}; columns: {sorted(columns)}")
        keys = [f'"{c}"' for c in by]
        quants = []
        for q in quantiles:
            if not 0 <= q <= 1:
                raise ValueError(f"quantile {q} is not within [0, 1]")
            quants.append(f'sketch_quantile(list(latency_sketch), {q!r}) AS "p{q * 100:g}_ns"')
        where, params = "", dict[str, Any]()
        if isinstance(service, str):
            where, params = "WHERE service_name = $service", {"service": service}
        elif service is not None:
            where, params = "WHERE list_contains($service, service_name)", {"service": service}
        select = ", ".join(
            [*keys, "sum(calls)::BIGINT AS calls", "sum(errors)::BIGINT AS errors", *quants]
        )
        group = f"GROUP BY {', '.join(keys)} ORDER BY {', '.join(keys)}" if keys else ""
        return self.sql(
            f"SELECT {select} FROM rollups {where} {group}", params, since=since, until=until
        )

    def close(self) -> None:
        """Closes this object's DuckDB connection (connections from :meth:`duckdb` stay)."""
        self._con.close()

    def __enter__(self) -> Lake:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open(path: str | Path) -> Lake:
    """Opens the data directory ``path`` read-only; works while a writer commits to it.

    Raises :class:`LakeNotFoundError` (a ``FileNotFoundError``) when ``path`` is not a
    directory. Tables the writer has not created yet read as empty.
    """
    return Lake(path)
