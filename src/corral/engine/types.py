"""Plain data shared by the engine, the runner process and the server (no llama.cpp here).

The runner turns these into JSON frames (see :mod:`corral.engine.protocol`); the batch engine
(:mod:`corral.engine.llamacpp`, or :mod:`corral.engine.fake` in tests) consumes and produces them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class EngineLoadError(Exception):
    """A model that cannot be loaded (missing, corrupt or unsupported file, out of memory)."""


@dataclass(frozen=True)
class LoadSpec:
    """How to load one model into one runner (load-time options; a change means a reload)."""

    model_path: str
    n_ctx: int = 4096
    n_batch: int = 512
    n_threads: int = 0  # 0 = choose from the CPU count
    n_parallel: int = 4
    n_gpu_layers: int = -1
    main_gpu: int = 0
    use_mmap: bool = True
    use_mlock: bool = False
    embedding: bool = False
    lora_paths: tuple[str, ...] = ()
    # None: the engine decides (off on CPU-only builds: ~20% faster decode here); True makes a
    # request's output bit-identical whatever else shares its batch (OLLAMA_FLASH_ATTENTION).
    flash_attn: bool | None = None


@dataclass(frozen=True)
class SamplingParams:
    """Per-request sampling, with Ollama's defaults already applied by the server."""

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.9
    min_p: float = 0.0
    typical_p: float = 1.0
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    mirostat: int = 0
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1
    seed: int = -1  # -1: the engine draws a random seed
    num_predict: int = -1  # -1: until a stop or the context is full (with shifting)
    num_keep: int = 4
    grammar: str | None = None  # GBNF, already converted from format json / a JSON schema


@dataclass(frozen=True)
class GenerateRequest:
    """One completion: prompt tokens in, a stream of tokens out."""

    request_id: int
    prompt_tokens: tuple[int, ...]
    sampling: SamplingParams = field(default_factory=SamplingParams)


@dataclass(frozen=True)
class TokenEvent:
    """One sampled token of one request, with its text piece (bytes, may split a UTF-8 char)."""

    request_id: int
    token: int
    piece: bytes


@dataclass(frozen=True)
class DoneEvent:
    """A request ended: ``reason`` is 'stop' (end-of-generation token), 'length' (num_predict or
    context full without shifting), 'cancel', or 'error' (with ``error``)."""

    request_id: int
    reason: str
    prompt_eval_count: int
    prompt_eval_duration_ns: int
    eval_count: int
    eval_duration_ns: int
    cached_tokens: int = 0
    error: str | None = None


EngineEvent = TokenEvent | DoneEvent


def as_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as a JSON-ready dict (bytes become latin-1 strings)."""
    out: dict[str, Any] = {}
    for k, v in obj.__dict__.items():
        out[k] = v.decode("latin-1") if isinstance(v, bytes) else v
    return out
