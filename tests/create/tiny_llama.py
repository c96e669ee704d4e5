"""A tiny random Llama checkpoint in Hugging Face layout, and a numpy reference forward pass.

:func:`write_tiny_llama` writes ``config.json``, ``model.safetensors`` (numpy random weights),
a small byte-level BPE ``tokenizer.json`` with SmolLM's pre-tokenizer and a
``tokenizer_config.json`` with a ChatML template. Dimensions are multiples of 256 where llama.cpp's
K-quants need them. :func:`reference_logits` runs the same weights the Hugging Face way
(rotate-half RoPE on unpermuted projections, GQA, SwiGLU) so a converted file can be checked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from safetensors.numpy import save_file

Array = npt.NDArray[np.float32]

SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
MERGES = (
    ("Ġ", "t"),
    ("h", "e"),
    ("Ġt", "he"),
    ("i", "n"),
    ("Ġ", "a"),
    ("e", "r"),
    ("o", "n"),
    ("Ġ", "s"),
    ("l", "l"),
    ("Ġ", "w"),
)
CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@dataclass(frozen=True)
class TinyConfig:
    hidden: int = 256
    intermediate: int = 512
    heads: int = 4
    kv_heads: int = 2
    layers: int = 2
    vocab: int = 272  # more than the tokenizer's 269 tokens: the rest are padding
    ctx: int = 128
    rope_theta: float = 10000.0
    eps: float = 1e-5
    tied: bool = True

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    keep += list(range(ord("®"), ord("ÿ") + 1))
    table = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def tokenizer_json() -> dict[str, Any]:
    vocab: dict[str, int] = {tok: i for i, tok in enumerate(SPECIAL)}
    for ch in bytes_to_unicode().values():
        vocab[ch] = len(vocab)
    for left, right in MERGES:
        vocab[left + right] = len(vocab)
    added = [
        {
            "id": i,
            "content": tok,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for i, tok in enumerate(SPECIAL)
    ]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Digits", "individual_digits": True},
                {
                    "type": "ByteLevel",
                    "add_prefix_space": False,
                    "trim_offsets": True,
                    "use_regex": True,
                },
            ],
        },
        "post_processor": {
            "type": "ByteLevel",
            "add_prefix_space": True,
            "trim_offsets": False,
            "use_regex": True,
        },
        "decoder": {
            "type": "ByteLevel",
            "add_prefix_space": True,
            "trim_offsets": True,
            "use_regex": True,
        },
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "vocab": vocab,
            "merges": [f"{a} {b}" for a, b in MERGES],
        },
    }


def make_weights(cfg: TinyConfig, seed: int = 0) -> dict[str, Array]:
    rng = np.random.default_rng(seed)

    def mat(rows: int, cols: int, scale: float = 0.08) -> Array:
        return (rng.standard_normal((rows, cols)) * scale).astype(np.float32)

    def norm(n: int) -> Array:
        return (1.0 + rng.standard_normal(n) * 0.1).astype(np.float32)

    kv = cfg.kv_heads * cfg.head_dim
    w: dict[str, Array] = {"model.embed_tokens.weight": mat(cfg.vocab, cfg.hidden, 0.5)}
    for i in range(cfg.layers):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = norm(cfg.hidden)
        w[p + "self_attn.q_proj.weight"] = mat(cfg.hidden, cfg.hidden)
        w[p + "self_attn.k_proj.weight"] = mat(kv, cfg.hidden)
        w[p + "self_attn.v_proj.weight"] = mat(kv, cfg.hidden)
        w[p + "self_attn.o_proj.weight"] = mat(cfg.hidden, cfg.hidden)
        w[p + "post_attention_layernorm.weight"] = norm(cfg.hidden)
        w[p + "mlp.gate_proj.weight"] = mat(cfg.intermediate, cfg.hidden)
        w[p + "mlp.up_proj.weight"] = mat(cfg.intermediate, cfg.hidden)
        w[p + "mlp.down_proj.weight"] = mat(cfg.hidden, cfg.intermediate)
    w["model.norm.weight"] = norm(cfg.hidden)
    if not cfg.tied:
        w["lm_head.weight"] = mat(cfg.vocab, cfg.hidden, 0.2)
    return w


def write_tiny_llama(directory: Path, cfg: TinyConfig | None = None) -> dict[str, Array]:
    """Write the checkpoint into ``directory`` and return its weights."""
    cfg = cfg or TinyConfig()
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": cfg.hidden,
        "intermediate_size": cfg.intermediate,
        "num_attention_heads": cfg.heads,
        "num_key_value_heads": cfg.kv_heads,
        "num_hidden_layers": cfg.layers,
        "max_position_embeddings": cfg.ctx,
        "rms_norm_eps": cfg.eps,
        "rope_theta": cfg.rope_theta,
        "tie_word_embeddings": cfg.tied,
        "vocab_size": cfg.vocab,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "torch_dtype": "float32",
    }
    (directory / "config.json").write_text(json.dumps(config), encoding="utf-8")
    (directory / "tokenizer.json").write_text(json.dumps(tokenizer_json()), encoding="utf-8")
    tokenizer_config = {
        "add_prefix_space": False,
        "bos_token": "<|im_start|>",
        "eos_token": "<|im_end|>",
        "pad_token": "<|im_end|>",
        "unk_token": "<|endoftext|>",
        "chat_template": CHATML,
        "model_max_length": cfg.ctx,
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    weights = make_weights(cfg)
    save_file(weights, str(directory / "model.safetensors"), metadata={"format": "pt"})
    return weights


def _rms_norm(x: npt.NDArray[Any], weight: Array, eps: float) -> npt.NDArray[Any]:
    scale = 1.0 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
    normed: npt.NDArray[Any] = x * scale * weight
    return normed


def _rotate_half(x: npt.NDArray[Any]) -> npt.NDArray[Any]:
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def _rope(x: npt.NDArray[Any], theta: float) -> npt.NDArray[Any]:
    """Hugging Face Llama RoPE on (tokens, heads, head_dim)."""
    n, _, dim = x.shape
    inv_freq = 1.0 / theta ** (np.arange(0, dim, 2, dtype=np.float64) / dim)
    angles = np.outer(np.arange(n, dtype=np.float64), inv_freq)
    emb = np.concatenate([angles, angles], axis=-1)[:, None, :]
    rotated: npt.NDArray[Any] = x * np.cos(emb) + _rotate_half(x) * np.sin(emb)
    return rotated


def reference_logits(weights: dict[str, Array], ids: list[int], cfg: TinyConfig) -> Array:
    """Logits (tokens, vocab) of a full causal forward pass over ``ids``."""
    hd, nh, nkv = cfg.head_dim, cfg.heads, cfg.kv_heads
    x: npt.NDArray[Any] = weights["model.embed_tokens.weight"][ids].astype(np.float64)
    n = len(ids)
    mask = np.triu(np.full((n, n), -np.inf), k=1)
    for i in range(cfg.layers):
        p = f"model.layers.{i}."
        h = _rms_norm(x, weights[p + "input_layernorm.weight"], cfg.eps)
        q = _rope((h @ weights[p + "self_attn.q_proj.weight"].T).reshape(n, nh, hd), cfg.rope_theta)
        k = _rope(
            (h @ weights[p + "self_attn.k_proj.weight"].T).reshape(n, nkv, hd), cfg.rope_theta
        )
        v = (h @ weights[p + "self_attn.v_proj.weight"].T).reshape(n, nkv, hd)
        group = nh // nkv
        heads = []
        for head in range(nh):
            kh, vh = k[:, head // group], v[:, head // group]
            scores = q[:, head] @ kh.T / np.sqrt(hd) + mask
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            heads.append((scores / scores.sum(axis=-1, keepdims=True)) @ vh)
        x = x + np.concatenate(heads, axis=-1) @ weights[p + "self_attn.o_proj.weight"].T
        h = _rms_norm(x, weights[p + "post_attention_layernorm.weight"], cfg.eps)
        gate = h @ weights[p + "mlp.gate_proj.weight"].T
        up = h @ weights[p + "mlp.up_proj.weight"].T
        x = x + (gate / (1.0 + np.exp(-gate)) * up) @ weights[p + "mlp.down_proj.weight"].T
    x = _rms_norm(x, weights["model.norm.weight"], cfg.eps)
    head_w = weights.get("lm_head.weight", weights["model.embed_tokens.weight"])
    return (x @ head_w.T).astype(np.float32)


_LLAMA_PROBE = r"""
import json, sys
import llama_cpp
import llama_cpp.llama_cpp as native

# As corral's engine does: the AMX "extra" buffer type crashes quantized matmuls on this CPU.
default_params = native.llama_model_default_params


def model_params():
    params = default_params()
    params.use_extra_bufts = False
    return params


native.llama_model_default_params = model_params
path, ids, texts = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
llm = llama_cpp.Llama(path, n_ctx=64, logits_all=True, n_threads=1, verbose=False)
llm.eval(ids)
out = {
    "logits": [list(map(float, row)) for row in llm.scores[: len(ids)]],
    "tokens": [llm.tokenize(t.encode(), add_bos=False, special=True) for t in texts],
    "n_vocab": llm.n_vocab(),
}
print(json.dumps(out))
"""


def llama_cpp_probe(path: Path, ids: list[int], texts: list[str]) -> dict[str, Any]:
    """Load ``path`` with llama-cpp-python in a child process (an abort there cannot take the
    test run down) and return its logits for ``ids`` and its tokenization of ``texts``."""
    import os
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", _LLAMA_PROBE, str(path), json.dumps(ids), json.dumps(texts)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "GGML_NO_BACKTRACE": "1"},
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"llama.cpp could not load {path}:\n{result.stderr[-3000:]}")
    probe: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return probe


def min_cosine(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> float:
    """The smallest row-wise cosine similarity of two (rows, n) arrays."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return float(cos.min())
