"""``aftershock sql``: output formats, exit codes and one-line errors."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from shop_traces import MS, SPANS_PER_TRACE, shop_request

from aftershock.cli import main
from aftershock.lake import LakeWriter

T0 = dt.datetime(2026, 11, 28, 9, 0, tzinfo=dt.timezone.utc)
TRACES = 40


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sql-cli")
    with LakeWriter(path, background=False, durability="os") as w:
        payload, _ = shop_request(0, TRACES, int(T0.timestamp()) * 1_000_000_000, 1000 * MS)
        w.ingest_traces(payload)
    return path


def sql(data: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Runs ``aftershock sql`` in this process: (exit code, stdout, stderr)."""
    code = main(["sql", "--data", str(data), *args])
    out, err = capsys.readouterr()
    return code, out, err


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """Runs ``python -m aftershock.cli`` as a separate process."""
    return subprocess.run(
        [sys.executable, "-m", "aftershock.cli", *args],
        capture_output=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


QUERY = (
    "select span_id, start_time, duration_ns, status_code = 'ERROR' as failed,"
    " resource_attributes, events, day from spans"
    " where service_name = 'payment' and span_name = 'Charge' order by start_time"
)


def test_json_is_one_array_of_row_objects(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = sql(data, capsys, "--format", "json", QUERY)
    assert (code, err) == (0, "")
    rows = json.loads(out)
    assert isinstance(rows, list) and len(rows) == TRACES
    first = rows[0]
    assert list(first) == [
        "span_id",
        "start_time",
        "duration_ns",
        "failed",
        "resource_attributes",
        "events",
        "day",
    ]
    # ISO-8601 UTC timestamps with nanoseconds; maps as objects; dates ISO.
    assert first["start_time"] == "2026-11-28T09:00:00.005000000Z"
    assert first["duration_ns"] == 18 * MS and first["failed"] is True
    assert first["resource_attributes"]["service.name"] == "payment"
    assert first["day"] == "2026-11-28"
    assert rows[1]["events"] == [] and rows[1]["failed"] is False
    # Trace 10's card was declined: lists of structs as arrays of objects, nested times ISO.
    assert rows[10]["events"] == [
        {
            "time": "2026-11-28T09:00:10.022999000Z",
            "name": "exception",
            "attributes": {"exception.message": "card declined"},
        }
    ]


def test_csv(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = sql(data, capsys, "--format", "csv", QUERY)
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == TRACES
    assert rows[0]["start_time"] == "2026-11-28T09:00:00.005000000Z"
    assert json.loads(rows[0]["resource_attributes"])["service.name"] == "payment"
    assert rows[1]["failed"] == "false" and rows[1]["events"] == "[]"


def test_table_is_readable(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = sql(
        data,
        capsys,
        "select service_name, count(*) as spans, count_if(status_code = 'ERROR') as errors"
        " from spans group by 1 order by 1",
    )
    assert code == 0
    lines = out.splitlines()
    assert any("service_name" in ln and "spans" in ln and "errors" in ln for ln in lines)
    assert any("checkout" in ln and str(3 * TRACES) in ln for ln in lines)
    assert lines[-1] == "(4 rows)"
    assert all(len(ln) <= 160 for ln in lines)


def test_table_with_wide_or_many_rows(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Every column of spans does not fit side by side: one field a line, per row.
    code, out, _ = sql(data, capsys, "select * from spans limit 2")
    assert code == 0
    assert "row 1" in out and "row 2" in out and "span_attributes" in out
    assert all(len(ln) <= 160 for ln in out.splitlines())
    code, out, _ = sql(data, capsys, "select span_id from spans")
    assert out.splitlines()[-1].startswith(f"({SPANS_PER_TRACE * TRACES} rows, 200 shown")


def test_parquet_to_a_file_and_to_stdout(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "out.parquet"
    code, out, _ = sql(data, capsys, "--format", "parquet", "--output", str(target), QUERY)
    assert (code, out) == (0, "")
    table = pq.read_table(target)
    assert table.num_rows == TRACES
    assert str(table.schema.field("start_time").type) == "timestamp[ns, tz=UTC]"
    piped = cli("sql", "--data", str(data), "--format", "parquet", QUERY)
    assert piped.returncode == 0
    assert pq.read_table(io.BytesIO(piped.stdout)).equals(table)


def test_output_file_for_text_formats(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "out.json"
    code, out, _ = sql(data, capsys, "--format", "json", "--output", str(target), QUERY)
    assert (code, out) == (0, "")
    assert len(json.loads(target.read_text())) == TRACES


def test_since_restricts_the_views(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    since = (T0 + dt.timedelta(seconds=30)).isoformat()
    _, out, _ = sql(
        data, capsys, "--format", "json", "--since", since, "select count(*) as n from spans"
    )
    assert json.loads(out) == [{"n": SPANS_PER_TRACE * (TRACES - 30)}]
    _, out, _ = sql(
        data, capsys, "--format", "json", "--since", "1h", "select count(*) as n from spans"
    )
    assert json.loads(out) == [{"n": 0}]


def test_a_wrong_query_exits_1_with_duckdbs_message_on_one_line(data: Path) -> None:
    r = cli("sql", "--data", str(data), "selec 1 from spans")
    assert r.returncode == 1 and r.stdout == b""
    err = r.stderr.decode()
    assert err.count("\n") == 1
    assert err.startswith("aftershock sql: Parser Error: syntax error at or near")
    r = cli("sql", "--data", str(data), "select nope from spans")
    assert r.returncode == 1 and r.stderr.decode().count("\n") == 1
    assert "Binder Error" in r.stderr.decode()


def test_a_missing_data_dir_exits_2_with_one_line(tmp_path: Path) -> None:
    r = cli("sql", "select 1", env={"AFTERSHOCK_DATA": str(tmp_path / "missing")})
    assert r.returncode == 2 and r.stdout == b""
    assert r.stderr.decode() == (
        f"aftershock sql: no aftershock data directory at '{tmp_path / 'missing'}'"
        " (set --data or AFTERSHOCK_DATA)\n"
    )


def test_bad_flags_exit_2(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["sql", "--data", str(data), "--format", "xml", "select 1"])
    assert e.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1
    code, _, err = sql(data, capsys, "--since", "soonish", "select 1")
    assert code == 2 and "not a time" in err and err.count("\n") == 1
    code, _, err = sql(data, capsys, "--output", "/nonexistent/dir/x.csv", "select 1")
    assert code == 2 and err.count("\n") == 1
    r = cli("sql", "--data", str(data), "select 1", env={"AFTERSHOCK_FORMAT": "xml"})
    assert r.returncode == 2 and b"--format must be one of" in r.stderr
