"""Go-style durations: ``time.ParseDuration`` and Ollama's ``keep_alive`` rules.

``keep_alive`` and ``OLLAMA_KEEP_ALIVE`` accept a number of seconds or a Go duration string
(``"5m"``, ``"1h30m"``, ``"300ms"``, ``"-1"``); a negative value means "forever".
"""

from __future__ import annotations

import math
import re

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")

FOREVER = math.inf
_MAX_SECONDS = (2**63 - 1) / 1e9  # Go's longest Duration, about 292 years


def parse_go_duration(text: str) -> float:
    """Parse a Go duration string into seconds; raise ValueError like Go would refuse it."""
    s = text.strip()
    if not s:
        raise ValueError(f'time: invalid duration "{text}"')
    sign = 1.0
    if s[0] in "+-":
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    pos = 0
    total = 0.0
    while pos < len(s):
        m = _PART.match(s, pos)
        if m is None:
            raise ValueError(f'time: invalid duration "{text}"')
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos == 0 or total > _MAX_SECONDS:  # past int64 nanoseconds Go refuses it too
        raise ValueError(f'time: invalid duration "{text}"')
    return sign * total


def parse_keep_alive(value: object) -> float:
    """Seconds to keep a model loaded from a JSON ``keep_alive`` value; ``inf`` means forever.

    Numbers are seconds; strings are Go durations or bare integers (seconds). Raises ValueError
    for anything else.
    """
    if isinstance(value, bool):
        raise ValueError("keep_alive must be a number or a duration string")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = float(int(value.strip()))
        except ValueError:
            seconds = parse_go_duration(value)
    else:
        raise ValueError("keep_alive must be a number or a duration string")
    if math.isnan(seconds):
        raise ValueError("keep_alive must be a number or a duration string")
    return FOREVER if seconds < 0 else seconds
