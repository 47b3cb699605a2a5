"""The `aftershock` command line: one subcommand per module in `aftershock.commands`.

Each command module defines ``register(subparsers)``, which adds its parser and sets
``run`` (a function of the parsed arguments returning the exit code). Command modules keep
their heavy imports inside ``run`` so that ``aftershock --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import NoReturn

import aftershock
from aftershock.commands import CliError

#: Subcommand modules under `aftershock.commands`, in the order `--help` lists them.
COMMAND_MODULES = ("serve", "sql", "deploys", "report", "mark_deploy", "watch", "demo")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``aftershock: error: ...`` on stderr, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for ``aftershock`` with every available subcommand."""
    parser = _Parser(
        prog="aftershock",
        description="OpenTelemetry ingestion and deploy verdicts. See README.md.",
    )
    parser.add_argument(
        "--version", action="version", version=f"aftershock {aftershock.__version__}"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"aftershock.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"aftershock.commands.{name}":
                raise
            continue  # not built yet
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``aftershock`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        code: int = args.run(args)
    except CliError as e:
        print(f"aftershock {args.command}: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
