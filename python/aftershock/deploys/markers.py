"""Explicit deploy markers: the ``markers`` Delta table, written by ``aftershock
mark-deploy`` and the gRPC ``DeployService``, partitioned by ``day`` like the other tables."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from deltalake import write_deltalake

from aftershock.lake import PARTITION_COLUMN, ensure_table, table_schema

TABLE = "markers"


@dataclass(frozen=True)
class RecordedMarker:
    """A marker as committed: its time and when it was recorded, in Unix nanoseconds."""

    time_unix_nano: int
    recorded_at_unix_nano: int


def write_marker(
    data_dir: Path | str,
    service: str,
    version: str,
    environment: str | None = None,
    time_unix_nano: int | None = None,
    attributes: Mapping[str, str] | None = None,
    source: str = "marker",
) -> RecordedMarker:
    """Appends one marker to ``<data_dir>/markers`` (one Delta commit).

    ``time_unix_nano`` defaults to now: a marker is itself an event, recorded when the
    pipeline says the deploy starts.
    """
    if not service or not version:
        raise ValueError("a deploy marker needs a service and a version")
    data_dir = Path(data_dir)
    recorded = time.time_ns()
    at = time_unix_nano or recorded
    day = dt.datetime.fromtimestamp(at / 1e9, dt.timezone.utc).date()
    row = {
        "time": at,
        "service_name": service,
        "service_version": version,
        "deployment_environment": environment or None,
        "source": source,
        "recorded_at": recorded,
        "attributes": list((attributes or {}).items()),
        PARTITION_COLUMN: day,
    }
    table = ensure_table(data_dir, TABLE)
    write_deltalake(
        table,
        pa.Table.from_pylist([row], schema=table_schema(TABLE)),
        mode="append",
        partition_by=[PARTITION_COLUMN],
    )
    return RecordedMarker(at, recorded)
