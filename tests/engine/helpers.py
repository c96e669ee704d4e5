"""Helpers shared by the engine tests: drive an engine to completion and collect the output."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from corral.engine.types import DoneEvent, EngineEvent, GenerateRequest, TokenEvent


class Steppable(Protocol):
    def submit(self, req: GenerateRequest) -> None: ...
    def has_work(self) -> bool: ...
    def step(self) -> list[EngineEvent]: ...


@dataclass
class Result:
    tokens: list[int] = field(default_factory=list)
    pieces: list[bytes] = field(default_factory=list)
    done: DoneEvent | None = None

    @property
    def text(self) -> str:
        return b"".join(self.pieces).decode("utf-8", "replace")


def collect(results: dict[int, Result], events: Iterable[EngineEvent]) -> None:
    for ev in events:
        res = results.setdefault(ev.request_id, Result())
        assert res.done is None, f"event after done for request {ev.request_id}"
        if isinstance(ev, TokenEvent):
            res.tokens.append(ev.token)
            res.pieces.append(ev.piece)
        else:
            res.done = ev


def run(
    engine: Steppable, reqs: Iterable[GenerateRequest], max_steps: int = 20_000
) -> dict[int, Result]:
    """Submit every request and step until the engine is idle."""
    results: dict[int, Result] = {}
    for req in reqs:
        results[req.request_id] = Result()
        engine.submit(req)
    steps = 0
    while engine.has_work():
        collect(results, engine.step())
        steps += 1
        assert steps < max_steps, "the engine did not finish"
    return results
