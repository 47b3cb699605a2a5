"""aftershock: OpenTelemetry traces and logs into a lake, and deploy verdicts from them."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

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
