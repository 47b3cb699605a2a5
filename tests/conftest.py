"""Shared pytest setup: the helper modules next to this file are importable by name."""

from __future__ import annotations

import sys
from pathlib import Path

# The helpers (otlp_reference, otlp_strategies, otlp_wire) are plain modules, not a package;
# putting this directory on the path keeps them importable whatever pytest's import mode.
sys.path.insert(0, str(Path(__file__).parent))
