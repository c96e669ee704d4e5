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


def test_a_run_of_tokens_decodes_like_the_tokens_one_by_one() -> None:
    from corral.engine.types import TokenEvent, TokenRun
    from corral.service.decode import Decoder

    pieces = (b"Hel", b"lo ", b"\xc3", b"\xa9t", b"STOP", b" never")
    one = Decoder(["STOP"], start_ns=0)
    text = "".join(
        d.text for i, p in enumerate(pieces) if (d := one.token(TokenEvent(1, i, p))) is not None
    )
    run = Decoder(["STOP"], start_ns=0)
    delta = run.token(TokenRun(1, tuple(range(len(pieces))), pieces))
    assert delta is not None and delta.text == text == "Hello ét"
    assert run.stopped and one.stopped
    # Tokens after the stop word are neither sent nor counted, whichever way they came.
    assert run.tokens == one.tokens == [0, 1, 2, 3, 4]


def test_now_go_is_go_time_of_now() -> None:
    import re
    from datetime import UTC, datetime, timedelta

    from corral.timefmt import go_time, now_go

    before = datetime.now(UTC)
    text = now_go()
    after = datetime.now(UTC)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)", text)
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert before - timedelta(microseconds=1) <= when <= after
    assert go_time(when)[-6:] == text[-6:]  # the same offset notation
