"""The batch engine a runner process drives: llama.cpp through llama-cpp-python's low-level API.

One thread owns a :class:`LlamaEngine` and calls :meth:`~LlamaEngine.step` in a loop. Each step
is one ``llama_decode`` carrying one token for every generating slot plus chunks of prompt for
newly admitted requests, never more than ``n_batch`` tokens (continuous batching over
``n_parallel`` sequences). Requests wait FIFO for a slot; a slot keeps its KV cells after its
request ends, and a new request reuses the longest cached prefix (see :mod:`.slots`), so a
follow-up turn only evaluates its new suffix.

The KV cache holds ``n_ctx × n_parallel`` cells (Ollama's sizing), so every slot can always grow
to ``n_ctx``. By default each sequence has its own stream (``kv_unified=False``): attention only
reads the sequence's own cells, and 4-sequence steps measured as fast as or faster than with one
unified buffer (whose attention spans everyone's cells). A prefix is copied between streams by a
whole-stream copy, paid in the next decode (~15-20 ms for a 4,096-cell SmolLM2 stream, the cost
of evaluating 3-4 of its prompt tokens on 2 cores), so only prefixes of at least
:func:`min_stream_copy` tokens are copied; ``kv_unified=True`` shares one buffer instead (free
copies that share cells). With ``LoadSpec.flash_attn=True`` a request's output is bit-identical
whatever else runs in the batch; off, a greedy near-tie can occasionally resolve differently
under load. Unset on a CPU-only build, it is chosen by timing both on this CPU
(:mod:`.tuning`): faster one way on some CPUs, the other way on others. When a slot reaches
``n_ctx`` the context is shifted as Ollama does: keep ``num_keep`` tokens, drop half the rest.

Only batch positions marked for logits are ever sampled and a batch never exceeds ``n_batch``:
llama.cpp aborts the whole process on either mistake.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from corral.engine.embedding import EMBED_MAX_SEQ, check_inputs, embed_batches, pooling_for
from corral.engine.logprobs import from_logits
from corral.engine.media import MediaPrompt, image_positions, prepare
from corral.engine.native import (
    Batch,
    ContextConfig,
    L,
    Vocab,
    apply_loras,
    init_backend,
    load_model,
    logits_row,
    meta_str,
    new_context,
    resolve_threads,
)
from corral.engine.sampling import Candidates, GrammarInitError, RequestSampler
from corral.engine.slots import Slot, plan_placement
from corral.engine.tuning import choose_flash_attn
from corral.engine.types import DoneEvent, EngineEvent, GenerateRequest, LoadSpec, TokenEvent
from corral.engine.vision import Vision


def min_stream_copy(n_ctx: int) -> int:
    """Shortest prefix worth a whole-stream copy between split caches: a copy's cost grows with
    the stream (``n_ctx`` cells) while a token's evaluation cost grows with the model, so the
    smallest model at 4,096 cells (break-even ~4 tokens, measured) bounds it from above."""
    return max(8, n_ctx // 512)


@dataclass
class _Active:
    """A request that holds a slot."""

    req: GenerateRequest
    slot: Slot
    sampler: RequestSampler
    todo: list[int]  # tokens to evaluate before the next sample (prompt suffix, or re-evaluation)
    n_keep: int
    cached: int
    pending: int | None = None  # the last sampled token, not yet in the KV cache
    reprocessing: bool = False  # todo is history re-evaluated after a shift, not prompt
    prompt_evaluated: int = 0
    generated: int = 0
    prompt_ns: int = 0
    eval_ns: int = 0
    finish: tuple[str, str | None] | None = field(default=None)
    media: MediaPrompt | None = None  # a vision request's images


@dataclass
class _Row:
    """What one request put into the current batch."""

    act: _Active
    tokens: list[int]
    out_index: int  # batch index to sample from, -1 when no logits were requested
    is_prompt: bool


class LlamaEngine:
    """Continuous-batching generation (and pooled embeddings) over one llama.cpp context."""

    def __init__(self, spec: LoadSpec, *, kv_unified: bool = False) -> None:
        self._closed = False
        self._ctx: Any = None
        self._model: Any = None
        self._vision: Vision | None = None
        init_backend()
        self.spec = spec
        self._model = load_model(
            spec.model_path,
            n_gpu_layers=spec.n_gpu_layers,
            main_gpu=spec.main_gpu,
            use_mmap=spec.use_mmap,
            use_mlock=spec.use_mlock,
        )
        try:
            self._setup(spec, kv_unified)
        except BaseException:
            self.close()
            raise

    def _setup(self, spec: LoadSpec, kv_unified: bool) -> None:
        model = self._model
        self.n_ctx_train = int(L.llama_model_n_ctx_train(model))
        n_ctx = spec.n_ctx if spec.n_ctx > 0 else self.n_ctx_train
        if self.n_ctx_train > 0:
            n_ctx = min(n_ctx, self.n_ctx_train)
        self.n_ctx: int = max(n_ctx, 8)
        self.n_parallel: int = max(1, spec.n_parallel)
        self.n_threads = resolve_threads(spec.n_threads)
        self.embedding = spec.embedding
        self.flash_attn: bool | None = spec.flash_attn
        if spec.embedding:
            n_batch = max(spec.n_batch, self.n_ctx)
            cfg = ContextConfig(
                n_ctx=n_batch,
                n_batch=n_batch,
                n_seq_max=EMBED_MAX_SEQ,
                n_threads=self.n_threads,
                embedding=True,
                pooling_type=pooling_for(model),
                flash_attn=spec.flash_attn,
            )
        else:
            n_batch = max(self.n_parallel, min(spec.n_batch, self.n_ctx * self.n_parallel))
            flash_attn = spec.flash_attn
            if flash_attn is None and not L.llama_supports_gpu_offload():
                n_vocab = int(L.llama_vocab_n_tokens(L.llama_model_get_vocab(model)))
                flash_attn = choose_flash_attn(model, spec.model_path, self.n_threads, n_vocab)
            self.flash_attn = flash_attn
            cfg = ContextConfig(
                n_ctx=self.n_ctx * self.n_parallel,
                n_batch=n_batch,
                n_seq_max=self.n_parallel,
                n_threads=self.n_threads,
                kv_unified=kv_unified,
                flash_attn=flash_attn,
            )
        self._ctx = new_context(model, cfg)
        if not spec.embedding:  # llama.cpp may round the per-sequence size; never exceed it
            self.n_ctx = min(self.n_ctx, int(L.llama_n_ctx_seq(self._ctx)))
        apply_loras(model, self._ctx, spec.lora_paths)
        self.n_batch: int = int(L.llama_n_batch(self._ctx))
        self._mem: Any = L.llama_get_memory(self._ctx)
        self._can_shift = bool(self._mem) and bool(L.llama_memory_can_shift(self._mem))
        self._unified = kv_unified
        self._min_copy = min_stream_copy(self.n_ctx)
        self._vocab = Vocab(model)
        self.n_vocab: int = self._vocab.n_vocab
        self._batch = Batch(self.n_batch)
        self._candidates: Candidates | None = None
        self._slots = [Slot(i) for i in range(self.n_parallel)]
        self._queue: deque[tuple[GenerateRequest, RequestSampler]] = deque()
        self._active: dict[int, _Active] = {}
        self._cancelled: set[int] = set()
        self._early: list[EngineEvent] = []
        self._tick = 0
        self._media: dict[int, MediaPrompt] = {}  # queued vision requests' prompts
        self.image_tokens = 0
        if spec.projector_path and not spec.embedding:
            self._vision = Vision(model, spec.projector_path, self.n_threads)
            self.image_tokens = image_positions(self._vision)

    # ----------------------------------------------------------------- model facts & tokens

    def model_info(self) -> dict[str, Any]:
        m = self._model
        return {
            "architecture": meta_str(m, "general.architecture"),
            "n_ctx_train": self.n_ctx_train,
            "n_ctx": self.n_ctx,
            "n_parallel": self.n_parallel,
            "n_batch": self.n_batch,
            "n_threads": self.n_threads,
            "n_embd": int(L.llama_model_n_embd(m)),
            "n_layer": int(L.llama_model_n_layer(m)),
            "n_head": int(L.llama_model_n_head(m)),
            "n_head_kv": int(L.llama_model_n_head_kv(m)),
            "n_vocab": self.n_vocab,
            "n_params": int(L.llama_model_n_params(m)),
            "size": int(L.llama_model_size(m)),
            "bos_token_id": self._vocab.bos(),
            "eos_token_id": self._vocab.eos(),
            "eot_token_id": self._vocab.eot(),
            "add_bos_token": self._vocab.add_bos(),
            "has_encoder": bool(L.llama_model_has_encoder(m)),
            "embedding": self.embedding,
            "pooling_type": int(L.llama_pooling_type(self._ctx)),
            "can_shift": self._can_shift,
            "flash_attn": self.flash_attn,
            "image_tokens": self.image_tokens,
        }

    def tokenize(
        self, text: str, *, add_special: bool = True, parse_special: bool = True
    ) -> list[int]:
        return self._vocab.tokenize(text, add_special=add_special, parse_special=parse_special)

    def detokenize(self, tokens: Sequence[int]) -> str:
        if any(t < 0 or t >= self.n_vocab for t in tokens):  # llama.cpp aborts on those
            raise ValueError("a token id outside the model's vocabulary")
        return self._vocab.detokenize(tokens)

    def token_piece(self, token: int) -> bytes:
        return self._vocab.piece(token)

    def is_eog(self, token: int) -> bool:
        return self._vocab.is_eog(token)

    def set_threads(self, n: int) -> None:
        """Compute threads from the next decode on (the server's CPU budget across runners:
        fewer while other runners are busy, all of them again when this one is alone)."""
        n = max(1, n)
        if n != self.n_threads and self._ctx is not None:
            L.llama_set_n_threads(self._ctx, n, n)
            self.n_threads = n

    # ----------------------------------------------------------------- requests

    def submit(self, req: GenerateRequest) -> None:
        """Queue a request; it is admitted to a free slot at the next :meth:`step`. Problems
        with the request itself come back as a ``DoneEvent(reason="error")``."""
        rid = req.request_id
        if rid in self._active or any(q.request_id == rid for q, _ in self._queue):
            raise ValueError(f"request id {rid} is already in use")
        media, error = None, None
        if req.media is not None:
            try:
                media = self._prepare(*req.media)
                req = dataclasses.replace(req, prompt_tokens=tuple(media.tokens))
            except ValueError as e:
                error = str(e)
        if error is None:
            error = self._validate(req.prompt_tokens, images=media is not None)
        if error is None:
            try:
                sampler = RequestSampler(
                    req.sampling,
                    vocab=self._vocab.ptr,
                    n_vocab=self.n_vocab,
                    n_ctx=self.n_ctx,
                    candidates=self._grammar_candidates(req),
                )
            except GrammarInitError as e:
                error = str(e)
        if error is not None:
            if media is not None:
                media.free()
            self._early.append(_done(rid, "error", error=error))
            return
        self._queue.append((req, sampler))
        if media is not None:
            self._media[rid] = media

    def tokenize_media(self, text: str, images: Sequence[Mapping[str, Any]]) -> list[int]:
        """Token ids of a vision prompt (an image's positions hold placeholder ids);
        ``ValueError`` for a model without a projector or a bad image."""
        media = self._prepare(text, images)
        media.free()
        return media.tokens

    def _prepare(self, text: str, images: Sequence[Mapping[str, Any]]) -> MediaPrompt:
        if self._vision is None:
            raise ValueError("this model does not support images")
        return prepare(self._vision, text, images)

    def _validate(self, prompt: Sequence[int], *, images: bool = False) -> str | None:
        if self.embedding:
            return "this model only supports embeddings"
        if not prompt:
            return "the prompt is empty"
        if len(prompt) > self.n_ctx:
            return (
                f"the prompt is {len(prompt)} tokens, longer than the context window of "
                f"{self.n_ctx} tokens"
            )
        if (min(prompt) < 0 and not images) or max(prompt) >= self.n_vocab:
            return "the prompt holds a token id outside the model's vocabulary"
        return None

    def _grammar_candidates(self, req: GenerateRequest) -> Candidates | None:
        """The shared full-vocabulary candidate buffer, made on the first grammar request."""
        if not req.sampling.grammar:
            return None
        if self._candidates is None:
            self._candidates = Candidates(self.n_vocab)
        return self._candidates

    def cancel(self, request_id: int) -> None:
        """The request ends with ``DoneEvent(reason="cancel")`` at the next step."""
        self._cancelled.add(request_id)

    def has_work(self) -> bool:
        return bool(self._queue or self._active or self._early or self._cancelled)

    # ----------------------------------------------------------------- the step

    def step(self) -> list[EngineEvent]:
        """Admit what fits, run one decode, sample; returns this step's events."""
        events, self._early = self._early, []
        self._apply_cancels(events)
        self._admit()
        rows = self._fill_batch(events)
        if not rows:
            return events
        t0 = time.perf_counter_ns()
        rc = int(L.llama_decode(self._ctx, self._batch.raw))
        if rc != 0:
            for row in rows:
                self._drop_cache(row.act.slot)
                row.act.finish = ("error", f"llama_decode failed with status {rc}")
        else:
            for row in rows:
                self._commit(row)
            for row in rows:
                if row.out_index >= 0:
                    self._sample(row, events)
        elapsed = time.perf_counter_ns() - t0
        for row in rows:
            if row.is_prompt:
                row.act.prompt_ns += elapsed
            else:
                row.act.eval_ns += elapsed
        for row in rows:
            if row.act.finish is not None:
                reason, error = row.act.finish
                events.append(self._release(row.act, reason, error))
        return events

    def _apply_cancels(self, events: list[EngineEvent]) -> None:
        if not self._cancelled:
            return
        ids, self._cancelled = self._cancelled, set()
        for req, sampler in list(self._queue):
            if req.request_id in ids:
                self._queue.remove((req, sampler))
                sampler.close()
                if (media := self._media.pop(req.request_id, None)) is not None:
                    media.free()
                events.append(_done(req.request_id, "cancel"))
        for rid in ids:
            act = self._active.get(rid)
            if act is not None:
                events.append(self._release(act, "cancel", None))

    def _admit(self) -> None:
        while self._queue:
            req, sampler = self._queue[0]
            prompt = req.prompt_tokens
            place = plan_placement(
                self._slots, prompt, min_copy=1 if self._unified else self._min_copy
            )
            if place is None:
                return
            self._queue.popleft()
            slot = self._slots[place.slot]
            media = self._media.pop(req.request_id, None)
            reuse = place.reuse if media is None else media.whole_images(place.reuse)
            if place.copy_from is not None:
                self._copy_prefix(self._slots[place.copy_from], slot, reuse, prompt)
            elif not L.llama_memory_seq_rm(self._mem, slot.index, reuse, -1):
                self._drop_cache(slot)
                reuse = 0
            else:
                slot.trim(reuse)
            self._tick += 1
            slot.busy, slot.last_used = True, self._tick
            sampler.accept_prompt(prompt if media is None else [t for t in prompt if t >= 0])
            keep = req.sampling.num_keep
            n_keep = len(prompt) if keep < 0 else keep
            if self._vocab.add_bos():
                n_keep += 1
            act = _Active(
                req=req,
                slot=slot,
                sampler=sampler,
                todo=list(prompt[reuse:]),
                n_keep=max(0, min(n_keep, self.n_ctx - 1)),
                cached=reuse,
                media=media,
            )
            self._active[req.request_id] = act

    def _copy_prefix(self, src: Slot, dst: Slot, n: int, prompt: Sequence[int]) -> None:
        """Give ``dst`` the KV of ``src``'s first ``n`` positions."""
        mem = self._mem
        if self._unified:  # cells become shared: metadata only
            L.llama_memory_seq_rm(mem, dst.index, -1, -1)
            L.llama_memory_seq_cp(mem, src.index, dst.index, 0, n)
            dst.shared = n
            src.shared = max(src.shared, n)
        else:  # separate streams: only whole-stream copies exist (a partial one aborts)
            L.llama_memory_seq_cp(mem, src.index, dst.index, -1, -1)
            L.llama_memory_seq_rm(mem, dst.index, n, -1)
            dst.shared = 0
        dst.tokens = list(prompt[:n])

    def _fill_batch(self, events: list[EngineEvent]) -> list[_Row]:
        batch = self._batch
        batch.clear()
        rows: list[_Row] = []
        for act in list(self._active.values()):  # one token for every generating slot
            if act.pending is None:
                continue
            full = len(act.slot.tokens) >= self.n_ctx
            if full and (not act.req.sampling.shift or not self._shift(act)):
                events.append(self._release(act, "length", None))
                continue
            if act.pending is None:  # the shift turned it into a re-evaluation
                continue
            tokens = [act.pending]
            idx = batch.add(tokens, len(act.slot.tokens), act.slot.index, True)
            rows.append(_Row(act, tokens, idx, False))
        for act in list(self._active.values()):  # then prompt chunks, first come first served
            if act.pending is not None or not act.todo or batch.free_space == 0:
                continue
            room = batch.free_space
            if act.media is not None and not act.reprocessing:
                if not self._eval_images(act, events):
                    continue
                room = min(room, act.media.text_until_image(len(act.slot.tokens)))
            chunk = act.todo[:room]
            last = len(chunk) == len(act.todo)
            idx = batch.add(chunk, len(act.slot.tokens), act.slot.index, last)
            rows.append(_Row(act, chunk, idx if last else -1, not act.reprocessing))
        return rows

    def _eval_images(self, act: _Active, events: list[EngineEvent]) -> bool:
        """Evaluate the images at the front of a vision request's prompt, each whole (their
        own decodes, before this step's batch); False when one fails (the request ends)."""
        media, slot, vision = act.media, act.slot, self._vision
        assert media is not None and vision is not None
        while act.todo and (image := media.image_at(len(slot.tokens))) is not None:
            index, n_pos = image
            t0 = time.perf_counter_ns()
            try:
                vision.eval_image(
                    self._ctx, media.prompt, index, slot.index, len(slot.tokens), self.n_batch
                )
            except Exception as e:  # the request fails, not the engine
                self._drop_cache(slot)
                events.append(self._release(act, "error", f"the image could not be used: {e}"))
                return False
            slot.tokens.extend(act.todo[:n_pos])
            del act.todo[:n_pos]
            act.prompt_evaluated += n_pos
            act.prompt_ns += time.perf_counter_ns() - t0
        return True

    def _commit(self, row: _Row) -> None:
        act = row.act
        act.slot.tokens.extend(row.tokens)
        if act.pending is not None:
            act.pending = None
        else:
            del act.todo[: len(row.tokens)]
            if row.is_prompt:
                act.prompt_evaluated += len(row.tokens)
            if not act.todo:
                act.reprocessing = False

    def _sample(self, row: _Row, events: list[EngineEvent]) -> None:
        act = row.act
        try:
            token = act.sampler.sample(self._ctx, row.out_index)
        except Exception as e:  # a sampler failure costs this request, not the engine
            act.finish = ("error", f"sampling failed: {e}")
            return
        act.generated += 1
        if self._vocab.is_eog(token):
            act.finish = ("stop", None)
            return
        logprob = None
        if act.req.sampling.logprobs:
            logits = logits_row(self._ctx, row.out_index, self.n_vocab)
            logprob = from_logits(logits, token, act.req.sampling.top_logprobs, self._vocab.piece)
        events.append(TokenEvent(act.req.request_id, token, self._vocab.piece(token), logprob))
        act.pending = token
        limit = act.req.sampling.num_predict
        if limit > 0 and act.generated >= limit:
            act.finish = ("length", None)

    def _shift(self, act: _Active) -> bool:
        """Make room in a full slot (Ollama's shift: keep n_keep, drop half of the rest).
        False when this memory cannot shift."""
        slot = act.slot
        n_past, n_keep = len(slot.tokens), act.n_keep
        discard = max(max((self.n_ctx - n_keep) // 2, 1) - (self.n_ctx - n_past), 1)
        if not self._can_shift or n_keep + discard > n_past:
            return False
        if slot.shared <= n_keep + discard and L.llama_memory_seq_rm(
            self._mem, slot.index, n_keep, n_keep + discard
        ):
            L.llama_memory_seq_add(self._mem, slot.index, n_keep + discard, n_past, -discard)
            del slot.tokens[n_keep : n_keep + discard]
            slot.shared = min(slot.shared, n_keep)
            return True
        # Cells past n_keep are shared with another slot (one position per cell): moving them
        # would corrupt that slot, so drop them here and evaluate the kept tail again (not
        # possible for an image's positions: such a request ends as if full).
        kept = slot.tokens[n_keep + discard :]
        if min(kept, default=0) < 0:
            return False
        if not L.llama_memory_seq_rm(self._mem, slot.index, n_keep, -1):
            return False
        slot.trim(n_keep)
        assert act.pending is not None
        act.todo = [*kept, act.pending]
        act.pending = None
        act.reprocessing = True
        return True

    def _release(self, act: _Active, reason: str, error: str | None) -> DoneEvent:
        act.sampler.close()
        if act.media is not None:
            act.media.free()
        act.slot.busy = False
        self._active.pop(act.req.request_id, None)
        return DoneEvent(
            request_id=act.req.request_id,
            reason=reason,
            prompt_eval_count=act.prompt_evaluated,
            prompt_eval_duration_ns=act.prompt_ns,
            eval_count=act.generated,
            eval_duration_ns=act.eval_ns,
            cached_tokens=act.cached,
            error=error,
        )

    def _drop_cache(self, slot: Slot) -> None:
        L.llama_memory_seq_rm(self._mem, slot.index, -1, -1)
        slot.clear()

    # ----------------------------------------------------------------- embeddings

    def embed(self, inputs: Sequence[Sequence[int]]) -> list[list[float]]:
        """Pooled, unnormalised embeddings of token sequences, many per decode."""
        if not self.embedding:
            raise ValueError("this model was not loaded for embeddings")
        check_inputs(inputs, n_batch=self.n_batch, n_vocab=self.n_vocab)
        return embed_batches(self._model, self._ctx, self._batch, inputs)

    # ----------------------------------------------------------------- teardown

    def close(self) -> None:
        """Free every native object (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for act in getattr(self, "_active", {}).values():
            act.sampler.close()
        for _, sampler in getattr(self, "_queue", ()):
            sampler.close()
        for media in getattr(self, "_media", {}).values():
            media.free()
        if self._vision is not None:
            self._vision.close()
        batch = getattr(self, "_batch", None)
        if batch is not None:
            batch.free()
        if self._ctx is not None:
            L.llama_free(self._ctx)
            self._ctx = None
        if self._model is not None:
            L.llama_model_free(self._model)
            self._model = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


def _done(request_id: int, reason: str, error: str | None = None) -> DoneEvent:
    return DoneEvent(
        request_id=request_id,
        reason=reason,
        prompt_eval_count=0,
        prompt_eval_duration_ns=0,
        eval_count=0,
        eval_duration_ns=0,
        error=error,
    )
