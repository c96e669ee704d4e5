"""What the scheduler manages: the runner interface it drives and the identity of a model."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from corral.engine.types import HeldSlot, LoadSpec, SamplingParams, StreamEvent


class Runner(Protocol):
    """A loaded model in a runner process (or, in tests, in-process over the fake engine)."""

    spec: LoadSpec
    info: dict[str, Any]
    n_ctx: int
    pid: int
    load_duration_ns: int

    @property
    def alive(self) -> bool: ...
    async def tokenize(self, text: str, add_special: bool = True) -> list[int]: ...
    async def detokenize(self, tokens: list[int]) -> str: ...
    async def embed(self, inputs: list[list[int]]) -> list[list[float]]: ...
    async def tokenize_media(self, text: str, images: list[dict[str, Any]]) -> list[int]:
        """Tokens of a prompt whose ``[img-N]`` markers stand for ``images`` (pixels as
        :meth:`~corral.service.images.Pixels.wire` gives them); each image is a run of negative
        placeholder ids. A bad image is a ``BadRequest``."""
        ...

    def cancel(self, request_id: int) -> None: ...
    def expect(self) -> None: ...
    def unexpect(self) -> None: ...
    def set_threads(self, n: int) -> None: ...
    def generate(
        self,
        prompt_tokens: list[int],
        sampling: SamplingParams,
        *,
        expected: bool = False,
        slot: HeldSlot | None = None,
        media: tuple[str, list[dict[str, Any]]] | None = None,
    ) -> AsyncGenerator[StreamEvent, None]:
        """Token events (single, or runs of tokens that arrived together) then one done
        event. ``slot``: the request's slot, whose release the runner defers while a cancelled
        request still occupies the engine. ``media``: the prompt text and images of a vision
        request (the runner tokenizes it again, with the images)."""
        ...

    async def close(self) -> None: ...


RunnerFactory = Callable[[LoadSpec], Awaitable[Runner]]


@dataclass(frozen=True)
class ModelRef:
    """Which runner a request needs: ``key`` names the runner (model file, adapters, role),
    ``spec`` how it must be loaded; the rest is what ``/api/ps`` shows."""

    key: str
    name: str
    digest: str
    details: dict[str, Any]
    spec: LoadSpec
