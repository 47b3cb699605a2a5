"""aftershock: OpenTelemetry traces and logs into a lake, and deploy verdicts from them."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from aftershock.decode import decode_logs, decode_traces, table_schema
from aftershock.errors import AftershockError, DecodeError, StorageError

try:
    __version__ = version("aftershock")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"

__all__ = [
    "AftershockError",
    "DecodeError",
    "StorageError",
    "__version__",
    "decode_logs",
    "decode_traces",
    "table_schema",
]
