"""Plain data shared by the engine, the runner process and the server (no llama.cpp here).

The runner turns these into JSON frames (see :mod:`corral.engine.protocol`); the batch engine
(:mod:`corral.engine.llamacpp`, or :mod:`corral.engine.fake` in tests) consumes and produces them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from corral.options import DEFAULTS


class EngineLoadError(Exception):
    """A model that cannot be loaded (missing, corrupt or unsupported file, out of memory)."""


@dataclass(frozen=True)
class LoadSpec:
    """How to load one model into one runner (load-time options; a change means a reload)."""

    model_path: str
    n_ctx: int = 4096
    n_batch: int = int(DEFAULTS["num_batch"])
    n_threads: int = int(DEFAULTS["num_thread"])  # 0 = choose from the CPU count
    n_parallel: int = 4
    n_gpu_layers: int = int(DEFAULTS["num_gpu"])
    main_gpu: int = 0
    use_mmap: bool = True
    use_mlock: bool = False
    embedding: bool = False
    lora_paths: tuple[str, ...] = ()
    projector_path: str = ""  # a vision projector (mmproj GGUF): images are accepted
    # None: the engine decides (on a CPU-only build by timing both ways on this CPU, see
    # engine/tuning.py); True makes a request's output bit-identical whatever else shares its
    # batch (OLLAMA_FLASH_ATTENTION).
    flash_attn: bool | None = None


@dataclass(frozen=True)
class SamplingParams:
    """Per-request sampling; the defaults are Ollama's (:data:`corral.options.DEFAULTS`)."""

    temperature: float = float(DEFAULTS["temperature"])
    top_k: int = int(DEFAULTS["top_k"])
    top_p: float = float(DEFAULTS["top_p"])
    min_p: float = 0.0
    typical_p: float = float(DEFAULTS["typical_p"])
    repeat_penalty: float = float(DEFAULTS["repeat_penalty"])
    repeat_last_n: int = int(DEFAULTS["repeat_last_n"])
    presence_penalty: float = float(DEFAULTS["presence_penalty"])
    frequency_penalty: float = float(DEFAULTS["frequency_penalty"])
    mirostat: int = int(DEFAULTS["mirostat"])
    mirostat_tau: float = float(DEFAULTS["mirostat_tau"])
    mirostat_eta: float = float(DEFAULTS["mirostat_eta"])
    seed: int = int(DEFAULTS["seed"])  # -1: the engine draws a random seed
    num_predict: int = int(DEFAULTS["num_predict"])  # -1: until a stop or a full context
    num_keep: int = int(DEFAULTS["num_keep"])
    shift: bool = True  # a full context shifts (False: the generation ends, "length")
    logprobs: bool = False  # report each token's log probability
    top_logprobs: int = 0  # and this many most likely alternatives (0-20)
    grammar: str | None = None  # GBNF, already converted from format json / a JSON schema


@dataclass(frozen=True)
class GenerateRequest:
    """One completion: prompt tokens in, a stream of tokens out."""

    request_id: int
    prompt_tokens: tuple[int, ...]
    sampling: SamplingParams = field(default_factory=SamplingParams)
    # a vision request: the prompt text (``[img-N]`` marks image N) and the images' pixels
    # (``{"w", "h", "rgb"}``, RGB base64); the engine tokenizes it with the images itself
    media: tuple[str, tuple[dict[str, Any], ...]] | None = None


@dataclass(frozen=True)
class Logprob:
    """A sampled token's log probability and, if asked for, the most likely tokens at its
    position as ``(token id, piece, log probability)``."""

    logprob: float
    top: tuple[tuple[int, bytes, float], ...] = ()


@dataclass(frozen=True)
class TokenEvent:
    """One sampled token of one request, with its text piece (bytes, may split a UTF-8 char)
    and its log probability when the request asked for them."""

    request_id: int
    token: int
    piece: bytes
    logprob: Logprob | None = None


@dataclass(frozen=True)
class TokenRun:
    """Consecutive tokens of one request that reached the server together (the runner holds a
    fast stream's tokens for a few milliseconds, and a stream can fall behind): the server
    decodes them together and sends them as one chunk."""

    request_id: int
    tokens: tuple[int, ...]
    pieces: tuple[bytes, ...]
    logprobs: tuple[Logprob | None, ...] = ()  # one per token, or empty when none were asked


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
StreamEvent = TokenEvent | TokenRun | DoneEvent  # what a generation yields to the server


class HeldSlot(Protocol):
    """A request's generation slot, as the server's scheduler hands it to a runner."""

    def defer(self) -> Callable[[], None]:
        """Take over the slot's release: the returned function gives it back (once)."""
        ...


def as_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as a JSON-ready dict (bytes become latin-1 strings)."""
    out: dict[str, Any] = {}
    for k, v in obj.__dict__.items():
        out[k] = v.decode("latin-1") if isinstance(v, bytes) else v
    return out
