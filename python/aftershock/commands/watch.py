"""``aftershock watch``: re-evaluates open deploys and fires the rollback hook once each."""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

from aftershock.commands import CliError, add_data_option, duration, existing_data_dir, option


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds ``aftershock watch``."""
    p = subparsers.add_parser(
        "watch",
        help="re-evaluate open deploys; on a regression run a command and/or post a webhook",
        description=(
            "Re-evaluates open deploys every INTERVAL. On a new regression verdict, runs CMD "
            "(through the shell, verdict JSON on stdin, AFTERSHOCK_SERVICE and "
            "AFTERSHOCK_VERSION in its environment) and/or POSTs the verdict JSON to URL, "
            "once per deploy: what fired is kept in DATA/deploys/watch-fired.json."
        ),
    )
    add_data_option(p)
    option(p, "--on-regression", None, metavar="CMD", help="command to run on a regression")
    option(p, "--webhook", None, metavar="URL", help="http(s) URL to POST the verdict JSON to")
    option(
        p,
        "--interval",
        "10s",
        type=duration,
        metavar="DURATION",
        help="time between checks (default 10s)",
    )
    p.add_argument("--once", action="store_true", help="check once and exit")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Loops until interrupted (or once with ``--once``)."""
    interval = float(args.interval)
    if interval <= 0:
        raise CliError(f"--interval: must be positive, not {interval:g}s")
    if args.webhook and not re.match(r"^https?://", args.webhook):
        raise CliError(f"--webhook: not an http(s) URL: {args.webhook!r}")
    data = existing_data_dir(args.data)
    from aftershock.deploys.verdict import deploy_verdicts
    from aftershock.deploys.watch import Watcher
    from aftershock.query import open as open_lake

    watcher = Watcher(Path(data), args.on_regression, args.webhook)
    lake = open_lake(data)
    if not args.once:
        print(f"watching {data} every {interval:g}s", flush=True)
    import duckdb

    while True:
        try:
            lake.refresh()
            for v in watcher.check(deploy_verdicts(lake.duckdb(deploys=False))):
                print(f"regression: {v.service} {v.version}: {v.explanation}", flush=True)
        except duckdb.InterruptException:
            raise KeyboardInterrupt from None
        except RuntimeError as e:
            # Ctrl-C during a query: DuckDB catches the SIGINT and raises this instead.
            if "interrupted" in str(e).lower():
                raise KeyboardInterrupt from None
            raise
        except (duckdb.Error, OSError) as e:
            if args.once:
                raise CliError(f"could not evaluate deploys: {e}", exit_code=1) from None
            # A vacuum or compaction can remove files under a snapshot: try again next time.
            print(f"aftershock watch: {e}; retrying in {interval:g}s", file=sys.stderr)
        if args.once:
            return 0
        time.sleep(interval)
