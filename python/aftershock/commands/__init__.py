"""Subcommands of the `aftershock` CLI, one module each, and the option helpers they share.

Every option can also come from the environment: ``--otlp-grpc`` from
``AFTERSHOCK_OTLP_GRPC``, ``--data`` from ``AFTERSHOCK_DATA`` and so on. A flag on the
command line wins over the environment, which wins over the built-in default.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from aftershock.units import parse_duration, parse_size

DEFAULT_DATA_DIR = "./aftershock-data"


class CliError(Exception):
    """A user error: printed as one line on stderr, and the command exits ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def env_name(flag: str) -> str:
    """The environment variable for ``flag``: ``--otlp-grpc`` -> ``AFTERSHOCK_OTLP_GRPC``."""
    return "AFTERSHOCK_" + flag.lstrip("-").replace("-", "_").upper()


def option(parser: argparse.ArgumentParser, flag: str, default: Any = None, **kw: Any) -> None:
    """Adds ``flag`` with its default taken from the environment when set there."""
    env = os.environ.get(env_name(flag))
    help_text = kw.pop("help", "")
    kw.setdefault("metavar", flag.lstrip("-").replace("-", "_").upper())
    parser.add_argument(
        flag,
        default=env if env is not None else default,
        help=f"{help_text} [env {env_name(flag)}]".strip(),
        **kw,
    )


def add_data_option(parser: argparse.ArgumentParser) -> None:
    """``--data DIR``: the data directory (``AFTERSHOCK_DATA``, else ``./aftershock-data``)."""
    option(parser, "--data", DEFAULT_DATA_DIR, help="data directory", metavar="DIR")


def existing_data_dir(value: str) -> Path:
    """The data directory for a reading command; a missing one is a one-line error (exit 2)."""
    path = Path(value)
    if not path.is_dir():
        raise CliError(
            f"no aftershock data directory at {str(path)!r} (set --data or AFTERSHOCK_DATA)"
        )
    return path


def duration(value: str) -> float:
    """Seconds from ``500ms``, ``2s``, ``10m``, ``2h``, ``7d``, ``1w``; a bare number is seconds."""
    try:
        seconds = parse_duration(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"duration must not be negative: {value!r}")
    return seconds


def size(value: str) -> int:
    """Bytes from ``512MiB``, ``64MiB``, ``8KiB``, ``1GB`` or a bare number."""
    try:
        result = parse_size(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if result <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive: {value!r}")
    return result
