"""``aftershock sql``: DuckDB SQL over the lake's tables, printed as a table, CSV, JSON or Parquet.

The views are ``spans``, ``logs``, ``rollups`` and ``markers``, over one consistent snapshot
of the data directory, with the rollup macros ``sketch_quantile(list(latency_sketch), q)``
and ``sketch_merge``. Exit codes: 0 on success, 1 for a query DuckDB rejects, 2 for bad flags
or a missing data directory.
"""

from __future__ import annotations

import argparse
import base64
import csv
import datetime as dt
import decimal
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from aftershock.commands import CliError, add_data_option, existing_data_dir, option

if TYPE_CHECKING:
    import pyarrow as pa

FORMATS = ("table", "csv", "json", "parquet")
#: The table format shows at most this many rows; the other formats write them all.
TABLE_MAX_ROWS = 200
#: Longer cell values are cut in the table format.
TABLE_MAX_CELL = 80
#: Rows converted to Python at a time for csv and json.
BATCH_ROWS = 10_000
#: Below this many characters of terminal width per column, rows are shown one field a line.
MIN_COLUMN_WIDTH = 12


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds ``aftershock sql``."""
    p = subparsers.add_parser(
        "sql",
        help="run DuckDB SQL over spans, logs, rollups, markers and deploys",
        description=(
            "Runs DuckDB SQL over the views spans, logs, rollups and markers (one consistent "
            "snapshot). Latency quantiles from rollups: "
            "sketch_quantile(list(latency_sketch), 0.99)."
        ),
    )
    add_data_option(p)
    option(
        p,
        "--format",
        "table",
        choices=FORMATS,
        metavar="|".join(FORMATS),
        help="output format (default table)",
    )
    option(p, "--output", None, metavar="FILE", help="write to FILE instead of stdout")
    option(
        p,
        "--since",
        None,
        metavar="TIME",
        help="only data from TIME on: a duration ago (2h, 30m, 7d) or ISO-8601; older files"
        " are not read",
    )
    option(p, "--until", None, metavar="TIME", help="only data before TIME (as --since)")
    p.add_argument("query", metavar="QUERY", help="the SQL query")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Runs the query and writes the result in the chosen format."""
    import duckdb

    from aftershock.query import open as open_lake
    from aftershock.query import parse_time

    data = existing_data_dir(args.data)
    if args.format not in FORMATS:  # argparse does not check a default from the environment
        raise CliError(f"--format must be one of {', '.join(FORMATS)}, not {args.format!r}")
    try:
        since, until = parse_time(args.since), parse_time(args.until)
    except ValueError as e:
        raise CliError(str(e)) from None
    if args.format == "parquet" and args.output is None and sys.stdout.isatty():
        raise CliError("--format parquet writes binary: give --output FILE or redirect stdout")
    output = Path(args.output) if args.output else None
    if output is not None and not output.parent.is_dir():
        raise CliError(f"cannot write {str(output)!r}: no directory {str(output.parent)!r}")
    with open_lake(data) as lake:
        try:
            table = lake.arrow(args.query, since=since, until=until)
        except duckdb.Error as e:
            raise CliError(one_line(str(e)), exit_code=1) from None
    if args.format == "parquet":
        write_parquet(table, output)
    elif output is not None:
        with output.open("w", encoding="utf-8", newline="") as f:
            write_text(table, args.format, f, terminal=False)
    else:
        write_text(table, args.format, sys.stdout, terminal=sys.stdout.isatty())
    return 0


def one_line(message: str) -> str:
    """DuckDB's multi-line message on one line, without the caret marker line."""
    lines = [ln.strip() for ln in message.splitlines()]
    return " ".join(ln for ln in lines if ln and set(ln) != {"^"})


def write_parquet(table: pa.Table, output: Path | None) -> None:
    """``table`` as one Parquet file (zstd), to ``output`` or to binary stdout."""
    import pyarrow.parquet as pq

    if output is not None:
        pq.write_table(table, output, compression="zstd")
    else:
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        sys.stdout.buffer.write(buf.getvalue())
        sys.stdout.buffer.flush()


def write_text(table: pa.Table, fmt: str, out: IO[str], *, terminal: bool) -> None:
    """``table`` as ``fmt`` (table, csv or json) on ``out``, converted batch by batch."""
    if fmt == "table":
        rows = json_rows(table.slice(0, TABLE_MAX_ROWS))
        numeric = [_is_number(t) for t in table.schema.types]
        print_table(table.column_names, numeric, rows, table.num_rows, out, terminal=terminal)
        return
    writer = csv.writer(out, lineterminator="\n")
    if fmt == "csv":
        writer.writerow(table.column_names)
    else:
        out.write("[")
    first = True
    for batch in table.to_batches(max_chunksize=BATCH_ROWS):
        for row in json_rows(batch):
            if fmt == "csv":
                writer.writerow([csv_cell(v) for v in row.values()])
            else:
                out.write("" if first else ",")
                json.dump(row, out, ensure_ascii=False, separators=(",", ":"))
            first = False
    if fmt == "json":
        out.write("]\n")


def csv_cell(value: Any) -> Any:
    """A CSV field: scalars as they are, nested values as compact JSON, NULL as empty."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else value


def iso_ns(ns: int) -> str:
    """Nanoseconds since the epoch as ISO-8601 UTC with nanoseconds, e.g.
    ``2026-11-29T10:00:00.123456789Z``."""
    seconds, frac = divmod(ns, 1_000_000_000)
    t = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=seconds)
    return f"{t:%Y-%m-%dT%H:%M:%S}.{frac:09d}Z"


NS_PER_UNIT = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def _converter(t: pa.DataType) -> Callable[[Any], Any]:
    """A function turning one value of arrow type ``t`` (as ``to_pylist`` gives it, with
    timestamps cast to integers) into JSON-ready Python."""
    import pyarrow as pa

    if pa.types.is_timestamp(t):
        scale = NS_PER_UNIT[t.unit]
        return lambda v: None if v is None else iso_ns(v * scale)
    if pa.types.is_map(t):
        key, item = _converter(t.key_type), _converter(t.item_type)
        return lambda v: None if v is None else {str(key(k)): item(x) for k, x in v}
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        each = _converter(t.value_type)
        return lambda v: None if v is None else [each(x) for x in v]
    if pa.types.is_struct(t):
        fields = [(t.field(i).name, _converter(t.field(i).type)) for i in range(t.num_fields)]
        return lambda v: None if v is None else {n: c(v[n]) for n, c in fields}
    return _scalar


def _scalar(v: Any) -> Any:
    if isinstance(v, (dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, dt.timedelta):
        return v.total_seconds()
    if isinstance(v, decimal.Decimal):  # DuckDB's sums are HUGEINT: Arrow decimal128(38, 0)
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, bytes):
        return base64.b64encode(v).decode()
    if isinstance(v, float) and v != v:  # NaN is not JSON
        return None
    return v


def json_rows(table: pa.Table | pa.RecordBatch) -> list[dict[str, Any]]:
    """The rows of ``table`` as JSON-ready dicts: timestamps ISO-8601 UTC (nanoseconds), maps
    as objects, structs as objects, lists as arrays, bytes as base64."""
    import pyarrow as pa

    from aftershock.query import map_timestamps

    columns = []
    for name, col in zip(table.column_names, table.columns, strict=True):
        convert = _converter(col.type)
        # Timestamps as integers, so that no nanosecond is lost on the way through Python.
        plain = col.cast(map_timestamps(col.type, lambda _: pa.int64())).to_pylist()
        columns.append((name, [convert(v) for v in plain]))
    return [{name: values[i] for name, values in columns} for i in range(table.num_rows)]


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float) and 1e-4 <= abs(value) < 1e15:
        return f"{value:.4f}".rstrip("0").rstrip(".")  # full precision: csv or json
    text = csv_cell(value)
    text = text if isinstance(text, str) else str(text)
    return text if len(text) <= TABLE_MAX_CELL else text[: TABLE_MAX_CELL - 1] + "…"


def _is_number(t: pa.DataType) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))


def print_table(
    columns: list[str],
    numeric: list[bool],
    rows: list[dict[str, Any]],
    total: int,
    out: IO[str],
    *,
    terminal: bool,
) -> None:
    """``rows`` (the first of ``total``) as a rich table, numbers right-aligned; results too
    wide for the terminal are shown one field a line per row."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=out, width=None if terminal else 160, soft_wrap=False)
    wide = len(columns) * MIN_COLUMN_WIDTH > console.width
    if wide:
        for i, row in enumerate(rows):
            record = Table(title=f"row {i + 1}", show_header=False, title_justify="left")
            record.add_column(style="bold", no_wrap=True)
            record.add_column(overflow="fold")
            for name, value in row.items():
                record.add_row(name, _cell(value))
            console.print(record)
    else:
        grid = Table(show_lines=False)
        for name, number in zip(columns, numeric, strict=True):
            grid.add_column(
                name, overflow="ellipsis", no_wrap=True, justify="right" if number else "left"
            )
        for row in rows:
            grid.add_row(*(_cell(v) for v in row.values()))
        console.print(grid)
    more = f", {len(rows)} shown: LIMIT, or --format csv/json for all" if len(rows) < total else ""
    console.print(f"({total} row{'s' if total != 1 else ''}{more})")
