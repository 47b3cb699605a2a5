"""``aftershock deploys``: the detected deploys with their verdicts, as a table or JSON."""

from __future__ import annotations

import argparse
import json
import sys

from aftershock.commands import add_data_option, existing_data_dir, option


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds ``aftershock deploys``."""
    p = subparsers.add_parser(
        "deploys",
        help="list detected deploys with verdicts",
        description=(
            "Lists the deploys found in the data (new versions per service and environment, "
            "and explicit markers) with their verdicts: regression, healthy, inconclusive or "
            "pending. --json prints the verdict JSON of CONTRACT.md, an array."
        ),
    )
    add_data_option(p)
    option(p, "--service", None, metavar="S", help="only deploys of service S")
    p.add_argument("--json", action="store_true", help="print a JSON array of verdicts")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Prints the verdicts."""
    from aftershock.deploys import connect, deploy_verdicts

    data = existing_data_dir(args.data)
    verdicts = deploy_verdicts(connect(data), args.service)
    if args.json:
        json.dump([v.to_json() for v in verdicts], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if not verdicts:
        print("no deploys found")
        return 0
    header = ("SERVICE", "ENV", "VERSION", "PREVIOUS", "ROLLOUT", "STARTED", "VERDICT", "DECIDED")
    rows = [header]
    for v in verdicts:
        j = v.to_json()
        rows.append(
            (
                j["service"],
                j["environment"] or "-",
                j["version"],
                j["previous_version"] or "-",
                j["rollout"],
                j["started_at"],
                j["verdict"],
                j["decided_at"] or "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    for v in verdicts:
        print(f"\n{v.service} {v.version}: {v.explanation}")
    return 0
