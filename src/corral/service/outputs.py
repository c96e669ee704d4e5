"""What the generation pipeline yields: typed pieces that the API adapters turn into wire
objects (native NDJSON chunks, OpenAI objects)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TokenProb:
    """A generated token's bytes and log probability, with the most likely alternatives at its
    position as ``(bytes, log probability)``."""

    piece: bytes
    logprob: float
    top: tuple[tuple[bytes, float], ...] = ()


@dataclass(frozen=True)
class Delta:
    """New output: answer text, reasoning (``thinking``), and tool calls parsed from the
    answer (chat with tools)."""

    text: str = ""
    tool_calls: tuple[Mapping[str, Any], ...] = ()
    thinking: str = ""
    logprobs: tuple[TokenProb, ...] = ()  # of the tokens behind this delta, when asked for


@dataclass(frozen=True)
class Metrics:
    """Ollama's timing fields, in nanoseconds; ``prompt_eval_count`` includes cached tokens."""

    total_duration: int
    load_duration: int
    prompt_eval_count: int
    prompt_eval_duration: int
    eval_count: int
    eval_duration: int


@dataclass(frozen=True)
class Finished:
    """The end of a generation: ``reason`` is Ollama's ``done_reason`` (stop, length)."""

    reason: str
    metrics: Metrics
    context: tuple[int, ...] | None = None  # prompt and answer tokens (generate)


@dataclass(frozen=True)
class Ack:
    """A request that only loaded (``load``) or unloaded (``unload``) the model."""

    reason: str


@dataclass(frozen=True)
class Rendered:
    """``_debug_render_only``: the prompt the template produced, not sent to the model."""

    prompt: str
    image_count: int


Output = Delta | Finished | Ack | Rendered
