"""A deterministic stand-in for :class:`corral.engine.llamacpp.LlamaEngine` (same interface),
for unit tests of the runner, the scheduler and the server without a real model.

Tokens are characters: ``tokenize`` gives one token per Unicode character (``ord(c) + 3``),
preceded by BOS (1) when ``add_special``; EOS (2) is the end-of-generation token; special
tokens render as ``b""``. ``parse_special`` is accepted and ignored.

What a request generates is decided once, when it is admitted, from the prompt *text* (the
detokenized prompt tokens, i.e. the rendered template) by :meth:`FakeEngine.reply_for`:

* ``script`` a callable ``(prompt_text) -> reply``: its result;
* ``script`` a mapping ``{substring: reply}``: the reply of the first key (in order) that occurs
  in the prompt text — e.g. ``{"TOOLCALL": '{"name": "get_weather", "arguments": {}}'}``;
* otherwise ``default_reply``.

In a runner process (``CORRAL_ENGINE=fake``) the script comes from the environment variable
``CORRAL_FAKE_SCRIPT``, a JSON object ``{substring: reply}`` where a reply is a string or
``{"endless": text}``, so process-level tests can ask for long or endless answers.

A reply ``str`` is emitted one character per step and then ends with EOS (reason ``"stop"``);
``Endless(text)`` repeats ``text`` forever, so only ``num_predict`` (``"length"``), a full context
(``"length"``) or :meth:`~FakeEngine.cancel` end it. Scheduling is the real engine's: ``n_parallel``
slots, FIFO queue, prompt prefill chunked by ``n_batch`` (a step that completes a prompt also
yields its first token), and the same prefix-reuse placement, so ``cached_tokens`` and
``prompt_eval_count`` behave like the real thing. Durations are synthetic and deterministic
(``prompt_ns_per_token`` / ``eval_ns_per_token``); ``step_delay`` makes each step sleep, for
timing-sensitive streaming and cancellation tests. With ``logprobs``, every token's log
probabilities come from :data:`FAKE_LOGITS` through the real log-softmax. ``embed`` returns
unnormalised character-count
vectors of ``embed_dim`` floats (only for ``LoadSpec(embedding=True)``, like the real engine).
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from corral.engine.logprobs import from_logits
from corral.engine.slots import Slot, plan_placement
from corral.engine.types import (
    DoneEvent,
    EngineEvent,
    EngineLoadError,
    GenerateRequest,
    LoadSpec,
    Logprob,
    TokenEvent,
)

BOS = 1
EOS = 2
_OFFSET = 3
N_VOCAB = 0x110000 + _OFFSET
# The fake's "logits" at every position: the chosen character first, then the next 15 code
# points, each half a nat less likely; the real log-softmax runs over them.
FAKE_LOGITS = np.array([4.0 - 0.5 * j for j in range(16)], dtype=np.float32)


def fake_logprob(token: int, top: int) -> Logprob:
    def piece(j: int) -> bytes:
        return chr(token - _OFFSET + j).encode(errors="replace")

    lp = from_logits(FAKE_LOGITS, 0, top, piece)
    return Logprob(lp.logprob, tuple((token + j, p, v) for j, p, v in lp.top))


DEFAULT_REPLY = "The quick brown fox jumps over the lazy dog."


@dataclass(frozen=True)
class Endless:
    """A reply that repeats ``text`` until ``num_predict``, the context or a cancel ends it."""

    text: str


Reply = str | Endless
Script = Mapping[str, Reply] | Callable[[str], Reply]


@dataclass
class _Active:
    req: GenerateRequest
    slot: Slot
    reply: Reply
    todo: list[int]
    cached: int
    pending: int | None = None
    prompt_evaluated: int = 0
    generated: int = 0
    prompt_ns: int = 0
    eval_ns: int = 0


class FakeEngine:
    """Same interface as ``LlamaEngine``; see the module docstring for the behaviour."""

    def __init__(
        self,
        spec: LoadSpec,
        script: Script | None = None,
        *,
        default_reply: Reply = DEFAULT_REPLY,
        step_delay: float = 0.0,
        embed_dim: int = 16,
        prompt_ns_per_token: int = 100_000,
        eval_ns_per_token: int = 1_000_000,
        load_error: str | None = None,
    ) -> None:
        if load_error is not None:
            raise EngineLoadError(load_error)
        self.spec = spec
        self.script = script if script is not None else script_from_env()
        self.default_reply = default_reply
        self.step_delay = step_delay
        self.embed_dim = embed_dim
        self.prompt_ns_per_token = prompt_ns_per_token
        self.eval_ns_per_token = eval_ns_per_token
        self.n_ctx = max(8, spec.n_ctx)
        self.n_vocab = N_VOCAB
        self.n_parallel = max(1, spec.n_parallel)
        self.n_batch = max(1, spec.n_batch)
        self.embedding = spec.embedding
        self._slots = [Slot(i) for i in range(self.n_parallel)]
        self._queue: deque[GenerateRequest] = deque()
        self._active: dict[int, _Active] = {}
        self._cancelled: set[int] = set()
        self._early: list[EngineEvent] = []
        self._tick = 0
        self.threads = 0  # set by set_threads; 0: never set
        self.steps = 0  # number of step() calls that did work, for tests
        self.closed = False

    # ----------------------------------------------------------------- model facts & tokens

    def model_info(self) -> dict[str, Any]:
        return {
            "architecture": "fake",
            "n_ctx_train": self.n_ctx,
            "n_ctx": self.n_ctx,
            "n_parallel": self.n_parallel,
            "n_batch": self.n_batch,
            "n_embd": self.embed_dim,
            "n_vocab": self.n_vocab,
            "bos_token_id": BOS,
            "eos_token_id": EOS,
            "add_bos_token": True,
            "embedding": self.embedding,
        }

    def tokenize(
        self, text: str, *, add_special: bool = True, parse_special: bool = True
    ) -> list[int]:
        tokens = [ord(c) + _OFFSET for c in text]
        return [BOS, *tokens] if add_special else tokens

    def detokenize(self, tokens: Sequence[int]) -> str:
        return "".join(chr(t - _OFFSET) for t in tokens if t >= _OFFSET)

    def token_piece(self, token: int) -> bytes:
        return chr(token - _OFFSET).encode() if token >= _OFFSET else b""

    def is_eog(self, token: int) -> bool:
        return token == EOS

    def set_threads(self, n: int) -> None:
        """Recorded only (the fake computes nothing): ``threads`` is the last value set."""
        self.threads = n

    def reply_for(self, prompt_text: str) -> Reply:
        """What a request with this prompt text generates (see the module docstring)."""
        script = self.script
        if callable(script):
            return script(prompt_text)
        if script is not None:
            for key, reply in script.items():
                if key in prompt_text:
                    return reply
        return self.default_reply

    # ----------------------------------------------------------------- requests

    def submit(self, req: GenerateRequest) -> None:
        rid = req.request_id
        if rid in self._active or any(q.request_id == rid for q in self._queue):
            raise ValueError(f"request id {rid} is already in use")
        error = None
        if self.embedding:
            error = "this model only supports embeddings"
        elif not req.prompt_tokens:
            error = "the prompt is empty"
        elif len(req.prompt_tokens) > self.n_ctx:
            error = (
                f"the prompt is {len(req.prompt_tokens)} tokens, longer than the context "
                f"window of {self.n_ctx} tokens"
            )
        if error is not None:
            self._early.append(_done(rid, "error", error))
        else:
            self._queue.append(req)

    def cancel(self, request_id: int) -> None:
        self._cancelled.add(request_id)

    def has_work(self) -> bool:
        return bool(self._queue or self._active or self._early or self._cancelled)

    def step(self) -> list[EngineEvent]:
        events, self._early = self._early, []
        if self._cancelled:
            ids, self._cancelled = self._cancelled, set()
            for req in [q for q in self._queue if q.request_id in ids]:
                self._queue.remove(req)
                events.append(_done(req.request_id, "cancel"))
            for rid in ids:
                if rid in self._active:
                    events.append(self._release(self._active[rid], "cancel"))
        self._admit()
        if not self._active:
            return events
        self.steps += 1
        if self.step_delay > 0:
            time.sleep(self.step_delay)
        budget = self.n_batch
        ready: list[_Active] = []
        for act in list(self._active.values()):
            if act.pending is None:
                continue
            if len(act.slot.tokens) >= self.n_ctx:
                events.append(self._release(act, "length"))
                continue
            act.slot.tokens.append(act.pending)
            act.pending = None
            act.eval_ns += self.eval_ns_per_token
            budget -= 1
            ready.append(act)
        for act in self._active.values():
            if act.pending is not None or not act.todo or budget <= 0 or act in ready:
                continue
            chunk = act.todo[:budget]
            del act.todo[: len(chunk)]
            act.slot.tokens.extend(chunk)
            act.prompt_evaluated += len(chunk)
            act.prompt_ns += len(chunk) * self.prompt_ns_per_token
            budget -= len(chunk)
            if not act.todo:
                ready.append(act)
        for act in ready:
            reason = self._generate(act, events)
            if reason is not None:
                events.append(self._release(act, reason))
        return events

    def _generate(self, act: _Active, events: list[EngineEvent]) -> str | None:
        reply, i = act.reply, act.generated
        act.generated += 1
        if isinstance(reply, Endless):
            text = reply.text or " "
            char: str | None = text[i % len(text)]
        else:
            char = reply[i] if i < len(reply) else None
        if char is None:
            return "stop"
        token = ord(char) + _OFFSET
        logprob = None
        if act.req.sampling.logprobs:
            logprob = fake_logprob(token, act.req.sampling.top_logprobs)
        events.append(TokenEvent(act.req.request_id, token, char.encode(), logprob))
        act.pending = token
        limit = act.req.sampling.num_predict
        return "length" if limit > 0 and act.generated >= limit else None

    def _admit(self) -> None:
        while self._queue:
            req = self._queue[0]
            place = plan_placement(self._slots, req.prompt_tokens, can_copy=True)
            if place is None:
                return
            self._queue.popleft()
            slot = self._slots[place.slot]
            slot.tokens = list(req.prompt_tokens[: place.reuse])
            self._tick += 1
            slot.busy, slot.last_used = True, self._tick
            reply = self.reply_for(self.detokenize(req.prompt_tokens))
            self._active[req.request_id] = _Active(
                req=req,
                slot=slot,
                reply=reply,
                todo=list(req.prompt_tokens[place.reuse :]),
                cached=place.reuse,
            )

    def _release(self, act: _Active, reason: str) -> DoneEvent:
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
        )

    # ----------------------------------------------------------------- embeddings & teardown

    def tokenize_media(self, text: str, images: list[dict[str, Any]]) -> list[int]:
        raise ValueError("this model does not support images")

    def embed(self, inputs: Sequence[Sequence[int]]) -> list[list[float]]:
        if not self.embedding:
            raise ValueError("this model was not loaded for embeddings")
        out: list[list[float]] = []
        for toks in inputs:
            if not toks:
                raise ValueError("cannot embed an empty input")
            vec = [0.0] * self.embed_dim
            for t in toks:
                vec[t % self.embed_dim] += 1.0
            out.append(vec)
        return out

    def close(self) -> None:
        self.closed = True


def script_from_env() -> Script | None:
    """The script in ``CORRAL_FAKE_SCRIPT`` (see the module docstring), if any."""
    raw = os.environ.get("CORRAL_FAKE_SCRIPT")
    if not raw:
        return None
    script: dict[str, Reply] = {}
    for key, value in json.loads(raw).items():
        script[key] = Endless(value["endless"]) if isinstance(value, dict) else str(value)
    return script


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
