"""Timestamps as Go's ``time.Time`` marshals them to JSON (RFC 3339 with the local offset)."""

from __future__ import annotations

from datetime import datetime


def go_time(dt: datetime) -> str:
    local = dt.astimezone()
    text = local.isoformat(timespec="microseconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text
