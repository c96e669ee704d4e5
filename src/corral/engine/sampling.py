"""Per-request token sampling: a llama.cpp sampler chain built from Ollama's options, plus an
optional GBNF grammar applied the cheap way.

Chain order (llama.cpp's common order, which Ollama uses): penalties, top_k, typical_p, top_p,
min_p, temperature, then dist(seed). ``temperature <= 0`` gives greedy; mirostat 1/2 replace
top_k..min_p and dist. Neutral stages are left out. ``tfs_z``/``penalize_newline`` have no
llama.cpp equivalent and are not part of :class:`SamplingParams`.

Grammar: applying a grammar to the whole vocabulary costs 10 ms to several hundred ms per token
(inside a JSON string nearly every token is a partial match that must be walked). So the token
is first sampled with the normal chain and only that token is checked against the grammar. When
the grammar rejects it, the grammar is applied to the ``TOP_M`` highest logits only and the
chain resamples among those; only if none of them is allowed is the grammar applied to the whole
vocabulary (llama.cpp's ``common_sampler`` order). Greedy output is exactly grammar-then-argmax
whenever an allowed token is among the top ``TOP_M``; sampling differs from grammar-first only by
the probability mass of allowed tokens outside the top ``TOP_M`` (top_k is at most ``TOP_M`` in
practice). Either way the result satisfies the grammar, and the grammar and the chain both
accept the final token.
"""

from __future__ import annotations

import ctypes
import math
import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from corral.engine.native import L
from corral.engine.types import SamplingParams

_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])
_RANDOM_SEED = 0xFFFFFFFF  # llama.cpp's LLAMA_DEFAULT_SEED: "pick a random seed"
TOP_M = 256  # candidates a rejected token is resampled from before the full-vocabulary fallback


class GrammarInitError(ValueError):
    """A GBNF grammar llama.cpp could not parse."""


def resolve_seed(seed: int) -> int:
    """The 32-bit seed to use: a fresh random one for ``seed < 0`` (an unseeded llama.cpp
    sampler repeats itself across processes, so corral always seeds explicitly)."""
    if seed < 0:
        return random.SystemRandom().randrange(0, _RANDOM_SEED)
    value = seed & 0xFFFFFFFF
    return value if value != _RANDOM_SEED else _RANDOM_SEED - 1


class Candidates:
    """Reusable ``llama_token_data_array`` buffers (engine-owned: the engine is single-threaded,
    so every grammar-constrained request can share them): the whole vocabulary, and the
    ``TOP_M`` highest logits."""

    def __init__(self, n_vocab: int, top_m: int = TOP_M) -> None:
        self.n_vocab = n_vocab
        self.top_m = min(top_m, n_vocab)
        self._full, self.full = self._make(n_vocab)
        self._top, self.top = self._make(self.top_m)
        self._ids = np.arange(n_vocab, dtype=np.int32)

    @staticmethod
    def _make(n: int) -> tuple[npt.NDArray[Any], Any]:
        buf: npt.NDArray[Any] = np.zeros(n, dtype=_TOKEN_DATA)
        data = buf.ctypes.data_as(ctypes.POINTER(L.llama_token_data))
        return buf, L.llama_token_data_array(data, n, -1, False)

    def _reset(self, buf: npt.NDArray[Any], array: Any) -> Any:
        array.data = buf.ctypes.data_as(ctypes.POINTER(L.llama_token_data))
        array.size = len(buf)
        array.selected = -1
        array.sorted = False
        return ctypes.byref(array)

    def load_full(self, logits: Any) -> Any:
        """Every token with its logit (from a ``float *`` of n_vocab); returns the array ref."""
        view = np.ctypeslib.as_array(logits, (self.n_vocab,))
        self._full["id"] = self._ids
        self._full["logit"] = view
        self._full["p"] = 0.0
        return self._reset(self._full, self.full)

    def load_top(self, logits: Any) -> Any:
        """The ``top_m`` tokens of highest logit (unsorted); returns the array ref."""
        view = np.ctypeslib.as_array(logits, (self.n_vocab,))
        ids = np.argpartition(view, -self.top_m)[-self.top_m :]
        self._top["id"] = ids
        self._top["logit"] = view[ids]
        self._top["p"] = 0.0
        return self._reset(self._top, self.top)

    def any_allowed_in_top(self) -> bool:
        return bool(np.isfinite(self._top["logit"]).any())

    @staticmethod
    def selected(array: Any) -> int:
        if array.selected < 0:
            raise RuntimeError("the sampler chain selected no token")
        return int(array.data[array.selected].id)


def _build_chain(p: SamplingParams, seed: int, n_vocab: int, n_ctx: int) -> tuple[Any, bool]:
    """The sampler chain and whether it holds a penalties stage (which wants prompt tokens)."""
    cparams = L.llama_sampler_chain_default_params()
    cparams.no_perf = True
    chain = L.llama_sampler_chain_init(cparams)

    def add(smpl: Any) -> None:
        L.llama_sampler_chain_add(chain, smpl)

    last_n = n_ctx if p.repeat_last_n < 0 else p.repeat_last_n
    penalties = last_n > 0 and (
        p.repeat_penalty != 1.0 or p.frequency_penalty != 0.0 or p.presence_penalty != 0.0
    )
    if penalties:
        add(
            L.llama_sampler_init_penalties(
                n_vocab, last_n, p.repeat_penalty, p.frequency_penalty, p.presence_penalty
            )
        )
    if p.temperature <= 0:
        add(L.llama_sampler_init_greedy())
    elif p.mirostat == 1:
        add(L.llama_sampler_init_temp(p.temperature))
        add(L.llama_sampler_init_mirostat(n_vocab, seed, p.mirostat_tau, p.mirostat_eta, 100))
    elif p.mirostat == 2:
        add(L.llama_sampler_init_temp(p.temperature))
        add(L.llama_sampler_init_mirostat_v2(seed, p.mirostat_tau, p.mirostat_eta))
    else:
        if p.top_k > 0:
            add(L.llama_sampler_init_top_k(p.top_k))
        if 0.0 < p.typical_p < 1.0:
            add(L.llama_sampler_init_typical(p.typical_p, 1))
        if 0.0 < p.top_p < 1.0:
            add(L.llama_sampler_init_top_p(p.top_p, 1))
        if p.min_p > 0.0:
            add(L.llama_sampler_init_min_p(p.min_p, 1))
        add(L.llama_sampler_init_temp(p.temperature))
        add(L.llama_sampler_init_dist(seed))
    return chain, penalties


class RequestSampler:
    """The sampling state of one request; :meth:`close` frees the native samplers."""

    def __init__(
        self,
        params: SamplingParams,
        *,
        vocab: Any,
        n_vocab: int,
        n_ctx: int,
        candidates: Candidates | None,
    ) -> None:
        self.seed = resolve_seed(params.seed)
        self._last_n = n_ctx if params.repeat_last_n < 0 else params.repeat_last_n
        self._candidates = candidates
        self._grammar: Any = None
        self.grammar_rejections = 0  # chosen tokens the grammar refused
        self.grammar_full_passes = 0  # of those, resampled over the whole vocabulary
        self.chain, self._penalties = _build_chain(params, self.seed, n_vocab, n_ctx)
        if params.grammar:
            if candidates is None:
                self.close()
                raise ValueError("a grammar needs a candidate buffer")
            grammar = L.llama_sampler_init_grammar(vocab, params.grammar.encode(), b"root")
            if not grammar:
                self.close()
                raise GrammarInitError("invalid grammar: llama.cpp could not parse it")
            self._grammar = grammar
            self._one = L.llama_token_data(0, 0.0, 0.0)
            self._one_ptr = ctypes.pointer(self._one)
            self._one_array = L.llama_token_data_array(self._one_ptr, 1, -1, False)

    def accept_prompt(self, tokens: Sequence[int]) -> None:
        """Feed the prompt's last tokens to the repeat-penalty window (as Ollama does)."""
        if self._penalties:
            for t in tokens[-self._last_n :]:
                L.llama_sampler_accept(self.chain, t)

    def sample(self, ctx: Any, idx: int) -> int:
        """Sample (and accept) the next token from batch output ``idx``."""
        if self._grammar is None:
            return int(L.llama_sampler_sample(self.chain, ctx, idx))
        logits = L.llama_get_logits_ith(ctx, idx)
        if not logits:
            raise RuntimeError(f"no logits for batch position {idx}")
        cand = self._candidates
        assert cand is not None
        L.llama_sampler_apply(self.chain, cand.load_full(logits))
        token = cand.selected(cand.full)
        if not self._allowed(token):
            self.grammar_rejections += 1
            ref, array = cand.load_top(logits), cand.top
            L.llama_sampler_apply(self._grammar, ref)
            if not cand.any_allowed_in_top():
                self.grammar_full_passes += 1
                ref, array = cand.load_full(logits), cand.full
                L.llama_sampler_apply(self._grammar, ref)
            L.llama_sampler_apply(self.chain, ref)
            token = cand.selected(array)
        L.llama_sampler_accept(self._grammar, token)
        L.llama_sampler_accept(self.chain, token)
        return token

    def _allowed(self, token: int) -> bool:
        one = self._one
        one.id, one.logit, one.p = token, 1.0, 0.0  # type: ignore[assignment]
        arr = self._one_array
        arr.data = self._one_ptr  # type: ignore[assignment]
        arr.size, arr.selected, arr.sorted = 1, -1, False
        L.llama_sampler_apply(self._grammar, ctypes.byref(arr))
        return math.isfinite(one.logit)

    def close(self) -> None:
        if self.chain is not None:
            L.llama_sampler_free(self.chain)
            self.chain = None
        if self._grammar is not None:
            L.llama_sampler_free(self._grammar)
            self._grammar = None
