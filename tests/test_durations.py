"""Go durations and keep_alive values."""

from __future__ import annotations

import math

import pytest

from corral.durations import parse_go_duration, parse_keep_alive


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("300ms", 0.3),
        ("1.5h", 5400.0),
        ("-1s", -1.0),
        ("+2s", 2.0),
        ("10us", 1e-5),
        ("2h45m30.5s", 9930.5),
        (".5s", 0.5),
    ],
)
def test_go_duration(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "m", "5x", "1h 2m", "--1s", "s5"])
def test_go_duration_invalid(text: str) -> None:
    with pytest.raises(ValueError):
        parse_go_duration(text)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (0, 0.0),
        (30, 30.0),
        (2.5, 2.5),
        (-1, math.inf),
        ("10m", 600.0),
        ("45", 45.0),
        ("-1", math.inf),
        ("-5m", math.inf),
        ("0", 0.0),
    ],
)
def test_keep_alive(value: object, seconds: float) -> None:
    assert parse_keep_alive(value) == seconds


@pytest.mark.parametrize("value", [True, None, [], {}, "soon", float("nan")])
def test_keep_alive_invalid(value: object) -> None:
    with pytest.raises(ValueError):
        parse_keep_alive(value)
