"""Llama-family decoders (``LlamaForCausalLM``, e.g. SmolLM2) -> GGUF architecture "llama".

Hyperparameters come from ``config.json`` (context, embedding and feed-forward lengths, heads and
KV heads, RoPE base and scaling, RMS norm epsilon, vocabulary size); the vocabulary is the
byte-level BPE of ``tokenizer.json``. The query and key projections are permuted from the Hugging
Face rotate-half layout to the interleaved-pair layout llama.cpp's RoPE expects. A model with tied
embeddings and no ``lm_head.weight`` gets no ``output.weight``: llama.cpp then reuses
``token_embd``. Llama-3-style RoPE scaling is written as a ``rope_freqs`` tensor.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import gguf
import numpy as np
import numpy.typing as npt

from corral.errors import BadRequest

from .common import (
    HParams,
    Transform,
    map_tensors,
    sort_plans,
    tensor_name_map,
    write_general,
)
from .source import SafetensorsSource
from .vocab import TokenizerFiles, Vocab, bpe_vocab
from .writer import F32, OUT_TYPES, Metadata, TensorPlan

ARCH: Final = "llama"
HF_ARCHITECTURES: Final = ("LlamaForCausalLM", "LLaMAForCausalLM", "LlamaModel")
_SKIPPED_SUFFIXES: Final = (".rotary_emb.inv_freq", ".attention.masked_bias", ".attention.bias")


def permute_qk(weights: npt.NDArray[Any], n_head: int) -> npt.NDArray[Any]:
    """Reorder the rows of a query/key projection (or bias) from Hugging Face's rotate-half
    layout (per head: first halves, then second halves) to interleaved pairs."""
    rows = weights.shape[0]
    if rows % (2 * n_head):
        raise BadRequest(f"cannot split {rows} projection rows over {n_head} heads")
    split = weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:])
    return split.swapaxes(1, 2).reshape(weights.shape)


def _is_sentencepiece_style(tokenizer: Mapping[str, Any]) -> bool:
    model = tokenizer.get("model")
    if isinstance(model, dict) and model.get("byte_fallback"):
        return True
    pre = tokenizer.get("pre_tokenizer")
    return isinstance(pre, dict) and pre.get("type") == "Metaspace"


def llama_vocab(src_dir: Path, config: Mapping[str, Any]) -> Vocab:
    files = TokenizerFiles.load(src_dir, config)
    if not files.tokenizer:
        if (src_dir / "tokenizer.model").is_file():
            raise BadRequest("unsupported tokenizer: SentencePiece (tokenizer.model) models")
        raise BadRequest("unknown tokenizer format")
    if _is_sentencepiece_style(files.tokenizer):
        raise BadRequest("unsupported tokenizer: SentencePiece-style BPE (byte fallback)")
    return bpe_vocab(files)


def _rope_freqs(hp: HParams, head_dim: int) -> npt.NDArray[np.float32] | None:
    """Llama 3's per-frequency RoPE scaling factors, or None without llama3 scaling."""
    scaling = hp.find("rope_scaling")
    if not isinstance(scaling, dict) or str(scaling.get("rope_type", "")).lower() != "llama3":
        return None
    base = float(hp.find("rope_theta", default=10000.0))
    factor = float(scaling.get("factor", 8.0))
    low_freq_factor = float(scaling.get("low_freq_factor", 1.0))
    high_freq_factor = float(scaling.get("high_freq_factor", 4.0))
    old_ctx = float(scaling.get("original_max_position_embeddings", 8192))
    low_wavelen = old_ctx / low_freq_factor
    high_wavelen = old_ctx / high_freq_factor
    freqs = 1.0 / (base ** (np.arange(0, head_dim, 2, dtype=np.float32) / head_dim))
    out: list[float] = []
    for freq in freqs:
        wavelen = 2 * math.pi / float(freq)
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (old_ctx / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def build(
    src_dir: Path, config: Mapping[str, Any], source: SafetensorsSource, out_type: str
) -> tuple[Metadata, list[TensorPlan]]:
    """The GGUF metadata and tensor plans of a Llama checkpoint."""
    hp = HParams(config)
    n_blocks = hp.require_int("num_hidden_layers", "n_layers", "n_layer")
    n_embd = hp.require_int("hidden_size", "n_embd", "dim")
    n_head = hp.require_int("num_attention_heads", "n_heads", "n_head")
    n_head_kv = hp.optional_int("num_key_value_heads", "n_kv_heads") or n_head
    head_dim = hp.optional_int("head_dim") or n_embd // n_head

    meta = Metadata()
    write_general(meta, OUT_TYPES[out_type][0])
    meta.u32(f"{ARCH}.block_count", n_blocks)
    if (n_ctx := hp.optional_int("max_position_embeddings", "n_ctx", "max_length")) is not None:
        meta.u32(f"{ARCH}.context_length", n_ctx)
    meta.u32(f"{ARCH}.embedding_length", n_embd)
    meta.u32(
        f"{ARCH}.feed_forward_length", hp.require_int("intermediate_size", "n_inner", "hidden_dim")
    )
    meta.u32(f"{ARCH}.attention.head_count", n_head)
    meta.u32(f"{ARCH}.attention.head_count_kv", n_head_kv)
    if (theta := hp.optional_float("rope_theta")) is not None:
        meta.f32(f"{ARCH}.rope.freq_base", theta)
    eps = hp.optional_float("rms_norm_eps", "norm_eps")
    meta.f32(f"{ARCH}.attention.layer_norm_rms_epsilon", eps if eps is not None else 1e-5)
    if hp.optional_int("head_dim") is not None:
        meta.u32(f"{ARCH}.attention.key_length", head_dim)
        meta.u32(f"{ARCH}.attention.value_length", head_dim)
    meta.u32(f"{ARCH}.rope.dimension_count", head_dim)
    scaling = hp.find("rope_scaling")
    if isinstance(scaling, dict):
        kind = scaling.get("rope_type", scaling.get("type"))
        if kind == "linear" and "factor" in scaling:
            meta.string(f"{ARCH}.rope.scaling.type", "linear")
            meta.f32(f"{ARCH}.rope.scaling.factor", float(scaling["factor"]))

    vocab = llama_vocab(src_dir, config)
    meta.u32(f"{ARCH}.vocab_size", len(vocab.tokens))
    vocab.write(meta)

    prefix = "model." if config.get("architectures", [None])[0] == "LlamaModel" else ""

    def rename(name: str) -> str | None:
        if name.endswith(_SKIPPED_SUFFIXES):
            return None
        return prefix + name

    def transform(name: str) -> Transform | None:
        if name.endswith(("q_proj.weight", "q_proj.bias")):
            return lambda w: permute_qk(w, n_head)
        if name.endswith(("k_proj.weight", "k_proj.bias")):
            return lambda w: permute_qk(w, n_head_kv)
        return None

    name_map = tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_blocks)
    plans = map_tensors(source, name_map, out_type, rename, transform)
    names = {p.name for p in plans}
    for required in ("token_embd.weight", "output_norm.weight"):
        if required not in names:
            raise BadRequest(f"the checkpoint has no tensor for {required}")
    embd = next(p for p in plans if p.name == "token_embd.weight")
    if embd.shape[0] != len(vocab.tokens):
        raise BadRequest(
            f"the tokenizer has {len(vocab.tokens)} tokens but the token embeddings "
            f"have {embd.shape[0]} rows"
        )
    if (freqs := _rope_freqs(hp, head_dim)) is not None:
        plans.append(TensorPlan("rope_freqs.weight", freqs.shape, F32, lambda: freqs))
    return meta, sort_plans(plans)
