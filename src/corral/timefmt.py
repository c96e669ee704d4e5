"""Timestamps as Go's ``time.Time`` marshals them to JSON (RFC 3339 with the local offset)."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def go_time(dt: datetime) -> str:
    local = dt.astimezone()
    text = local.isoformat(timespec="microseconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


_second = -1
_head = _tail = ""


def now_go() -> str:
    """``go_time`` of now. Every streamed chunk carries one, and converting to local time costs
    more than the rest of a chunk's formatting, so the text around the fraction is made once
    per second."""
    global _second, _head, _tail
    sec, ns = divmod(time.time_ns(), 1_000_000_000)
    if sec != _second:
        text = go_time(datetime.fromtimestamp(sec, UTC))
        dot = text.index(".", 19)
        _head, _tail, _second = text[:dot], text[dot + 7 :], sec
    return f"{_head}.{ns // 1000:06d}{_tail}"
