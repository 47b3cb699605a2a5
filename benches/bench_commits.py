"""Delta commits: CPU per commit against the tables' checkpoint interval.

Every flush commits the files it wrote with delta-rs, one commit per table. A delta-rs commit
reads back the JSON commits since the table's last checkpoint, so its cost grows with them
until the next checkpoint. This runs ``--flushes`` flushes of one realistic 8192-span request
each (the Parquet tests' traces) through ``LakeWriter`` on one pinned core, for each checkpoint
interval, and prints the mean and the worst CPU time of a commit (``update_incremental`` and
the write transaction, all threads of the process) and of a whole flush.

``aftershock.lake.CHECKPOINT_INTERVAL`` (10) was chosen from this table; 100 is delta-rs's
default.

A second table shows what a commit costs against the files in the table's ``_delta_log``:
delta-rs lists the whole directory on a local filesystem at each update and commit, so the
cost grows with every commit and checkpoint kept there, which is what
``aftershock.lake.LOG_RETENTION`` bounds. It flushes small requests (64 spans) until the
log holds each of ``--log-files`` files (WAL without fsync, which only costs time here),
compacting the spans table every 300 flushes as
maintenance would (so that the live data files stay few) but deleting no log entries, and
prints the mean CPU time of the next 50 commits of spans.

Run: ``python benches/bench_commits.py`` (``--quick`` for fewer flushes).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from test_parquet_files import realistic_request  # noqa: E402

from aftershock import lake  # noqa: E402


def timed_commits(writer: lake.LakeWriter, table: str | None = None) -> list[float]:
    """The CPU seconds of each of ``writer``'s commits that add files (of ``table`` only, if
    given), appended to the returned list as they happen."""
    commits: list[float] = []
    commit = writer._commit

    def timed(pending: dict[str, Any]) -> None:
        start = time.process_time()
        commit(pending)
        if pending["files"] and table in (None, pending["table"]):
            commits.append(time.process_time() - start)

    writer._commit = timed  # type: ignore[method-assign]
    return commits


def run(payloads: list[bytes], flushes: int, interval: int) -> dict[str, float]:
    """``flushes`` flushes of one request each into fresh tables checkpointed every ``interval``."""
    default = lake.CHECKPOINT_INTERVAL
    lake.CHECKPOINT_INTERVAL = interval
    data = Path(tempfile.mkdtemp(prefix="bench-commits-"))
    try:
        writer = lake.LakeWriter(data, background=False)
        commits = timed_commits(writer)
        flush_cpu: list[float] = []
        for i in range(flushes):
            writer.ingest_traces(payloads[i % len(payloads)])
            start = time.process_time()
            writer.flush()
            flush_cpu.append(time.process_time() - start)
        writer.close()
        return {
            "commit ms": 1000 * statistics.mean(commits),
            "commit max ms": 1000 * max(commits),
            "flush ms": 1000 * statistics.mean(flush_cpu),
        }
    finally:
        lake.CHECKPOINT_INTERVAL = default
        shutil.rmtree(data, ignore_errors=True)


def run_log_files(targets: list[int]) -> list[tuple[int, float]]:
    """Mean commit CPU (ms) over 50 commits once ``_delta_log`` holds each of ``targets``."""
    data = Path(tempfile.mkdtemp(prefix="bench-commits-log-"))
    try:
        writer = lake.LakeWriter(data, background=False, durability="os")
        commits = timed_commits(writer, table="spans")
        log = data / "spans" / "_delta_log"
        payloads = [realistic_request(n_spans=64, seed=i).SerializeToString() for i in range(8)]
        out, i = [], 0
        for target in targets:
            while len(os.listdir(log)) < target:
                writer.ingest_traces(payloads[i % len(payloads)])
                writer.flush()
                i += 1
                if i % 300 == 0:
                    lake.compact_table(lake.DeltaTable(str(data / "spans")))
            commits.clear()
            for _ in range(50):
                writer.ingest_traces(payloads[i % len(payloads)])
                writer.flush()
                i += 1
            out.append((len(os.listdir(log)), 1000 * statistics.mean(commits)))
        writer.close()
        return out
    finally:
        shutil.rmtree(data, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Runs each checkpoint interval and prints the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flushes", type=int, default=300)
    parser.add_argument("--intervals", default="100,20,10,5")
    parser.add_argument("--log-files", default="100,1000,2000", help="second table's points")
    parser.add_argument("--quick", action="store_true", help="100 flushes")
    args = parser.parse_args(argv)
    flushes = 100 if args.quick else args.flushes
    os.sched_setaffinity(0, {0})
    payloads = [realistic_request(seed=i).SerializeToString() for i in range(4)]
    print(f"{flushes} flushes of 8192 spans, commits of spans and rollups, one pinned core")
    print(f"{'checkpoint every':>16}  {'commit CPU ms':>13}  {'worst':>7}  {'flush CPU ms':>12}")
    for interval in (int(x) for x in args.intervals.split(",")):
        r = run(payloads, flushes, interval)
        print(
            f"{interval:>16}  {r['commit ms']:>13.1f}  {r['commit max ms']:>7.1f}"
            f"  {r['flush ms']:>12.1f}"
        )
    print(f"\n{'files in _delta_log':>19}  {'commit CPU ms':>13}")
    for files, ms in run_log_files([int(x) for x in args.log_files.split(",")]):
        print(f"{files:>19}  {ms:>13.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
