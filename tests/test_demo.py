"""`aftershock demo` end to end, as a user runs it: verdicts, charts, SQL that runs."""

from __future__ import annotations

import datetime as dt
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aftershock.commands import CliError
from aftershock.commands.demo import MARKER, prepare_data_dir
from aftershock.deploys.attribution import is_outcome

AFTERSHOCK = [sys.executable, "-m", "aftershock.cli"]


def aftershock(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AFTERSHOCK, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, float]:
    data = tmp_path_factory.mktemp("demo") / "data"
    start = time.monotonic()
    result = aftershock("demo", "--data", str(data), "--seed", "1", timeout=300)
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stderr
    return data, result.stdout, elapsed


def test_demo_finishes_in_under_two_minutes(demo: tuple[Path, str, float]) -> None:
    assert demo[2] < 120


def test_demo_finds_the_bad_canary_and_the_healthy_cutover(demo: tuple[Path, str, float]) -> None:
    data, out, _ = demo
    result = aftershock("deploys", "--data", str(data), "--json")
    assert result.returncode == 0, result.stderr
    verdicts = {(v["service"], v["version"]): v for v in json.loads(result.stdout)}
    assert set(verdicts) == {("frontend", "1.9.0"), ("checkout", "2.4.0")}
    bad = verdicts[("checkout", "2.4.0")]
    assert (bad["rollout"], bad["verdict"], bad["previous_version"]) == (
        "canary",
        "regression",
        "2.3.0",
    )
    rates = [s for s in bad["signals"] if s["kind"] == "error_rate"]
    assert [s["span_name"] for s in rates] == ["PlaceOrder"]
    assert rates[0]["candidate"] > 0.05 > rates[0]["baseline"]
    suspects = {(s["attribute"], s["value"]) for s in bad["suspects"]}
    assert ("app.payment.method", "paypal") in suspects
    # Attributes that only say the call failed (status codes, error.type) are no suspects.
    assert not any(is_outcome(a) for a, _ in suspects), suspects
    assert "app.payment.method=paypal" in bad["explanation"]
    # Flagged within minutes of the canary's first span, long before the data ends.
    decided = dt.datetime.fromisoformat(bad["decided_at"].replace("Z", "+00:00"))
    started = dt.datetime.fromisoformat(bad["started_at"].replace("Z", "+00:00"))
    assert dt.timedelta(0) < decided - started <= dt.timedelta(minutes=10)
    good = verdicts[("frontend", "1.9.0")]
    assert (good["rollout"], good["verdict"], good["signals"]) == ("cutover", "healthy", [])
    # The printed summary says the same.
    assert "checkout 2.4.0: REGRESSION" in out
    assert "regressed endpoint: PlaceOrder" in out
    assert "suspect: app.payment.method=paypal" in out
    assert "frontend 1.9.0: HEALTHY" in out
    assert "everything sent" in out
    origins = out.split("Where errors originate")[1].splitlines()[2]
    assert origins.split()[:4] == ["checkout", "PlaceOrder", "2.4.0", "KeyError"]


def test_demo_writes_the_charts(demo: tuple[Path, str, float]) -> None:
    data, out, _ = demo
    for name in ("checkout-2.4.0", "frontend-1.9.0"):
        png, page = data / "reports" / f"{name}.png", data / "reports" / f"{name}.html"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "data:image/png;base64," in page.read_text()
        assert str(png) in out and str(page) in out


def test_the_suggested_queries_run(demo: tuple[Path, str, float]) -> None:
    _, out, _ = demo
    commands = [line.strip() for line in out.splitlines() if line.strip().startswith("aftershock")]
    sql = [c for c in commands if c.startswith("aftershock sql")]
    assert len(sql) == 3
    for command in commands:
        result = aftershock(*shlex.split(command)[1:])
        assert result.returncode == 0, (command, result.stderr)
        assert len(result.stdout.splitlines()) > 3, command
    paypal = aftershock(*shlex.split(sql[0])[1:], "--format", "json")
    rows = json.loads(paypal.stdout)
    worst = rows[0]
    assert (worst["service_version"], worst["method"]) == ("2.4.0", "paypal")


def test_demo_refuses_a_directory_with_other_data(tmp_path: Path) -> None:
    (tmp_path / "spans").mkdir()
    (tmp_path / "notes.txt").write_text("mine")
    result = aftershock("demo", "--data", str(tmp_path))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "not a previous demo's" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "spans"]


def test_a_previous_demos_data_is_replaced(tmp_path: Path) -> None:
    assert prepare_data_dir(tmp_path / "new") is False
    (tmp_path / MARKER).write_text("{}")
    for name in ("spans", "wal", "reports"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x").write_text("x")
    (tmp_path / "receiver-id").write_text("r")
    assert prepare_data_dir(tmp_path) is True
    assert list(tmp_path.iterdir()) == []
    # The marker alone does not make a directory with other things in it a demo's.
    (tmp_path / MARKER).write_text("{}")
    (tmp_path / "important").mkdir()
    with pytest.raises(CliError):
        prepare_data_dir(tmp_path)
    assert (tmp_path / "important").is_dir()


def test_python_api_and_sql_view_agree_with_the_cli(demo: tuple[Path, str, float]) -> None:
    import aftershock as aftershock_pkg

    data, _, _ = demo
    cli = json.loads(aftershock("deploys", "--data", str(data), "--json").stdout)
    lake = aftershock_pkg.open(data)
    assert [v.to_json() for v in lake.deploys()] == cli
    view = lake.sql("select service, version, verdict, signals from deploys order by started_at")
    assert view.rows() == [
        (v["service"], v["version"], v["verdict"], json.dumps(v["signals"])) for v in cli
    ]
    con = lake.duckdb()
    [(n,)] = con.sql("select count(*) from deploys where verdict = 'regression'").fetchall()
    assert n == 1
    result = aftershock(
        "sql", "--data", str(data), "--format", "json", "select service, verdict from deploys"
    )
    assert result.returncode == 0, result.stderr
    assert {(r["service"], r["verdict"]) for r in json.loads(result.stdout)} == {
        ("frontend", "healthy"),
        ("checkout", "regression"),
    }
