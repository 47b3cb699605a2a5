"""The one duration and size parser, and the places that use it."""

from __future__ import annotations

import argparse
import datetime as dt

import pytest

from aftershock.commands import duration, size
from aftershock.query import parse_time
from aftershock.units import parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("2s", 2),
        ("90sec", 90),
        ("10m", 600),
        ("5min", 300),
        ("2h", 7200),
        ("1.5h", 5400),
        ("7d", 604800),
        ("1w", 604800),
        (" 2 H ", 7200),
        ("30", 30),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "often", "10x", "-5s", "m", "1e3s", "2h30m"])
def test_bad_durations_raise_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_bare_numbers_can_be_refused() -> None:
    with pytest.raises(ValueError):
        parse_duration("2026", bare_seconds=False)
    assert parse_duration("2m", bare_seconds=False) == 120


@pytest.mark.parametrize(
    ("text", "n"),
    [("512MiB", 512 << 20), ("8KiB", 8192), ("1GB", 10**9), ("4096", 4096), ("1.5 GiB", 3 << 29)],
)
def test_sizes(text: str, n: int) -> None:
    assert parse_size(text) == n


def test_cli_wrappers_turn_errors_into_argparse_errors() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="invalid duration"):
        duration("soon")
    with pytest.raises(argparse.ArgumentTypeError, match="invalid size"):
        size("lots")
    with pytest.raises(argparse.ArgumentTypeError, match="positive"):
        size("0")
    assert duration("7d") == 7 * 86400


def test_parse_time_takes_the_same_durations_and_iso_times() -> None:
    now = dt.datetime(2026, 11, 29, 12, tzinfo=dt.timezone.utc)
    assert parse_time("90min", now) == now - dt.timedelta(minutes=90)
    assert parse_time("1w", now) == now - dt.timedelta(days=7)
    assert parse_time("2026-11-29T10:00:00Z", now) == dt.datetime(
        2026, 11, 29, 10, tzinfo=dt.timezone.utc
    )
    with pytest.raises(ValueError, match="not a time"):
        parse_time("2026", now)
