"""aftershock: OpenTelemetry traces and logs into a lake, and deploy verdicts from them."""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

# Read by the Rust core's allocator (mimalloc) when the extension loads, so set before it is
# imported: no transparent huge pages for this process. Ingest allocates and frees column
# buffers all the time, and with THP the kernel zeroed a fresh 2 MiB page at each fault: 20%
# of the CPU of a writer flushing in the background (`perf record`); without THP the same run
# took ~20% less CPU (benches/README.md, lake). Set it yourself to keep THP.
os.environ.setdefault("MIMALLOC_ALLOW_THP", "0")
# And freed memory goes back to the kernel 10 s after it is freed instead of mimalloc's 1 s:
# a writer frees a flush's worth of rows (up to 128 MiB) every 2 s and decodes new ones into
# memory at once, which with a 1 s delay had often been returned and was faulted in again.
# In a 30-round served run (benches/README.md, lake) page faults fell by a third and CPU by
# 4-6%; memory still goes back once ingest stops.
os.environ.setdefault("MIMALLOC_PURGE_DELAY", "10000")

from aftershock.decode import decode_logs, decode_traces, table_schema
from aftershock.errors import (
    AftershockError,
    BusyError,
    DecodeError,
    LakeNotFoundError,
    StorageError,
    TraceNotFoundError,
)

if TYPE_CHECKING:
    from pathlib import Path

    from aftershock.query import Lake

try:
    __version__ = version("aftershock")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"


def open(path: str | Path) -> Lake:
    """Opens a data directory read-only for queries: see `aftershock.query.open`."""
    # Imported on use: DuckDB, Polars and delta-rs take half a second to import.
    from aftershock.query import open as open_lake

    return open_lake(path)


__all__ = [
    "AftershockError",
    "BusyError",
    "DecodeError",
    "LakeNotFoundError",
    "StorageError",
    "TraceNotFoundError",
    "__version__",
    "decode_logs",
    "decode_traces",
    "open",
    "table_schema",
]
