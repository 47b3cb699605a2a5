"""Deploy intelligence: which deploy broke production, decided from the telemetry.

Stages, one module each: ``detect`` (deploys from versions per instance, and markers),
``blame`` (where errors originate, trace by trace), ``evidence`` (anytime-valid sequential
tests), ``attribution`` (what the new version's errors have in common), ``verdict`` (the
verdict JSON of CONTRACT.md), ``markers`` and ``service`` (recording explicit deploys),
``report`` (chart and page), ``watch`` (the rollback hook).

Everything takes a DuckDB connection with the tables or views ``spans``, ``rollups``,
``markers`` and ``logs``, such as ``aftershock.open(path).duckdb()``.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from aftershock.deploys.detect import Deploy, detect_deploys
from aftershock.deploys.markers import write_marker
from aftershock.deploys.verdict import Verdict, deploy_verdicts, evaluate

__all__ = [
    "Deploy",
    "Verdict",
    "connect",
    "deploy_verdicts",
    "detect_deploys",
    "evaluate",
    "write_marker",
]


def connect(data_dir: Path | str) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection over one snapshot of the data directory's tables."""
    from aftershock.query import open as open_lake

    return open_lake(data_dir).duckdb(deploys=False)
