"""The lake writer: durable ingest into Delta Lake tables.

The Rust core (`aftershock._core.RawLake`) decodes each request, appends it to the WAL and
returns once it is durable; it also writes the buffered rows as Parquet data files. This
module owns what delta-rs does for us: creating the tables and committing those files, each
commit carrying this receiver's WAL position as a Delta ``txn`` version so that a restart
replays exactly what the tables are missing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import BloomFilterProperties, ColumnProperties, DeltaTable, WriterProperties
from deltalake.transaction import (
    AddAction,
    CommitProperties,
    PostCommitHookProperties,
    RemoveAction,
    Transaction,
)

from aftershock import _core

#: Tables the writer fills, as the Rust core names them.
TABLES: tuple[str, ...] = tuple(_core.LAKE_TABLES)
#: Every table is partitioned by this UTC date column (not stored inside the Parquet files).
PARTITION_COLUMN = "day"
DURABILITY_MODES = ("fsync", "os")
RECEIVER_ID_FILE = "receiver-id"
#: A partition is compacted once it holds this many data files...
COMPACT_MIN_FILES = 8
#: ...into files of about this size.
COMPACT_TARGET_BYTES = 128 << 20
#: Files this large or larger are left as they are (delta-rs's optimize rewrote them with
#: the small ones, round after round).
COMPACT_LARGE_BYTES = COMPACT_TARGET_BYTES // 2
#: What a compaction's Delta commit carries in its ``commitInfo``, to tell it in the
#: table's history (its ``operation`` is ``WRITE``, as for any commit of files written
#: outside delta-rs).
COMPACTION_COMMIT_INFO = {"aftershock.operation": "compact"}
#: Rows per row group in compacted files (the Rust writer's default too).
COMPACT_ROW_GROUP_ROWS = 128 * 1024
#: Files removed by compaction or retention stay on disk this long for readers still on
#: an older snapshot, then vacuum deletes them.
VACUUM_GRACE_HOURS = 1
#: Taken (flock) by the one writer maintaining a table location at a time.
MAINTENANCE_LOCK_FILE = ".maintenance.lock"
#: Commits between Delta checkpoints (delta-rs's default is 100). Each commit reads back the
#: JSON commits since the last checkpoint, so its CPU cost grows with them: 300 commits of
#: 8192 spans took 12 ms each just after a checkpoint and 50 ms just before the next one at
#: 100, 11 ms on average with 10 (5 and 20 measured about the same; 2 was dearer).
CHECKPOINT_INTERVAL = 10
#: How long maintenance keeps Delta log entries (commits, checkpoints) once a later checkpoint
#: covers them. Only time travel reads them, but delta-rs lists the whole ``_delta_log``
#: directory of a local table at every update and commit: a commit cost ~6 ms of CPU with 100
#: files there, 13 ms with 1,000 and 43 ms with 6,600 (benches/README.md, commits), and a
#: writer flushing every 2 s makes 43K commits a day per table. Five minutes of a busy
#: writer's commits (one or two a second per table) plus their checkpoints are a few hundred
#: to a thousand files.
LOG_RETENTION = "interval 5 minutes"
#: An explicit flush() stops after this many slices even if ingest keeps adding rows.
MAX_FLUSH_SLICES = 64
#: How often the flush thread looks at the buffered size between age-based flushes.
SIZE_POLL_SECONDS = 0.1


def table_properties() -> dict[str, str]:
    """The Delta table properties aftershock sets on its tables."""
    return {
        "delta.checkpointInterval": str(CHECKPOINT_INTERVAL),
        "delta.logRetentionDuration": LOG_RETENTION,
    }


@dataclass(frozen=True)
class IngestResult:
    """What one export request did: rows stored, records rejected and why."""

    accepted: int
    rejected: int
    error_message: str | None
    #: Values repaired on the way in, by kind: ``invalid_utf8``, ``truncated_values``,
    #: ``depth_capped``, ``negative_durations`` (see the decode rules in the README).
    repairs: dict[str, int] = field(default_factory=dict)


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[bool]:
    """Holds an exclusive ``flock`` on ``path`` if no one else does; yields whether it does.

    Each call opens the file anew, so two threads of one process exclude each other too.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the lock


def table_schema(table: str) -> pa.Schema:
    """The Delta schema of ``table``: the Rust-defined columns plus the ``day`` partition."""
    schema = pa.schema(_core.table_schema(table))
    return schema.append(pa.field(PARTITION_COLUMN, pa.date32()))


def receiver_id(data_dir: Path) -> str:
    """This data directory's writer identity, created once and kept in ``receiver-id``.

    It names the WAL's owner in Delta ``txn`` actions, so several receivers can commit to the
    same tables and each replays only its own records.
    """
    path = data_dir / RECEIVER_ID_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        rid = f"aftershock-{uuid.uuid4()}"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(rid + "\n")
        os.replace(tmp, path)
        return rid


def ensure_table(tables_dir: Path, table: str) -> DeltaTable:
    """Opens ``table`` under ``tables_dir``, creating an empty Delta table first if needed.

    Several writers may start at once on a shared table location: the one that loses the race
    to create the table opens the one that won.
    """
    uri = str(tables_dir / table)
    if DeltaTable.is_deltatable(uri):
        return _with_table_properties(DeltaTable(uri))
    try:
        return DeltaTable.create(
            uri,
            schema=table_schema(table),
            mode="ignore",
            partition_by=[PARTITION_COLUMN],
            name=table,
            configuration=table_properties(),
        )
    except Exception:
        if DeltaTable.is_deltatable(uri):
            return _with_table_properties(DeltaTable(uri))
        raise


def _with_table_properties(table: DeltaTable) -> DeltaTable:
    """Sets :func:`table_properties` on a table made before they were set at creation (an
    operator's own values stay)."""
    configuration = table.metadata().configuration
    missing = {k: v for k, v in table_properties().items() if k not in configuration}
    if missing:
        try:
            table.alter.set_table_properties(missing)
        except Exception:
            # Another writer changing the table's metadata at the same moment: only the
            # commits' cost and the log's size depend on them, and the next start tries again.
            table.update_incremental()
    return table


def compaction_properties(table: str) -> WriterProperties:
    """Parquet settings for files delta-rs's optimize writes (:func:`compact_table` on a
    table that is not one of aftershock's, or not on a local disk), close to what the Rust
    writer does: zstd, the bloom filter on ``trace_id``, and no dictionary on the columns
    it writes without one (ids and timestamps: with delta-rs's default dictionaries,
    compacted spans took 37 bytes each instead of 29).

    Row groups of 128K rows, as the Rust writer makes them, rather than delta-rs's 1M: a
    lookup by trace id that the bloom filter narrows to one row group then decodes an eighth
    as much (measured on 10M spans: 214 -> 127 ms for one trace, for 17% more bytes).
    """
    if table not in TABLES:
        return WriterProperties(compression="ZSTD", compression_level=3)
    # Top-level columns only: delta-rs sets column properties by a name of one part (and
    # names list items ``element``, not ``item``), so a nested leaf's entry would not apply.
    plain = {name: enc for name, enc in _core.plain_columns(table) if "." not in name}
    columns = {
        name: ColumnProperties(dictionary_enabled=False, encoding=encoding)  # type: ignore[arg-type]
        for name, encoding in plain.items()
    }
    if "trace_id" in table_schema(table).names:
        columns["trace_id"] = ColumnProperties(
            dictionary_enabled=False if "trace_id" in plain else None,
            bloom_filter_properties=BloomFilterProperties(True, 0.01, COMPACT_ROW_GROUP_ROWS),
        )
    return WriterProperties(
        compression="ZSTD",
        compression_level=3,
        max_row_group_size=COMPACT_ROW_GROUP_ROWS,
        column_properties=columns,
    )


def add_action(file: dict[str, Any], *, data_change: bool) -> AddAction:
    """The Delta ``add`` action of a data file the Rust core wrote (a flush's or a
    compaction's file, as a dict)."""
    return AddAction(
        file["path"],
        file["size"],
        dict(file["partition_values"]),
        file["modification_time_ms"],
        data_change,
        file["stats_json"],
    )


def compact_table(
    table: DeltaTable, min_files: int = COMPACT_MIN_FILES, *, copy_row_group_rows: int | None = None
) -> int:
    """Rewrites the small data files of each day partition of ``table`` that holds
    ``min_files`` or more of them into files of about ``COMPACT_TARGET_BYTES``, one Delta
    commit per new file; returns the files removed.

    Readers see either the old files or the new ones, never both: counts stay exact.

    aftershock's own tables on a local disk are rewritten by the Rust core
    (``_core.compact_data_files``): row groups of ``copy_row_group_rows`` rows or more (by
    default the core's threshold, 16K) that its writer wrote are copied as they are, the
    others merged through the writer flushes use. Any other table is compacted by
    delta-rs's optimize.
    """
    table.update_incremental()
    name = table.metadata().name or ""
    table_dir = _local_dir(table.table_uri)
    if name not in TABLES or table_dir is None:
        return optimize_with_delta_rs(table, min_files)
    files = (
        pa.table(table.get_add_actions(flatten=True))
        .select(["path", "size_bytes", f"partition.{PARTITION_COLUMN}"])
        .to_pylist()
    )
    small: dict[str, list[tuple[str, int]]] = {}
    for f in files:
        if f["size_bytes"] < COMPACT_LARGE_BYTES:
            day = str(f[f"partition.{PARTITION_COLUMN}"])
            small.setdefault(day, []).append((f["path"], f["size_bytes"]))
    removed = 0
    for day, candidates in sorted(small.items()):
        if len(candidates) < min_files:
            continue
        # File names start with their write time: oldest first.
        for group in _bins(sorted(candidates), COMPACT_TARGET_BYTES):
            if len(group) >= 2:
                _rewrite(table, name, table_dir, day, group, copy_row_group_rows)
                removed += len(group)
    return removed


def _local_dir(uri: str) -> Path | None:
    """The directory of a table at ``uri`` if it is on a local disk."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == "file":
        return Path(urllib.parse.unquote(parsed.path))
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        return Path(uri)
    return None


def _bins(files: list[tuple[str, int]], target: int) -> Iterator[list[tuple[str, int]]]:
    """``files`` (path, size) in runs of about ``target`` bytes, in order."""
    group: list[tuple[str, int]] = []
    size = 0
    for f in files:
        group.append(f)
        size += f[1]
        if size >= target:
            yield group
            group, size = [], 0
    if group:
        yield group


def _rewrite(
    table: DeltaTable,
    name: str,
    table_dir: Path,
    day: str,
    group: list[tuple[str, int]],
    copy_row_group_rows: int | None,
) -> None:
    """Writes the files of ``group`` (path, size) as one and commits the swap."""
    written = _core.compact_data_files(
        str(table_dir),
        name,
        day,
        [p for p, _ in group],
        copy_row_group_rows=copy_row_group_rows,
    )
    now_ms = int(time.time() * 1000)
    actions: list[AddAction | RemoveAction] = [
        RemoveAction(path, False, now_ms, size, {PARTITION_COLUMN: day}) for path, size in group
    ]
    if written is not None:
        actions.append(add_action(written, data_change=False))
    try:
        table.create_write_transaction(
            actions,
            mode="append",
            schema=table_schema(name),
            partition_by=[PARTITION_COLUMN],
            commit_properties=CommitProperties(custom_metadata=dict(COMPACTION_COMMIT_INFO)),
            post_commithook_properties=PostCommitHookProperties(
                create_checkpoint=True, cleanup_expired_logs=False
            ),
        )
    except Exception:
        # Lost a race (another writer removed one of the files) or a full disk: the new
        # file is in no commit, unless the commit went through and a step after it failed.
        if written is not None:
            with contextlib.suppress(Exception):
                table.update_incremental()
                if written["path"] not in _data_file_paths(table):
                    (table_dir / written["path"]).unlink(missing_ok=True)
        raise


def _data_file_paths(table: DeltaTable) -> set[str]:
    """The paths of the data files in ``table``'s snapshot, as its log has them."""
    return set(pa.table(table.get_add_actions()).column("path").to_pylist())


def optimize_with_delta_rs(table: DeltaTable, min_files: int = COMPACT_MIN_FILES) -> int:
    """:func:`compact_table` by delta-rs's optimize (every file of a partition of
    ``min_files`` or more, large ones included): for tables that are not aftershock's or
    not on a local disk, and the baseline of ``benches/bench_lake.py``."""
    actions = pa.table(table.get_add_actions(flatten=True))
    days = Counter(str(d) for d in actions.column(f"partition.{PARTITION_COLUMN}").to_pylist())
    removed = 0
    for day, n in sorted(days.items()):
        if n < min_files:
            continue
        metrics = table.optimize.compact(
            partition_filters=[(PARTITION_COLUMN, "=", day)],
            target_size=COMPACT_TARGET_BYTES,
            writer_properties=compaction_properties(table.metadata().name or ""),
        )
        removed += int(metrics.get("numFilesRemoved", 0))
    return removed


def apply_retention(table: DeltaTable, retention: dt.timedelta, now: dt.datetime) -> int:
    """Removes the day partitions older than ``retention`` (one commit); returns rows removed."""
    cutoff = (now - retention).date()
    metrics = table.delete(f"{PARTITION_COLUMN} < '{cutoff.isoformat()}'")
    # Full: also the files no commit ever added, older than the grace period (a compaction
    # or a flush killed between writing a file and committing it leaves one behind).
    table.vacuum(
        retention_hours=VACUUM_GRACE_HOURS,
        dry_run=False,
        enforce_retention_duration=False,
        full=True,
    )
    return int(metrics.get("num_deleted_rows", 0))


class LakeWriter:
    """Durable ingest into the Delta tables under ``tables_dir`` (by default ``data_dir``),
    with this writer's WAL and identity under ``data_dir``.

    Several writers, each with a ``data_dir`` of its own, may share one ``tables_dir``: each
    commit carries its writer's id and WAL position, so each replays only its own records.

    ``ingest_traces``/``ingest_logs`` return only once the request is in the fsynced WAL
    (``durability="os"`` skips the fsync). A background thread flushes buffered rows to
    Parquet and commits them every ``flush_interval`` seconds, so acknowledged data is
    queryable within a few seconds, and at once whenever ``flush_bytes`` (a quarter of the
    budget by default) are buffered, so that writing Parquet, which needs memory of its own,
    starts well before the budget is reached. When ``max_buffer_bytes`` of rows wait for a commit,
    ingest raises :class:`aftershock.errors.BusyError` instead of growing.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        tables_dir: str | os.PathLike[str] | None = None,
        durability: str = "fsync",
        flush_interval: float = 2.0,
        max_buffer_bytes: int = 512 << 20,
        flush_bytes: int | None = None,
        retention: dt.timedelta = dt.timedelta(days=7),
        maintenance_interval: float = 60.0,
        background: bool = True,
    ) -> None:
        if durability not in DURABILITY_MODES:
            raise ValueError(f"durability must be one of {DURABILITY_MODES}, not {durability!r}")
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.tables_dir = Path(tables_dir) if tables_dir is not None else self.data_dir
        self.tables_dir.mkdir(parents=True, exist_ok=True)
        self.receiver_id = receiver_id(self.data_dir)
        self.flush_interval = flush_interval
        self.flush_bytes = flush_bytes if flush_bytes is not None else max_buffer_bytes // 4
        self.retention = retention
        self.maintenance_interval = maintenance_interval
        self._tables = {t: ensure_table(self.tables_dir, t) for t in TABLES}
        committed = {
            t: dt.transaction_version(self.receiver_id) or 0 for t, dt in self._tables.items()
        }
        self._raw, self.open_report = _core.RawLake.open(
            str(self.data_dir), str(self.tables_dir), durability, max_buffer_bytes, committed
        )
        self._commit_lock = threading.Lock()
        self._stop = threading.Event()
        self.last_flush_seconds = 0.0
        #: Called with the seconds each flush took (the receiver's flush-latency histogram).
        self.on_flush: Callable[[float], object] | None = None
        self.flush_errors = 0
        self.maintenance_errors = 0
        self._threads: list[threading.Thread] = []
        if background:
            for target, name in [
                (self._flush_loop, "aftershock-flush"),
                (self._maintenance_loop, "aftershock-maintenance"),
            ]:
                thread = threading.Thread(target=target, name=name, daemon=True)
                thread.start()
                self._threads.append(thread)

    def ingest_traces(self, request: bytes, *, json: bool = False) -> IngestResult:
        """Stores an ``ExportTraceServiceRequest``; returns once it is durable.

        ``json=True`` takes the OTLP/JSON encoding instead of protobuf; the WAL records
        which one it was, so a replay after a crash decodes it the same way.
        """
        ingest = self._raw.ingest_traces_json if json else self._raw.ingest_traces
        return IngestResult(*ingest(request))

    def ingest_logs(self, request: bytes, *, json: bool = False) -> IngestResult:
        """Stores an ``ExportLogsServiceRequest``; returns once it is durable.

        ``json=True`` takes the OTLP/JSON encoding, as for :meth:`ingest_traces`.
        """
        ingest = self._raw.ingest_logs_json if json else self._raw.ingest_logs
        return IngestResult(*ingest(request))

    def flush(self) -> int:
        """Writes and commits everything acknowledged so far; returns the rows committed."""
        rows = 0
        for _ in range(MAX_FLUSH_SLICES):
            done = self._flush_slice()
            if done is None:
                break
            rows += done
        return rows

    def _flush_slice(self) -> int | None:
        """Commits the oldest buffered rows, up to a quarter of the budget (written as Parquet
        up to 128 MiB of rows at a time, committed once per table); returns the rows committed,
        or None when nothing was pending."""
        with self._commit_lock:
            start = time.perf_counter()
            pendings = self._raw.flush()
            if not pendings:
                return None
            rows = 0
            for pending in pendings:
                self._commit(pending)
                rows += pending["rows"]
            self.last_flush_seconds = time.perf_counter() - start
            if self.on_flush is not None and rows:
                self.on_flush(self.last_flush_seconds)
            return rows

    def _commit(self, pending: dict[str, Any]) -> None:
        table, seq = pending["table"], pending["seq"]
        if pending["files"]:
            dt = self._tables[table]
            dt.update_incremental()
            actions: list[AddAction | RemoveAction] = [
                add_action(f, data_change=True) for f in pending["files"]
            ]
            dt.create_write_transaction(
                actions,
                mode="append",
                schema=table_schema(table),
                partition_by=[PARTITION_COLUMN],
                commit_properties=CommitProperties(
                    app_transactions=[Transaction(self.receiver_id, seq)]
                ),
                post_commithook_properties=PostCommitHookProperties(
                    create_checkpoint=True, cleanup_expired_logs=False
                ),
            )
        # A table with no rows up to `seq` has nothing to commit and nothing to lose.
        self._raw.committed(table, seq)

    def _flush_loop(self) -> None:
        while not self._stop.wait(self._next_wait()):
            try:
                self._flush_slice()
            except Exception:
                # Rows stay buffered and in the WAL; the next round writes them again.
                self.flush_errors += 1
                self._stop.wait(min(self.flush_interval, 1.0))

    def maintain(self, now: dt.datetime | None = None) -> dict[str, int]:
        """Compacts small files and drops partitions past the retention, table by table.

        Each step is its own Delta commit made with delta-rs; it never touches the WAL or the
        rows still buffered, so it runs beside ingest and flushes. One writer at a time
        maintains a table location (``skipped`` is 1 when another one is at it): delta-rs
        lets two compactions that remove the same files both commit, which would store their
        rows twice.
        """
        now = now or dt.datetime.now(dt.timezone.utc)
        done = {"files_compacted": 0, "rows_expired": 0, "skipped": 0}
        with _exclusive(self.tables_dir / MAINTENANCE_LOCK_FILE) as held:
            if not held:
                done["skipped"] = 1
                return done
            for name in TABLES:
                table = DeltaTable(str(self.tables_dir / name))
                done["rows_expired"] += apply_retention(table, self.retention, now)
                done["files_compacted"] += compact_table(table, COMPACT_MIN_FILES)
                # Log entries past LOG_RETENTION and covered by a later checkpoint.
                table.cleanup_metadata()
        return done

    def _maintenance_loop(self) -> None:
        while not self._stop.wait(self.maintenance_interval):
            try:
                self.maintain()
            except Exception:
                # Compaction or retention lost a race or hit a full disk: the tables are
                # unchanged by a failed commit, and the next round tries again.
                self.maintenance_errors += 1

    def _next_wait(self) -> float:
        age = self._raw.buffered_age()
        if self._raw.buffered_bytes() >= self.flush_bytes:
            return 0.0
        if not age:
            return min(self.flush_interval / 4, SIZE_POLL_SECONDS)
        # Wake up often enough to notice `flush_bytes` filling up before the age is reached.
        return min(max(0.05, self.flush_interval - age), SIZE_POLL_SECONDS)

    def metrics(self) -> dict[str, float]:
        """Gauges for the receiver's Prometheus endpoint."""
        return {
            "buffered_bytes": self._raw.buffered_bytes(),
            "wal_bytes": self._raw.wal_bytes(),
            "last_flush_seconds": self.last_flush_seconds,
            "flush_errors": self.flush_errors,
            "maintenance_errors": self.maintenance_errors,
        }

    def close(self, *, flush: bool = True) -> None:
        """Stops the flush thread, commits everything acknowledged and releases the WAL.

        With ``flush=False`` nothing more is committed: acknowledged data stays in the WAL
        and the next writer on this directory replays it (a fast shutdown).
        """
        self._stop.set()
        for thread in self._threads:
            thread.join()
        try:
            if flush:
                self.flush()
        finally:
            self._raw.close()

    def __enter__(self) -> LakeWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
