"""Pooled embeddings with llama.cpp: many inputs packed into one batch, one sequence each.

Used by :class:`corral.engine.llamacpp.LlamaEngine` when a model is loaded with
``LoadSpec(embedding=True)``. Vectors are pooled by the model's pooling type (mean/CLS/last from
its GGUF metadata; last-token pooling for a generative model without one, which is what Ollama
returns) and not normalised — the server normalises.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from corral.engine.native import Batch, L, meta_str

EMBED_MAX_SEQ = 64  # inputs packed into one embedding batch


def pooling_for(model: Any) -> int:
    """The context pooling type: the model's own, or LAST when its GGUF names none."""
    arch = meta_str(model, "general.architecture") or ""
    if meta_str(model, f"{arch}.pooling_type") is not None:
        return int(L.LLAMA_POOLING_TYPE_UNSPECIFIED)
    return int(L.LLAMA_POOLING_TYPE_LAST)


def check_inputs(inputs: Sequence[Sequence[int]], *, n_batch: int, n_vocab: int) -> None:
    for toks in inputs:
        if not toks:
            raise ValueError("cannot embed an empty input")
        if len(toks) > n_batch:
            raise ValueError(
                f"an input of {len(toks)} tokens exceeds the context window of {n_batch} tokens"
            )
        if min(toks) < 0 or max(toks) >= n_vocab:
            raise ValueError("an input holds a token id outside the model's vocabulary")


def embed_batches(
    model: Any, ctx: Any, batch: Batch, inputs: Sequence[Sequence[int]]
) -> list[list[float]]:
    """Embed already-checked inputs, as many per decode as fit the batch and EMBED_MAX_SEQ."""
    n_out = int(L.llama_model_n_embd_out(model)) or int(L.llama_model_n_embd(model))
    encoder_only = bool(L.llama_model_has_encoder(model)) and not bool(
        L.llama_model_has_decoder(model)
    )
    run = L.llama_encode if encoder_only else L.llama_decode
    mem = L.llama_get_memory(ctx)
    out: list[list[float]] = []
    i = 0
    while i < len(inputs):
        batch.clear()
        n_seq = 0
        while i < len(inputs) and n_seq < EMBED_MAX_SEQ and len(inputs[i]) <= batch.free_space:
            batch.add(list(inputs[i]), 0, n_seq, True)
            n_seq, i = n_seq + 1, i + 1
        batch.set_all_logits()
        if mem:
            L.llama_memory_clear(mem, True)
        rc = int(run(ctx, batch.raw))
        if rc != 0:
            raise RuntimeError(f"embedding decode failed with status {rc}")
        for s in range(n_seq):
            ptr = L.llama_get_embeddings_seq(ctx, s)
            if not ptr:
                raise RuntimeError("the model produced no pooled embedding")
            out.append(np.ctypeslib.as_array(ptr, (n_out,)).astype(float).tolist())
    return out
