"""``aftershock mark-deploy``: records an explicit deploy marker (for CI pipelines)."""

from __future__ import annotations

import argparse
from pathlib import Path

from aftershock.commands import CliError, add_data_option, option


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds ``aftershock mark-deploy``."""
    p = subparsers.add_parser(
        "mark-deploy",
        help="record an explicit deploy marker",
        description=(
            "Records that VERSION of SERVICE is being deployed, in the markers table. The "
            "deploy is then judged from that time even before its telemetry shows a new "
            "version. Also available over gRPC (aftershock.deploy.v1.DeployService)."
        ),
    )
    add_data_option(p)
    option(p, "--service", None, metavar="S", help="service.name (required)")
    option(p, "--version", None, metavar="V", help="service.version being deployed (required)")
    option(p, "--environment", None, metavar="E", help="deployment.environment.name")
    option(
        p,
        "--at",
        None,
        metavar="TIME",
        help="when the deploy started: ISO-8601 (2026-11-29T10:00:00Z) or a duration ago"
        " (5m); default now",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Validates the flags, then writes the marker."""
    from aftershock.query import parse_time

    if not args.service or not args.version:
        raise CliError("--service and --version are required")
    try:
        at = parse_time(args.at)
    except ValueError as e:
        raise CliError(f"--at: {e}") from None
    data = Path(args.data)
    if data.exists() and not data.is_dir():
        raise CliError(f"--data {str(data)!r} is not a directory")
    from aftershock.deploys.markers import write_marker
    from aftershock.deploys.verdict import iso

    data.mkdir(parents=True, exist_ok=True)
    time_ns = None if at is None else int(at.timestamp()) * 1_000_000_000 + at.microsecond * 1000
    recorded = write_marker(data, args.service, args.version, args.environment, time_ns)
    print(
        f"marked deploy of {args.service} {args.version}"
        + (f" in {args.environment}" if args.environment else "")
        + f" at {iso(recorded.time_unix_nano)}"
    )
    return 0
