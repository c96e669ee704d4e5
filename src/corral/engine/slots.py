"""Slot bookkeeping for continuous batching with prefix reuse (pure Python, no llama.cpp).

A slot is one llama.cpp sequence id. It keeps the tokens whose KV cells it holds (position i
holds ``tokens[i]``) after its request ends, so that a follow-up request that shares a prefix
only evaluates the rest. Placement follows Ollama's cache-slot policy:

* the slot (busy or idle) with the longest common prefix with the new prompt is the *source*;
* if the source is idle and its whole history is a prefix of the prompt, the request takes it;
* otherwise the request takes the least recently used idle slot (an empty slot counts as the
  oldest) and the common prefix is copied over from the source (``llama_memory_seq_cp``: ~50 µs
  in a unified cache, a whole-stream copy in a split one) instead of being recomputed — so a
  conversation's history survives a different request that shares only its system prompt;
* at least the last prompt token is always evaluated, to get logits.

In a unified cache copied cells are shared between sequences and a shared cell has one
position, so a slot tracks ``shared``: an upper bound of the prefix whose cells another sequence
may also own. A context shift must not move shared cells.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

_CHUNK = 64


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token sequences."""
    la, lb = list(a), list(b)
    n = min(len(la), len(lb))
    if la[:n] == lb[:n]:
        return n
    i = 0
    while i + _CHUNK <= n and la[i : i + _CHUNK] == lb[i : i + _CHUNK]:
        i += _CHUNK
    while i < n and la[i] == lb[i]:
        i += 1
    return i


@dataclass
class Slot:
    """One sequence of the batch and the token history its KV cells hold."""

    index: int
    tokens: list[int] = field(default_factory=list)
    busy: bool = False
    last_used: int = 0
    shared: int = 0  # cells [0, shared) may also belong to another sequence

    def trim(self, n: int) -> None:
        """Forget everything from position ``n`` on (after ``seq_rm(index, n, -1)``)."""
        del self.tokens[n:]
        self.shared = min(self.shared, n)

    def clear(self) -> None:
        self.tokens.clear()
        self.shared = 0


@dataclass(frozen=True)
class Placement:
    """Where a request goes: ``slot`` keeps ``reuse`` prompt tokens of KV, taken from its own
    history, or copied from slot ``copy_from`` when that is set."""

    slot: int
    reuse: int
    copy_from: int | None = None


def plan_placement(
    slots: Sequence[Slot], prompt: Sequence[int], *, can_copy: bool = True, min_copy: int = 1
) -> Placement | None:
    """Choose a slot for ``prompt`` (non-empty); None when every slot is busy.

    A copy is only planned for at least ``min_copy`` tokens (copying between the separate
    streams of a non-unified cache moves a whole stream, so tiny prefixes are not worth it).
    Without a copy the idle slot with the longest own prefix is trimmed (or, with no common
    prefix anywhere, the least recently used idle slot is taken).
    """
    idle = [s for s in slots if not s.busy]
    if not idle:
        return None
    limit = len(prompt) - 1
    prefix = {s.index: common_prefix_len(s.tokens, prompt) for s in slots}
    src = max(slots, key=lambda s: prefix[s.index])  # first of equals: lowest index
    src_len = prefix[src.index]
    if not src.busy and src_len == len(src.tokens):
        return Placement(src.index, min(src_len, limit))
    target = min(idle, key=lambda s: (s.last_used, s.index))
    reuse = min(src_len, limit)
    if (
        can_copy
        and reuse >= max(1, min_copy)
        and src is not target
        and reuse > prefix[target.index]
    ):
        return Placement(target.index, reuse, copy_from=src.index)
    best = max(idle, key=lambda s: prefix[s.index])
    chosen = best if prefix[best.index] > 0 else target
    return Placement(chosen.index, min(prefix[chosen.index], limit))
