"""The CPU budget: runners that are busy at the same time share the cores.

Each runner computes with one thread per core unless its model sets ``num_thread``. Two busy
runners would then run twice as many threads as there are cores, and llama.cpp's spinning
thread barriers collapse under that (a chat stream fell to a sixth of its speed beside a busy
embedder). So while several runners are busy, each gets an even share of the cores (at least
one thread, never more than it asked for); a runner busy alone gets all it asked for. The
scheduler recomputes the shares whenever a runner becomes busy or idle, before the work that
changed them reaches the runner.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

K = TypeVar("K", bound=Hashable)


def available_cores() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def shares(wants: Mapping[K, int], busy: Sequence[K], cores: int) -> dict[K, int]:
    """Threads for each runner: what it wants while at most one runner is busy; otherwise the
    busy ones split ``cores`` evenly (the first ones in ``busy`` take the remainder) and the
    idle ones keep what they want until they are busy too."""
    out = {k: max(1, w) for k, w in wants.items()}
    active = [k for k in busy if k in wants]
    if len(active) < 2:
        return out
    base, extra = divmod(cores, len(active))
    for i, k in enumerate(active):
        out[k] = max(1, min(out[k], base + (1 if i < extra else 0)))
    return out
