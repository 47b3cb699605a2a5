"""The `aftershock` command line. Subcommands are added as their stages land (see README)."""

from __future__ import annotations

import argparse
import sys

import aftershock


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for ``aftershock``."""
    parser = argparse.ArgumentParser(
        prog="aftershock",
        description="OpenTelemetry ingestion and deploy verdicts. See README.md.",
    )
    parser.add_argument(
        "--version", action="version", version=f"aftershock {aftershock.__version__}"
    )
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``aftershock`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
