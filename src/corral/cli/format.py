"""Text formatting for the CLI, matching what Ollama's CLI prints.

Human sizes (``98 MB``, decimal units), human numbers (``135M``), relative times
(``2 minutes ago``, ``4 minutes from now``, ``Forever``), Go's ``time.Duration`` text
(``1.234s``, ``512.5µs``), Go's ``%g`` for JSON numbers, and the borderless tables
(columns padded and separated by four spaces) of ``list``, ``ps`` and ``show``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from corral.template.gofmt import format_float

_KB = 1000
_MB = _KB * 1000
_GB = _MB * 1000
_TB = _GB * 1000

TABLE_PADDING = "    "


def human_bytes(n: int | float) -> str:
    """Decimal units; one decimal below 10 unless whole (``98 MB``, ``1.5 GB``, ``512 B``)."""
    b = int(n)
    for limit, unit in ((_TB, "TB"), (_GB, "GB"), (_MB, "MB"), (_KB, "KB")):  # noqa: B007
        if b >= limit:
            value = b / limit
            break
    else:
        return f"{b} B"
    if value >= 10 or value == math.trunc(value):
        return f"{int(value)} {unit}"
    return f"{value:.1f} {unit}"


def human_number(n: int) -> str:
    """Parameter counts: ``7B``, ``1.5B``, ``134.52M``, ``22K``, ``999``."""
    if n >= 1_000_000_000:
        v = n / 1_000_000_000
        return f"{v:.0f}B" if v == math.floor(v) else f"{v:.1f}B"
    if n >= 1_000_000:
        v = n / 1_000_000
        return f"{v:.0f}M" if v == math.floor(v) else f"{v:.2f}M"
    if n >= 1000:
        return f"{n / 1000:.0f}K"
    return str(n)


def _human_duration(seconds: float) -> str:
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(seconds / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


_GO_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


def parse_go_time(text: str) -> datetime | None:
    """An RFC 3339 time as Go writes it (nanoseconds allowed); None if it is not one."""
    m = _GO_TIME.match(text.strip())
    if m is None:
        return None
    frac = (m.group(2) or "0")[:6].ljust(6, "0")
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    try:
        return datetime.fromisoformat(f"{m.group(1)}.{frac}{zone}")
    except ValueError:
        return None


def human_time(
    when: datetime | str | None, zero: str = "Never", *, now: datetime | None = None
) -> str:
    """``3 hours ago``, ``4 minutes from now``, ``Forever`` (more than 20 years ahead)."""
    if isinstance(when, str):
        when = parse_go_time(when)
    if when is None or when.year <= 1:
        return zero
    now = now or datetime.now(UTC)
    delta = (now - when).total_seconds()
    if int(delta / 3600) // 24 // 365 < -20:
        return "Forever"
    if delta < 0:
        return _human_duration(-delta) + " from now"
    return _human_duration(delta) + " ago"


def _frac(value: int, digits: int) -> str:
    """``value`` / 10**digits printed as Go prints a duration: trailing zeros dropped."""
    whole, rest = divmod(value, 10**digits)
    text = str(whole)
    if rest:
        text += "." + str(rest).rjust(digits, "0").rstrip("0")
    return text


def go_duration(nanoseconds: int) -> str:
    """Go's ``time.Duration.String()``: ``0s``, ``850ns``, ``1.5µs``, ``12.3ms``, ``1m2.5s``."""
    d = int(nanoseconds)
    if d == 0:
        return "0s"
    sign = "-" if d < 0 else ""
    u = abs(d)
    if u < 1000:
        return f"{sign}{u}ns"
    if u < 1_000_000:
        return f"{sign}{_frac(u, 3)}µs"
    if u < 1_000_000_000:
        return f"{sign}{_frac(u, 6)}ms"
    hours, rest = divmod(u, 3600 * 1_000_000_000)
    minutes, rest = divmod(rest, 60 * 1_000_000_000)
    text = _frac(rest, 9) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


def go_g(value: float) -> str:
    """Go's ``%g`` (``%v``) of a float64."""
    return format_float(value, "g", -1)


def go_value(value: Any) -> str:
    """Go's ``%v`` of a decoded JSON value or a typed option value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_g(value)
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_value(v) for v in value) + "]"
    if value is None:
        return "<nil>"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_value(v)}" for k, v in sorted(value.items())) + "]"
    return str(value)


def go_quote(text: str) -> str:
    """Go's ``%q`` of a string (double quotes, backslash escapes)."""
    out = ['"']
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif not ch.isprintable():
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def table(rows: Sequence[Sequence[str]], header: Sequence[str] | None = None) -> str:
    """Left-aligned, borderless columns separated by four spaces (Ollama's table layout)."""
    all_rows = [list(header)] if header else []
    all_rows += [list(r) for r in rows]
    if not all_rows:
        return ""
    ncols = max(len(r) for r in all_rows)
    for r in all_rows:
        r.extend([""] * (ncols - len(r)))
    widths = [max(_width(r[i]) for r in all_rows) for i in range(ncols)]
    lines = []
    for r in all_rows:
        cells = [r[i] + " " * (widths[i] - _width(r[i])) for i in range(ncols)]
        lines.append(TABLE_PADDING.join(cells).rstrip())
    return "\n".join(lines) + "\n"


def _width(text: str) -> int:
    from rich.cells import cell_len

    return cell_len(text)
