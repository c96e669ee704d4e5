"""Generation and chat: from a validated request to a stream of Ollama response objects.

The flow is resolve model -> merge options -> hold a loaded runner -> render the prompt
(truncating history to ``num_ctx``) -> tokenize -> stream tokens through stop-word and
tool-call detection -> final statistics. Everything is measured in nanoseconds as Ollama does.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from corral.config import Settings
from corral.durations import parse_go_duration
from corral.engine.types import LoadSpec, SamplingParams
from corral.errors import BadRequest, ModelNotFound
from corral.gguf_info import GGUFFile, read_gguf
from corral.models import StoredModel, load_model
from corral.names import parse_name
from corral.options import merge_options, validate_options
from corral.prompt import ChatMessage, PromptTemplate
from corral.scheduler import Lease, Scheduler
from corral.store import Store
from corral.textstream import StopText
from corral.timefmt import go_time

log = logging.getLogger(__name__)

DEFAULT_TEMPLATE = "{{ .Prompt }}"


def now_iso() -> str:
    return go_time(datetime.now(UTC))


def keep_alive_seconds(value: Any, default: float) -> float:
    """A request's ``keep_alive``: seconds as a number, or a Go duration string."""
    if value is None:
        return default
    if isinstance(value, bool):
        raise BadRequest("Unsupported type: 'bool'")
    if isinstance(value, int | float):
        return float("inf") if value < 0 else float(value)
    try:
        seconds = parse_go_duration(value)
    except ValueError as e:
        raise BadRequest(str(e) if "missing unit" in str(e) else f"{e}") from e
    return float("inf") if seconds < 0 else seconds


@lru_cache(maxsize=32)
def _gguf(path: str, mtime: float) -> GGUFFile:
    return read_gguf(Path(path))


@dataclass(frozen=True)
class Resolved:
    model: StoredModel
    gguf: GGUFFile
    options: dict[str, Any]
    spec: LoadSpec
    keep_alive: float
    label: str  # the name as the client wrote it


class Inference:
    def __init__(self, settings: Settings, store: Store, scheduler: Scheduler) -> None:
        self.settings = settings
        self.store = store
        self.scheduler = scheduler

    # ---- resolution ----------------------------------------------------------------------

    def resolve(
        self,
        raw_name: str | None,
        options: Mapping[str, Any] | None,
        keep_alive: Any,
        *,
        for_embedding: bool = False,
    ) -> Resolved:
        """The model, merged options and load spec of a request. ``for_embedding`` loads even
        a chat model as an embedder (a runner of its own), as Ollama answers embeddings for
        any model."""
        if not raw_name:
            raise BadRequest("model is required")
        name = parse_name(raw_name)
        try:
            model = load_model(self.store, name)
        except ModelNotFound as e:
            raise ModelNotFound(raw_name) from e
        if model.model_path is None or not model.model_path.exists():
            raise ModelNotFound(raw_name)
        gguf = _gguf(str(model.model_path), model.model_path.stat().st_mtime)
        opts: dict[str, Any] = dict(
            merge_options(model.parameters, validate_options(options or {}))
        )
        n_ctx = int(opts.get("num_ctx") or 0) or self.settings.context_length
        if gguf.context_length:
            n_ctx = min(n_ctx, gguf.context_length)
        spec = LoadSpec(
            model_path=str(model.model_path),
            n_ctx=max(n_ctx, 64),
            n_batch=int(opts.get("num_batch") or 512),
            n_threads=int(opts.get("num_thread") or 0),
            n_parallel=self.settings.num_parallel,
            n_gpu_layers=int(opts.get("num_gpu", -1)),
            main_gpu=int(opts.get("main_gpu") or 0),
            use_mmap=bool(opts.get("use_mmap", True)),
            use_mlock=bool(opts.get("use_mlock", False)),
            embedding=gguf.is_embedding or for_embedding,
            lora_paths=tuple(str(p) for p in model.adapter_paths),
            flash_attn=self.settings.flash_attention,
        )
        return Resolved(
            model,
            gguf,
            opts,
            spec,
            keep_alive_seconds(keep_alive, self.settings.keep_alive),
            raw_name,
        )

    @contextlib.asynccontextmanager
    async def use(self, r: Resolved, *, generating: bool = False) -> AsyncIterator[Lease]:
        """Hold the model's runner; ``generating`` announces the generate request that this
        lease will send, so that requests arriving together start in one batch."""
        m = r.model
        async with self.scheduler.use(
            key=runner_key(r),
            name=m.name.display_shortest(),
            digest=m.entry.digest,
            details=m.details(),
            spec=r.spec,
            keep_alive=r.keep_alive,
        ) as lease:
            if generating:
                lease.runner.expect()
                lease.announced = True
            try:
                yield lease
            finally:
                if lease.announced:
                    lease.runner.unexpect()

    def template(self, r: Resolved, override: str = "") -> PromptTemplate:
        return PromptTemplate(override or r.model.template or DEFAULT_TEMPLATE)

    def capabilities(self, r: Resolved) -> list[str]:
        tmpl = self.template(r)
        return r.gguf.capabilities(tmpl.text, tmpl.template.uses)

    def check_capability(self, r: Resolved, want: str, verb: str | None = None) -> None:
        if want not in self.capabilities(r):
            if verb is not None:
                raise BadRequest(f'"{r.label}" does not support {verb}')
            raise BadRequest(f"{r.model.name.display_long()} does not support {want}")


def runner_key(r: Resolved) -> str:
    """Runners are shared by model file, adapters and role (generation or embeddings)."""
    role = "embed" if r.spec.embedding else "generate"
    return f"{r.spec.model_path}|{','.join(r.spec.lora_paths)}|{role}"


def sampling_params(opts: Mapping[str, Any], grammar: str | None) -> SamplingParams:
    return SamplingParams(
        temperature=float(opts.get("temperature", 0.8)),
        top_k=int(opts.get("top_k", 40)),
        top_p=float(opts.get("top_p", 0.9)),
        min_p=float(opts.get("min_p") or 0.0),
        typical_p=float(opts.get("typical_p", 1.0)),
        repeat_penalty=float(opts.get("repeat_penalty", 1.0)),
        repeat_last_n=int(opts.get("repeat_last_n", 64)),
        presence_penalty=float(opts.get("presence_penalty", 0.0)),
        frequency_penalty=float(opts.get("frequency_penalty", 0.0)),
        mirostat=int(opts.get("mirostat", 0)),
        mirostat_tau=float(opts.get("mirostat_tau", 5.0)),
        mirostat_eta=float(opts.get("mirostat_eta", 0.1)),
        seed=int(opts.get("seed", -1)),
        num_predict=int(opts.get("num_predict", -1)),
        num_keep=int(opts.get("num_keep", 4)),
        grammar=grammar,
    )


def grammar_for(fmt: Any) -> str | None:
    if fmt is None or fmt == "":
        return None
    from corral.engine.grammar import json_grammar

    if fmt == "json":
        return json_grammar(None)
    if isinstance(fmt, dict):
        try:
            return json_grammar(fmt)
        except Exception as e:
            raise BadRequest(f"invalid JSON schema in format: {e}") from e
    raise BadRequest(f'invalid format: "{fmt}"; expected "json" or a valid JSON Schema object')


def messages_from_wire(msgs: Sequence[Any]) -> list[ChatMessage]:
    out = []
    for m in msgs:
        if m.role not in ("system", "user", "assistant", "tool"):
            raise BadRequest(f'invalid role "{m.role}"')
        calls = tuple(c.model_dump(exclude_none=True) for c in m.tool_calls or [])
        out.append(
            ChatMessage(
                m.role,
                m.content or "",
                tuple(m.images or ()),
                calls,
                m.tool_name or "",
                m.thinking or "",
            )
        )
    return out


@dataclass
class Stats:
    start_ns: int
    load_ns: int = 0
    prompt_eval_count: int = 0
    prompt_eval_ns: int = 0
    eval_count: int = 0
    eval_ns: int = 0

    def final(self, reason: str) -> dict[str, Any]:
        return {
            "done": True,
            "done_reason": reason,
            "total_duration": time.perf_counter_ns() - self.start_ns,
            "load_duration": self.load_ns,
            "prompt_eval_count": self.prompt_eval_count,
            "prompt_eval_duration": self.prompt_eval_ns,
            "eval_count": self.eval_count,
            "eval_duration": self.eval_ns,
        }


async def run_tokens(
    lease: Lease,
    tokens: list[int],
    sampling: SamplingParams,
    stops: Sequence[str],
    stats: Stats,
    out_tokens: list[int],
) -> AsyncIterator[tuple[str, str | None]]:
    """Yield (text, None) pieces, then ("", done_reason)."""
    text = StopText(stops)
    reason = "stop"
    expected, lease.announced = lease.announced, False
    async for ev in lease.runner.generate(tokens, sampling, expected=expected):
        if ev["ev"] == "token":
            if text.stopped:
                continue  # a token decoded before the cancel took effect
            out_tokens.append(int(ev["token"]))
            piece = text.feed(ev["piece"].encode("latin-1"))
            if piece:
                yield piece, None
            if text.stopped:
                lease.runner.cancel(int(ev["id"]))
        else:
            # Ollama counts the whole prompt, the part found in the cache included.
            stats.prompt_eval_count = int(ev["prompt_eval_count"]) + int(ev["cached_tokens"])
            stats.prompt_eval_ns = int(ev["prompt_eval_duration"])
            stats.eval_count = int(ev["eval_count"])
            stats.eval_ns = int(ev["eval_duration"])
            reason = str(ev["reason"])
            if reason == "error":
                raise BadRequest(str(ev.get("error") or "generation failed"))
    tail = text.flush()
    if tail:
        yield tail, None
    if reason == "cancel" or text.stopped:
        reason = "stop"
        stats.eval_count = len(out_tokens)
    yield "", reason
