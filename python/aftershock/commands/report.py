"""``aftershock report``: one deploy in depth, as text, an HTML page and a PNG chart."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aftershock.commands import CliError, add_data_option, existing_data_dir, option


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds ``aftershock report``."""
    p = subparsers.add_parser(
        "report",
        help="one deploy in depth: chart of errors and latency by version, signals, suspects",
        description=(
            "Prints the verdict on the deploy of VERSION of SERVICE and writes a PNG chart "
            "(error rate and latency by version over time, deploy markers) and an HTML page "
            "with the chart, signals and suspects. Without --html/--png, writes "
            "aftershock-report-SERVICE-VERSION.html and .png in the current directory."
        ),
    )
    add_data_option(p)
    p.add_argument("service", metavar="SERVICE", help="the deployed service")
    p.add_argument("version", metavar="VERSION", help="the deployed version")
    option(p, "--html", None, metavar="FILE", help="write the HTML report to FILE")
    option(p, "--png", None, metavar="FILE", help="write the chart to FILE")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Prints the summary and writes the files."""
    data = existing_data_dir(args.data)
    for flag in ("html", "png"):
        value = getattr(args, flag)
        if value is not None and not Path(value).parent.resolve().is_dir():
            raise CliError(f"--{flag}: no directory {str(Path(value).parent)!r}")
    from aftershock.deploys import connect, deploy_verdicts
    from aftershock.deploys.report import render_html, render_png, summary

    con = connect(data)
    found = [v for v in deploy_verdicts(con, args.service) if v.version == args.version]
    if not found:
        raise CliError(
            f"no deploy of version {args.version!r} of {args.service!r} in {str(data)!r}"
            " (see aftershock deploys)",
            exit_code=1,
        )
    v = found[-1]
    sys.stdout.write(summary(v))
    base = f"aftershock-report-{args.service}-{args.version}".replace("/", "_")
    html = Path(args.html) if args.html else None
    png = Path(args.png) if args.png else None
    if html is None and png is None:
        html, png = Path(base + ".html"), Path(base + ".png")
    chart = png or (html.with_suffix(".png") if html else Path(base + ".png"))
    render_png(con, v, chart)
    written = [chart] if png else []
    if html is not None:
        render_html(con, v, html, chart)
        written.append(html)
        if png is None:
            chart.unlink()
    for path in written:
        print(f"wrote {path}")
    return 0
