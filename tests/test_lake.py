"""The lake writer: durability, exactly-once replay, Delta commits, rollups, backpressure."""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from deltalake import DeltaTable
from lake_workload import files, logs_request, rollup_calls, tag_counts, trace_request

import aftershock
from aftershock.errors import BusyError
from aftershock.lake import TABLES, LakeWriter

SPANS_PER_REQUEST = 20
LOGS_PER_REQUEST = 10


def test_ingest_flush_commit_roundtrip(tmp_path: Path) -> None:
    with LakeWriter(tmp_path, background=False) as w:
        for i in range(5):
            r = w.ingest_traces(trace_request(f"t{i}"))
            assert (r.accepted, r.rejected, r.error_message) == (SPANS_PER_REQUEST, 0, None)
        assert w.ingest_logs(logs_request("l0")).accepted == LOGS_PER_REQUEST
        assert w.flush() > 0
    spans = tag_counts(tmp_path, "spans")
    assert spans == Counter({f"t{i}": SPANS_PER_REQUEST for i in range(5)})
    assert tag_counts(tmp_path, "logs") == Counter({"l0": LOGS_PER_REQUEST})
    assert rollup_calls(tmp_path) == 5 * SPANS_PER_REQUEST
    for table in TABLES:
        dt = DeltaTable(str(tmp_path / table))
        assert dt.metadata().partition_columns == ["day"]


def test_partitions_by_day_and_keeps_the_schema(tmp_path: Path) -> None:
    with LakeWriter(tmp_path, background=False) as w:
        w.ingest_traces(trace_request("x"))
    (day,) = {Path(u).parent.name for u in files(tmp_path, "spans")}
    assert day == "day=2025-11-29"
    cols = duckdb.sql(
        "select * from read_parquet($f, hive_partitioning=false) limit 0",
        params={"f": files(tmp_path, "spans")},
    )
    assert cols.columns == pa.schema(aftershock.table_schema("spans")).names


def test_rejected_spans_are_counted_and_the_rest_kept(tmp_path: Path) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    req = ExportTraceServiceRequest.FromString(trace_request("r"))
    req.resource_spans[0].scope_spans[0].spans[0].trace_id = b""
    with LakeWriter(tmp_path, background=False) as w:
        r = w.ingest_traces(req.SerializeToString())
    assert (r.accepted, r.rejected) == (SPANS_PER_REQUEST - 1, 1)
    assert r.error_message and "trace_id" in r.error_message
    assert tag_counts(tmp_path, "spans") == Counter({"r": SPANS_PER_REQUEST - 1})


def test_garbage_is_a_decode_error_and_stores_nothing(tmp_path: Path) -> None:
    with LakeWriter(tmp_path, background=False) as w:
        with pytest.raises(aftershock.DecodeError):
            w.ingest_traces(b"\x0a\xff\xff\xff")
        assert w.metrics()["wal_bytes"] == 0
    assert tag_counts(tmp_path, "spans") == Counter()


def test_restart_replays_what_was_not_committed_exactly_once(tmp_path: Path) -> None:
    w = LakeWriter(tmp_path, background=False)
    w.ingest_traces(trace_request("a"))
    w.flush()
    w.ingest_traces(trace_request("b"))
    w.ingest_logs(logs_request("b"))
    w.close(flush=False)  # "b" lives only in the WAL, as after a crash
    with LakeWriter(tmp_path, background=False) as w2:
        assert w2.open_report["replayed_records"] == 2
    assert tag_counts(tmp_path, "spans") == Counter({"a": 20, "b": 20})
    assert tag_counts(tmp_path, "logs") == Counter({"b": 10})
    assert rollup_calls(tmp_path) == 40
    # A third start has nothing to replay, and the WAL was trimmed.
    with LakeWriter(tmp_path, background=False) as w3:
        assert w3.open_report["replayed_records"] == 0
    assert tag_counts(tmp_path, "spans") == Counter({"a": 20, "b": 20})


def test_background_flush_makes_data_visible_within_seconds(tmp_path: Path) -> None:
    with LakeWriter(tmp_path, flush_interval=0.5) as w:
        w.ingest_traces(trace_request("v"))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not tag_counts(tmp_path, "spans"):
            time.sleep(0.1)
        assert tag_counts(tmp_path, "spans") == Counter({"v": 20})


def test_memory_budget_answers_busy_instead_of_growing(tmp_path: Path) -> None:
    with LakeWriter(tmp_path, background=False, max_buffer_bytes=64 << 10) as w:
        with pytest.raises(BusyError) as busy:
            for i in range(1000):
                w.ingest_traces(trace_request(f"m{i}"))
        assert busy.value.retry_after_ms > 0
        accepted_before = sum(tag_counts(tmp_path, "spans").values())
        w.flush()  # frees the budget
        assert w.ingest_traces(trace_request("after")).accepted == 20
    assert accepted_before == 0
    assert tag_counts(tmp_path, "spans")["after"] == 20


def test_flush_takes_bounded_slices_oldest_first(tmp_path: Path) -> None:
    """One flush takes about a quarter of the budget, so writing Parquet never needs a
    multiple of the budget; flush() keeps slicing until everything is committed."""
    # 40 requests of ~110 KB decoded each: within an 8 MiB budget, over its 2 MiB slices.
    with LakeWriter(tmp_path, background=False, max_buffer_bytes=8 << 20) as w:
        tags = [f"s{i}" for i in range(40)]
        for tag in tags:
            w.ingest_traces(trace_request(tag, spans=200))
        assert w._flush_slice()
        committed = tag_counts(tmp_path, "spans")
        # A prefix of the requests, each whole, and not all of them.
        assert 0 < len(committed) < len(tags)
        assert set(committed) == set(tags[: len(committed)])
        assert set(committed.values()) == {200}
        assert w.flush() > 0
        assert w._flush_slice() is None
    assert tag_counts(tmp_path, "spans") == dict.fromkeys(tags, 200)
    assert rollup_calls(tmp_path) == 40 * 200


def test_tables_are_checkpointed_every_few_commits(tmp_path: Path) -> None:
    """A delta-rs commit reads back the commits since the last checkpoint: tables get a short
    checkpoint interval, also when they were made without one."""
    old = tmp_path / "old"
    DeltaTable.create(
        str(old / "spans"), schema=aftershock.lake.table_schema("spans"), partition_by=["day"]
    )
    for data in (tmp_path / "new", old):
        with LakeWriter(data, background=False) as w:
            for i in range(aftershock.lake.CHECKPOINT_INTERVAL + 1):
                w.ingest_traces(trace_request(f"c{i}"))
                w.flush()
        table = DeltaTable(str(data / "spans"))
        interval = aftershock.lake.CHECKPOINT_INTERVAL
        assert table.metadata().configuration["delta.checkpointInterval"] == str(interval)
        assert list((data / "spans" / "_delta_log").glob("*.checkpoint.parquet"))
        assert tag_counts(data, "spans") == {
            f"c{i}": SPANS_PER_REQUEST for i in range(interval + 1)
        }


def test_maintenance_drops_expired_log_entries(tmp_path: Path) -> None:
    """Log entries older than the log retention that a checkpoint covers are deleted; the
    table's rows and this writer's txn version (its exactly-once position) stay."""
    with LakeWriter(tmp_path, background=False) as w:
        for i in range(2 * aftershock.lake.CHECKPOINT_INTERVAL + 1):
            w.ingest_traces(trace_request(f"l{i}"))
            w.flush()
        log = tmp_path / "spans" / "_delta_log"
        before = sorted(p.name for p in log.glob("*.json"))
        # Older than the retention, which must be minutes, not days: every delta-rs commit
        # lists the whole log directory.
        ten_minutes_ago = time.time() - 600
        for p in log.iterdir():
            os.utime(p, (ten_minutes_ago, ten_minutes_ago))
        txn = DeltaTable(str(tmp_path / "spans")).transaction_version(w.receiver_id)
        # Also compacts (new commits, not expired); `now` keeps the 2025 test rows in retention.
        w.maintain(now=dt.datetime(2025, 12, 2, tzinfo=dt.timezone.utc))
        kept = sorted(p.name for p in log.glob("*.json") if p.name in before)
        assert 0 < len(kept) < len(before)
        assert kept == before[-len(kept) :]
    assert DeltaTable(str(tmp_path / "spans")).transaction_version(w.receiver_id) == txn
    assert tag_counts(tmp_path, "spans") == {f"l{i}": SPANS_PER_REQUEST for i in range(21)}


def test_a_full_buffer_refuses_before_decoding(tmp_path: Path) -> None:
    with LakeWriter(tmp_path, background=False, max_buffer_bytes=64 << 10) as w:
        with pytest.raises(BusyError):
            for i in range(1000):
                w.ingest_traces(trace_request(f"m{i}"))
        # A request that cannot fit is not even decoded: busy, not a decode error.
        garbage = b"\xff" * (32 << 10)
        with pytest.raises(BusyError):
            w.ingest_traces(garbage)
        w.flush()
        with pytest.raises(aftershock.DecodeError):
            w.ingest_traces(garbage)


def test_sigkill_at_random_points_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """A writer is SIGKILLed again and again (mid-ingest, mid-flush, mid-commit,
    mid-compaction); every acknowledged request is in the tables exactly once afterwards."""
    rng = random.Random(1234)
    acked: dict[str, set[str]] = {"traces": set(), "logs": set()}
    child = Path(__file__).with_name("lake_crash_child.py")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    for run in range(8):
        proc = subprocess.Popen(
            [sys.executable, str(child), str(tmp_path), f"run{run}"],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "READY"
        time.sleep(rng.uniform(0.2, 1.2))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        for line in out.splitlines():
            if line.startswith("ACK "):
                _, kind, tag = line.split()
                acked[kind].add(tag)
    assert len(acked["traces"]) > 20, "the writer never got going"
    with LakeWriter(tmp_path, background=False):
        pass
    spans, logs = tag_counts(tmp_path, "spans"), tag_counts(tmp_path, "logs")
    # Every acknowledged request is there once; a request written to the WAL but not yet
    # acknowledged when the process died may be there too, but also only once.
    assert all(spans[t] == SPANS_PER_REQUEST for t in acked["traces"])
    assert all(logs[t] == LOGS_PER_REQUEST for t in acked["logs"])
    assert set(spans.values()) == {SPANS_PER_REQUEST}
    assert set(logs.values()) == {LOGS_PER_REQUEST}
    assert rollup_calls(tmp_path) == sum(spans.values())
    history = DeltaTable(str(tmp_path / "spans")).history()
    marks = aftershock.lake.COMPACTION_COMMIT_INFO.items()
    assert any(h.items() >= marks for h in history), history


def test_compaction_keeps_counts_exact_for_concurrent_readers(tmp_path: Path) -> None:
    import threading

    from aftershock.lake import compact_table

    with LakeWriter(tmp_path, background=False) as w:
        for i in range(10):
            w.ingest_traces(trace_request(f"c{i}"))
            w.flush()
    assert len(files(tmp_path, "spans")) == 10
    seen: list[int] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen.append(sum(tag_counts(tmp_path, "spans").values()))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        removed = compact_table(DeltaTable(str(tmp_path / "spans")))
    finally:
        stop.set()
        reader.join()
    assert removed == 10
    assert len(files(tmp_path, "spans")) == 1
    assert seen and set(seen) == {10 * SPANS_PER_REQUEST}
    assert tag_counts(tmp_path, "spans") == Counter({f"c{i}": SPANS_PER_REQUEST for i in range(10)})


def test_compaction_keeps_the_writers_encodings_and_size(tmp_path: Path) -> None:
    """Compacted files store ids and timestamps without a dictionary, as flushed files do,
    and take no more bytes per span (delta-rs's defaults took realistic spans 29 -> 37 B)."""
    import pyarrow.parquet as pq
    from test_parquet_files import realistic_request

    from aftershock import _core
    from aftershock.lake import compact_table

    with LakeWriter(tmp_path, background=False) as w:
        for seed in range(4):
            w.ingest_traces(realistic_request(n_spans=4096, seed=seed).SerializeToString())
            w.flush()
    table = DeltaTable(str(tmp_path / "spans"))
    flushed = table.file_uris()
    assert compact_table(table, min_files=2) == len(flushed)
    compacted = DeltaTable(str(tmp_path / "spans")).file_uris()
    assert len(compacted) < len(flushed)
    size = sum(map(os.path.getsize, compacted))
    assert size <= sum(map(os.path.getsize, flushed)) * 1.02
    plain = dict(_core.plain_columns("spans"))
    assert plain.items() >= {
        ("span_id", "DELTA_LENGTH_BYTE_ARRAY"),
        ("start_time", "PLAIN"),
        ("duration_ns", "DELTA_BINARY_PACKED"),
    }
    for meta in (pq.ParquetFile(f).metadata for f in compacted):
        for g in range(meta.num_row_groups):
            for c in range(meta.num_columns):
                column = meta.row_group(g).column(c)
                dictionary = any("DICTIONARY" in e for e in column.encodings)
                if column.path_in_schema in plain:
                    assert not dictionary, column.path_in_schema
                    assert plain[column.path_in_schema] in column.encodings
                elif column.path_in_schema == "service_name":
                    assert dictionary


def test_compaction_rewrites_small_files_and_leaves_large_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files at or above COMPACT_LARGE_BYTES stay as they are; the small ones of a day are
    rewritten together in commits marked as compactions, their rows exactly once."""
    from aftershock.lake import COMPACTION_COMMIT_INFO, compact_table

    with LakeWriter(tmp_path, background=False) as w:
        for i in range(6):
            w.ingest_traces(trace_request(f"s{i}", spans=20 + 3000 * (i == 2)))
            w.flush()
    sizes = {uri: os.path.getsize(uri.removeprefix("file://")) for uri in files(tmp_path, "spans")}
    large = max(sizes, key=lambda u: sizes[u])
    monkeypatch.setattr(aftershock.lake, "COMPACT_LARGE_BYTES", sizes[large])
    before = tag_counts(tmp_path, "spans")

    assert compact_table(DeltaTable(str(tmp_path / "spans")), min_files=3) == 5
    after = files(tmp_path, "spans")
    assert len(after) == 2 and large in after
    assert tag_counts(tmp_path, "spans") == before
    last = DeltaTable(str(tmp_path / "spans")).history(1)[0]
    assert last.items() >= COMPACTION_COMMIT_INFO.items()
    # Fewer small files than min_files: nothing to do.
    assert compact_table(DeltaTable(str(tmp_path / "spans")), min_files=3) == 0


def test_large_row_groups_are_copied_and_read_back_by_every_reader(tmp_path: Path) -> None:
    """Flushes of 17,000 spans (row groups over the 16K-row copy threshold) are compacted by
    copying their row groups; DuckDB, pyarrow and delta-rs read the result, and its Delta
    statistics still let DuckDB find a trace."""
    import pyarrow.parquet as pq

    from aftershock.lake import compact_table

    with LakeWriter(tmp_path, background=False) as w:
        for i in range(3):
            w.ingest_traces(trace_request(f"big{i}", spans=17_000, services=1))
            w.flush()
    before = tag_counts(tmp_path, "spans")
    assert sum(before.values()) == 51_000
    assert compact_table(DeltaTable(str(tmp_path / "spans")), min_files=2) == 3
    [uri] = files(tmp_path, "spans")
    meta = pq.ParquetFile(uri.removeprefix("file://")).metadata
    assert [meta.row_group(g).num_rows for g in range(meta.num_row_groups)] == [17_000] * 3
    assert tag_counts(tmp_path, "spans") == before
    assert pq.read_table(uri.removeprefix("file://")).num_rows == 51_000
    lake = aftershock.open(tmp_path)
    one = lake.sql("select trace_id from spans limit 1")["trace_id"][0]
    n = lake.sql(f"select count(*) as n from spans where trace_id = '{one}'")["n"][0]
    assert n >= 1
    assert lake.sql("select count(*) as n from spans")["n"][0] == 51_000


def test_a_compaction_that_cannot_commit_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aftershock.lake import compact_table

    with LakeWriter(tmp_path, background=False) as w:
        for i in range(3):
            w.ingest_traces(trace_request(f"f{i}"))
            w.flush()
    on_disk = lambda: sorted((tmp_path / "spans").glob("day=*/*.parquet"))  # noqa: E731
    before, files_before = on_disk(), files(tmp_path, "spans")

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    table = DeltaTable(str(tmp_path / "spans"))
    monkeypatch.setattr(table, "create_write_transaction", refuse)
    with pytest.raises(OSError, match="No space"):
        compact_table(table, min_files=2)
    assert on_disk() == before
    assert files(tmp_path, "spans") == files_before


def test_writers_sharing_one_table_location_each_replay_only_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two receivers (a data directory each) write the same tables at once; one stops
    without committing and replays on restart; both compact at once. Every record is in the
    shared tables exactly once, and each receiver's WAL position is its own."""
    import threading

    shared = tmp_path / "tables"
    a = LakeWriter(tmp_path / "a", tables_dir=shared, background=False)
    b = LakeWriter(tmp_path / "b", tables_dir=shared, background=False)
    assert a.receiver_id != b.receiver_id
    assert not (tmp_path / "a" / "spans").exists() and (shared / "spans").is_dir()

    def load(w: LakeWriter, name: str, n: int) -> None:
        for i in range(n):
            w.ingest_traces(trace_request(f"{name}{i}"))
            w.ingest_logs(logs_request(f"{name}{i}"))
            if i % 3 == 2:
                w.flush()

    threads = [threading.Thread(target=load, args=(w, n, 9)) for w, n in ((a, "a"), (b, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    b.close()
    a.ingest_traces(trace_request("a-unflushed"))
    a.close(flush=False)  # acknowledged, only in a's WAL
    expected = Counter({f"{n}{i}": SPANS_PER_REQUEST for n in "ab" for i in range(9)})
    assert tag_counts(shared, "spans") == expected

    with LakeWriter(tmp_path / "a", tables_dir=shared, background=False) as again:
        assert again.open_report["replayed_records"] >= 1
    with LakeWriter(tmp_path / "b", tables_dir=shared, background=False) as again:
        assert again.open_report["replayed_records"] == 0
    expected["a-unflushed"] = SPANS_PER_REQUEST
    assert tag_counts(shared, "spans") == expected
    assert sum(tag_counts(shared, "logs").values()) == 18 * LOGS_PER_REQUEST
    assert rollup_calls(shared) == sum(expected.values())

    # Both maintain the shared location at once: one compacts, the other skips the round.
    # (Two delta-rs compactions of the same files would both commit, storing rows twice.)
    monkeypatch.setattr(aftershock.lake, "COMPACT_MIN_FILES", 2)

    decade = dt.timedelta(days=3650)  # the test data is from 2025
    writers = [
        LakeWriter(tmp_path / n, tables_dir=shared, background=False, retention=decade)
        for n in "ab"
    ]
    results: list[dict[str, int]] = []
    gate = threading.Barrier(2)

    def maintain(w: LakeWriter) -> None:
        gate.wait()
        results.append(w.maintain())

    racers = [threading.Thread(target=maintain, args=(w,)) for w in writers]
    for t in racers:
        t.start()
    for t in racers:
        t.join()
    for w in writers:
        w.close()
    assert sum(r["files_compacted"] for r in results) > 0, results
    assert sum(r["skipped"] for r in results) <= 1
    assert tag_counts(shared, "spans") == expected
    lake = aftershock.open(shared)
    assert lake.sql("select count(*) as n from spans")["n"][0] == sum(expected.values())


def test_retention_drops_days_past_it_and_keeps_the_rest(tmp_path: Path) -> None:

    with LakeWriter(tmp_path, background=False, retention=dt.timedelta(days=7)) as w:
        w.ingest_traces(trace_request("old"))
        w.ingest_logs(logs_request("old"))
        w.flush()
        # The data's day is 2025-11-29: kept a week later, gone after that.
        w.maintain(now=dt.datetime(2025, 12, 6, tzinfo=dt.timezone.utc))
        assert tag_counts(tmp_path, "spans") == Counter({"old": SPANS_PER_REQUEST})
        done = w.maintain(now=dt.datetime(2025, 12, 7, 1, tzinfo=dt.timezone.utc))
    assert done["rows_expired"] >= SPANS_PER_REQUEST + LOGS_PER_REQUEST
    assert tag_counts(tmp_path, "spans") == Counter()
    assert tag_counts(tmp_path, "logs") == Counter()
    assert rollup_calls(tmp_path) == 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs, so that the disk really fills up (needs root, as CI has)."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(path: Path) -> None:
    """Writes ``path`` until the filesystem has no space left."""
    with path.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass


def test_full_disk_is_a_retryable_error_and_loses_nothing(small_disk: Path) -> None:
    data = small_disk / "data"
    acked: set[str] = set()
    with LakeWriter(data, background=False) as w:
        for i in range(3):
            w.ingest_traces(trace_request(f"before{i}"))
            acked.add(f"before{i}")
        w.flush()
        w.ingest_traces(trace_request("pending"))  # acknowledged, not yet flushed
        acked.add("pending")
        filler = small_disk / "filler"
        fill(filler)
        with pytest.raises(aftershock.AftershockError) as full:
            for i in range(1000):
                w.ingest_traces(trace_request(f"during{i}"))
                acked.add(f"during{i}")
        assert full.value.retryable, full.value
        assert isinstance(full.value, aftershock.StorageError)
        # Writing Parquet files fails too; the rows stay buffered (and in the WAL).
        with pytest.raises(aftershock.StorageError) as flush_full:
            w.flush()
        assert flush_full.value.retryable, flush_full.value
        # Space comes back: ingest and flush work again, without a restart.
        filler.unlink()
        w.ingest_traces(trace_request("after"))
        acked.add("after")
        w.flush()
    with LakeWriter(data, background=False):
        pass
    spans = tag_counts(data, "spans")
    assert set(spans) == acked
    assert set(spans.values()) == {SPANS_PER_REQUEST}


def test_half_written_files_of_a_crash_are_swept_on_open(tmp_path: Path) -> None:
    with LakeWriter(tmp_path, background=False) as w:
        w.ingest_traces(trace_request("s"))
    partition = Path(files(tmp_path, "spans")[0]).parent
    stale, fresh = partition / ".part-crashed.zstd.parquet.tmp", partition / ".part-busy.tmp"
    stale.write_bytes(b"PAR1 half")
    fresh.write_bytes(b"PAR1 still being written by another writer")
    hours_ago = time.time() - 2 * 3600
    os.utime(stale, (hours_ago, hours_ago))
    with LakeWriter(tmp_path, background=False) as w:
        assert w.open_report["stale_temp_files"] == 1
    assert not stale.exists()
    assert fresh.exists()
    assert tag_counts(tmp_path, "spans") == Counter({"s": SPANS_PER_REQUEST})
