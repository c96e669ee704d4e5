"""Step 2 of a request: from wire fields to a typed :class:`Job`.

A job fixes everything the later steps need: the effective options (Ollama's defaults, then the
model's parameters, then the request's ``options``), how the runner must be loaded
(:class:`~corral.engine.types.LoadSpec`) and which runner that is, the sampling parameters with
the ``format`` grammar, ``keep_alive`` in seconds, ``think``, stop words and truncation.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from corral.api.types import THINK_LEVELS
from corral.config import Settings
from corral.durations import parse_go_duration
from corral.engine.logprobs import MAX_TOP
from corral.engine.types import LoadSpec, SamplingParams
from corral.errors import BadRequest
from corral.options import DEFAULTS, OptionValue, merge_options, validate_options
from corral.prompt import think_on
from corral.scheduler import ModelRef
from corral.service.models import ModelView

# set from request fields, not from options
_NOT_OPTIONS = ("grammar", "logprobs", "top_logprobs", "shift")
_SAMPLING_FIELDS = tuple(
    f.name for f in dataclasses.fields(SamplingParams) if f.name not in _NOT_OPTIONS
)


@dataclass(frozen=True)
class Job:
    """One request to a model, fully decided."""

    view: ModelView
    label: str  # the model name as the client wrote it
    options: Mapping[str, OptionValue]
    ref: ModelRef
    keep_alive: float
    sampling: SamplingParams
    think: bool | str | None = None
    truncate: bool = True

    @property
    def spec(self) -> LoadSpec:
        return self.ref.spec

    @property
    def stops(self) -> tuple[str, ...]:
        value = self.options.get("stop")
        return tuple(value) if isinstance(value, list) else ()


_LONGEST_SECONDS = (2**63 - 1) / 1e9


def keep_alive_seconds(value: Any, default: float) -> float:
    """A request's ``keep_alive``: seconds as a number, or a Go duration string; negative is
    forever."""
    if value is None:
        return default
    if isinstance(value, bool):
        raise BadRequest("Unsupported type: 'bool'")
    if isinstance(value, int | float):
        # past Go's longest Duration (~292 years) is forever; a huge int would overflow float()
        return float("inf") if value < 0 or value > _LONGEST_SECONDS else float(value)
    try:
        seconds = parse_go_duration(value)
    except ValueError as e:
        raise BadRequest(str(e)) from e
    return float("inf") if seconds < 0 else seconds


def context_shift(shift: bool | None, view: ModelView) -> bool:
    """Ollama's ``shift``: on unless the request turns it off, or the model's family
    (deepseek2) cannot shift its cache."""
    if shift is not None:
        return shift
    details = view.stored.details()
    return "deepseek2" not in (details.get("family"), *(details.get("families") or ()))


def think_value(think: bool | str | None, capabilities: Sequence[str]) -> bool | str | None:
    """The request's ``think``, as Ollama decides it: a thinking model thinks unless told not
    to; a level must be one of Ollama's."""
    if think is None:
        return True if "thinking" in capabilities else None
    if isinstance(think, str) and think not in THINK_LEVELS:
        raise BadRequest(
            f'invalid think value: "{think}" (must be "high", "medium", "low", "max", true, '
            "or false)"
        )
    return think


async def grammar_for(fmt: Any) -> str | None:
    """The GBNF grammar of a ``format`` (``"json"`` or a JSON schema); schemas convert in a
    thread."""
    if fmt is None or fmt == "":
        return None
    from corral.engine.grammar import json_grammar

    if fmt == "json":
        return json_grammar(None)
    if isinstance(fmt, dict):
        try:
            return await asyncio.to_thread(json_grammar, fmt)
        except Exception as e:
            raise BadRequest(f"invalid JSON schema in format: {e}") from e
    raise BadRequest(f'invalid format: "{fmt}"; expected "json" or a valid JSON Schema object')


def load_spec(
    settings: Settings, view: ModelView, opts: Mapping[str, Any], *, embedding: bool
) -> LoadSpec:
    path = view.stored.model_path
    assert path is not None and view.gguf is not None
    n_ctx = int(opts["num_ctx"]) or settings.context_length
    if view.gguf.context_length:
        n_ctx = min(n_ctx, view.gguf.context_length)
    return LoadSpec(
        model_path=str(path),
        n_ctx=max(n_ctx, 64),
        n_batch=int(opts["num_batch"]) or int(DEFAULTS["num_batch"]),
        n_threads=int(opts["num_thread"]),
        n_parallel=settings.num_parallel,
        n_gpu_layers=int(opts["num_gpu"]),
        main_gpu=int(opts.get("main_gpu") or 0),
        use_mmap=bool(opts.get("use_mmap", True)),
        use_mlock=bool(opts.get("use_mlock", False)),
        embedding=view.gguf.is_embedding or embedding,
        lora_paths=tuple(str(p) for p in view.stored.adapter_paths),
        projector_path=str(view.stored.projector_paths[0]) if view.stored.projector_paths else "",
        flash_attn=settings.flash_attention,
    )


def predict_limit(num_predict: int, n_ctx: int) -> int:
    """Ollama's bound on a generation: at most ten context windows. With context shifting, an
    unbounded ``num_predict`` (negative, or 0 here too) would generate until the model ends,
    which a model stuck in a loop never does."""
    cap = 10 * n_ctx
    return cap if num_predict <= 0 or num_predict > cap else num_predict


def runner_key(spec: LoadSpec) -> str:
    """Runners are shared by model file, adapters, projector and role (generation or
    embeddings); the other load options decide whether a runner must be reloaded."""
    role = "embed" if spec.embedding else "generate"
    return f"{spec.model_path}|{','.join(spec.lora_paths)}|{spec.projector_path}|{role}"


def sampling_from(opts: Mapping[str, Any], grammar: str | None) -> SamplingParams:
    values = {k: opts[k] for k in _SAMPLING_FIELDS if k in opts}
    return SamplingParams(**values, grammar=grammar)


def prepare(
    settings: Settings,
    view: ModelView,
    label: str,
    options: Mapping[str, Any] | None,
    keep_alive: Any,
    *,
    grammar: str | None = None,
    think: bool | str | None = None,
    truncate: bool | None = None,
    shift: bool | None = None,
    embedding: bool = False,
) -> Job:
    """The job of a request. ``embedding`` loads even a chat model as an embedder (a runner of
    its own), as Ollama answers embeddings for any model."""
    opts = merge_options(view.stored.parameters, validate_options(options or {}))
    spec = load_spec(settings, view, opts, embedding=embedding)
    sampling = sampling_from(opts, grammar)
    stored = view.stored
    ref = ModelRef(
        key=runner_key(spec),
        name=stored.name.display_shortest(),
        digest=stored.entry.digest,
        details=stored.details(),
        spec=spec,
    )
    return Job(
        view=view,
        label=label,
        options=opts,
        ref=ref,
        keep_alive=keep_alive_seconds(keep_alive, settings.keep_alive),
        sampling=dataclasses.replace(
            sampling,
            shift=context_shift(shift, view),
            num_predict=predict_limit(sampling.num_predict, spec.n_ctx),
        ),
        think=think_value(think, view.capabilities),
        truncate=truncate is not False,
    )


def check_logprobs(top_logprobs: int | None) -> None:
    """Ollama's range for ``top_logprobs`` (checked before anything else of the request)."""
    if top_logprobs is not None and not 0 <= top_logprobs <= MAX_TOP:
        raise BadRequest(f"top_logprobs must be between 0 and {MAX_TOP}")


def with_logprobs(job: Job, logprobs: bool | None, top_logprobs: int | None) -> Job:
    """A job that reports each token's log probability (and ``top_logprobs`` alternatives)."""
    if not logprobs:
        return job
    sampling = dataclasses.replace(job.sampling, logprobs=True, top_logprobs=top_logprobs or 0)
    return dataclasses.replace(job, sampling=sampling)


def with_grammar(job: Job, grammar: str | None) -> Job:
    if grammar is None:
        return job
    return dataclasses.replace(job, sampling=dataclasses.replace(job.sampling, grammar=grammar))


def check_generation(job: Job, endpoint: str) -> None:
    """Ollama's 400s for a generation the model cannot do."""
    if job.spec.embedding:
        raise BadRequest(f'"{job.label}" does not support {endpoint}')
    if think_on(job.think) and "thinking" not in job.view.capabilities:
        raise BadRequest(f'"{job.label}" does not support thinking')
