"""Durations and sizes as people type them (``500ms``, ``10m``, ``7d``, ``512MiB``): the one
parser behind CLI flags, ``AFTERSHOCK_*`` variables and the Python API's ``since=``."""

from __future__ import annotations

import re

#: Seconds per duration unit.
DURATION_UNITS: dict[str, float] = {
    "ms": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 7 * 86400.0,
}
#: Bytes per size unit (binary and decimal multiples).
SIZE_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
}
_QUANTITY = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)([a-z]*)$")


def _split(text: str) -> tuple[float, str] | None:
    m = _QUANTITY.match(text.strip().lower().replace(" ", ""))
    return (float(m[1]), m[2]) if m else None


def parse_duration(text: str, *, bare_seconds: bool = True) -> float:
    """Seconds from ``500ms``, ``2s``, ``90sec``, ``10m``, ``5min``, ``2h``, ``7d``, ``1w``; a bare
    number is seconds unless ``bare_seconds`` is false. Raises ``ValueError``."""
    parts = _split(text)
    if parts is None or (not parts[1] and not bare_seconds):
        raise ValueError(f"invalid duration {text!r} (use e.g. 500ms, 2s, 10m, 2h, 7d)")
    number, unit = parts
    if (unit or "s") not in DURATION_UNITS:
        raise ValueError(f"invalid duration {text!r} (use e.g. 500ms, 2s, 10m, 2h, 7d)")
    return number * DURATION_UNITS[unit or "s"]


def parse_size(text: str) -> int:
    """Bytes from ``512MiB``, ``64MiB``, ``8KiB``, ``1GB`` or a bare number. Raises
    ``ValueError``."""
    parts = _split(text)
    if parts is None or parts[1] not in SIZE_UNITS:
        raise ValueError(f"invalid size {text!r} (use e.g. 64MiB, 512MiB, 1GiB)")
    return int(parts[0] * SIZE_UNITS[parts[1]])
