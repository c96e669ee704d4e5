"""Incremental UTF-8 and stop words."""

from __future__ import annotations

import pytest

from corral.textstream import StopText


def run(pieces: list[bytes], stops: list[str]) -> tuple[list[str], bool]:
    s = StopText(stops)
    out = [s.feed(p) for p in pieces]
    out.append(s.flush())
    return [x for x in out if x], s.stopped


@pytest.mark.parametrize(
    ("pieces", "stops", "text", "stopped"),
    [
        ([b"Hello", b" world"], [], "Hello world", False),
        ([b"Hello", b" wor", b"ld"], ["world"], "Hello ", True),
        ([b"ab", b"c<", b"|e", b"nd|>", b"zz"], ["<|end|>"], "abc", True),
        ([b"a<", b"b"], ["<|end|>"], "a<b", False),
        ([b"caf", b"\xc3", b"\xa9!"], [], "café!", False),
        ([b"\xe2\x82", b"\xac"], ["x"], "€", False),
        ([b"one\n\nUser:"], ["User:", "\n\n"], "one", True),
        ([b"stop"], ["stop"], "", True),
        ([b"a<|", b"end"], ["<|end|>"], "a<|end", False),
    ],
)
def test_stop_text(pieces: list[bytes], stops: list[str], text: str, stopped: bool) -> None:
    out, was_stopped = run(pieces, stops)
    assert "".join(out) == text
    assert was_stopped is stopped


def test_partial_stop_is_held_back() -> None:
    s = StopText(["</s>"])
    assert s.feed(b"hi </") == "hi "
    assert s.feed(b"b>") == "</b>"


def test_nothing_after_stop() -> None:
    s = StopText(["X"])
    assert s.feed(b"aXb") == "a"
    assert s.feed(b"more") == ""
    assert s.flush() == ""
