"""A writer process for the crash test: ingests tagged requests forever and prints
``ACK <kind> <tag>`` after each acknowledgement, until it is killed."""

from __future__ import annotations

import datetime as dt
import sys

from lake_workload import logs_request, trace_request

from aftershock.lake import LakeWriter


def main() -> None:
    data_dir, run = sys.argv[1], sys.argv[2]
    # Flushes and compactions every few hundred milliseconds, so that kills land in both;
    # the workload's timestamps are from 2025, which a 7-day retention would expire.
    writer = LakeWriter(
        data_dir,
        flush_interval=0.1,
        maintenance_interval=0.3,
        retention=dt.timedelta(days=36500),
    )
    print("READY", flush=True)
    i = 0
    while True:
        tag = f"{run}-{i}"
        writer.ingest_traces(trace_request(tag))
        print(f"ACK traces {tag}", flush=True)
        if i % 3 == 0:
            writer.ingest_logs(logs_request(tag))
            print(f"ACK logs {tag}", flush=True)
        i += 1


if __name__ == "__main__":
    main()
