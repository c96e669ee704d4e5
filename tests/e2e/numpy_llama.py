"""A greedy Llama decoder in numpy (F32, KV cache), the reference for converted checkpoints.

It reads a Hugging Face Llama checkpoint directory (``model.safetensors`` in the rotate-half
layout, ``config.json``) and runs it the Hugging Face way: RMS norm, rotate-half RoPE,
grouped-query attention, SwiGLU, tied or separate output head, all in float32. The prompt is
evaluated as one batch, then one token per step with a KV cache.

Run as a script (``python -m tests.e2e.numpy_llama CHECKPOINT VOCAB_GGUF PROMPTS_JSON N``) it
tokenizes each prompt with llama.cpp's tokenizer of ``VOCAB_GGUF`` (vocab only, no weights),
decodes ``N`` greedy tokens and prints ``{"tokens": [[...]], "texts": [...]}``. The tests run it
in a child process with one BLAS thread: on a loaded two-core machine OpenBLAS's threads make a
small matrix-vector product 40x slower.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
EOG_IDS = (0, 2)  # SmolLM2's <|endoftext|> and <|im_end|>


class NumpyLlama:
    """Greedy decoding of Hugging Face Llama weights."""

    def __init__(self, weights: Mapping[str, npt.NDArray[Any]], config: Mapping[str, Any]) -> None:
        self.w: dict[str, F32] = {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()}
        self.layers = int(config["num_hidden_layers"])
        self.heads = int(config["num_attention_heads"])
        self.kv_heads = int(config.get("num_key_value_heads") or self.heads)
        self.head_dim = int(config["hidden_size"]) // self.heads
        self.eps = float(config.get("rms_norm_eps", 1e-5))
        theta = float(config.get("rope_theta", 10000.0))
        exponents = np.arange(0, self.head_dim, 2, dtype=np.float64) / self.head_dim
        self.inv_freq = 1.0 / theta**exponents
        self.head = self.w.get("lm_head.weight", self.w["model.embed_tokens.weight"])

    def _norm(self, x: F32, name: str) -> F32:
        scale = 1.0 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps)
        out: F32 = (x * scale * self.w[name]).astype(np.float32)
        return out

    def _rope(self, x: F32, start: int) -> F32:
        """Rotate-half RoPE of (tokens, heads, head_dim) at positions ``start``, ``start + 1``..."""
        angles = np.outer(np.arange(start, start + x.shape[0]), self.inv_freq)
        angles = np.concatenate([angles, angles], axis=-1)[:, None, :]
        half = self.head_dim // 2
        rotated = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
        out: F32 = (x * np.cos(angles) + rotated * np.sin(angles)).astype(np.float32)
        return out

    def _forward(self, tokens: Sequence[int], cache: list[tuple[F32, F32]]) -> F32:
        """Evaluate ``tokens`` after the cached ones; returns the last token's logits."""
        start = cache[0][0].shape[0]
        n = len(tokens)
        group = self.heads // self.kv_heads
        mask = np.triu(np.full((n, start + n), -np.inf, dtype=np.float32), k=start + 1)
        x = self.w["model.embed_tokens.weight"][list(tokens)]
        for i in range(self.layers):
            p = f"model.layers.{i}."
            h = self._norm(x, p + "input_layernorm.weight")
            q = self._rope(
                (h @ self.w[p + "self_attn.q_proj.weight"].T).reshape(n, self.heads, -1), start
            )
            k = self._rope(
                (h @ self.w[p + "self_attn.k_proj.weight"].T).reshape(n, self.kv_heads, -1), start
            )
            v = (h @ self.w[p + "self_attn.v_proj.weight"].T).reshape(n, self.kv_heads, -1)
            keys, values = np.concatenate([cache[i][0], k]), np.concatenate([cache[i][1], v])
            cache[i] = (keys, values)
            kk, vv = np.repeat(keys, group, axis=1), np.repeat(values, group, axis=1)
            scores = np.einsum("qhd,khd->hqk", q, kk) / np.sqrt(self.head_dim) + mask
            probs = np.exp(scores - scores.max(axis=-1, keepdims=True))
            probs /= probs.sum(axis=-1, keepdims=True)
            attn = np.einsum("hqk,khd->qhd", probs, vv).reshape(n, -1)
            x = x + attn @ self.w[p + "self_attn.o_proj.weight"].T
            h = self._norm(x, p + "post_attention_layernorm.weight")
            gate = h @ self.w[p + "mlp.gate_proj.weight"].T
            up = h @ self.w[p + "mlp.up_proj.weight"].T
            x = x + (gate / (1.0 + np.exp(-gate)) * up) @ self.w[p + "mlp.down_proj.weight"].T
        logits: F32 = self.head @ self._norm(x[-1], "model.norm.weight")
        return logits

    def greedy(self, prompt: Sequence[int], n_predict: int, stop: Sequence[int] = ()) -> list[int]:
        """The tokens greedy decoding appends to ``prompt``: ``n_predict``, or up to a stop."""
        empty = np.zeros((0, self.kv_heads, self.head_dim), dtype=np.float32)
        cache = [(empty, empty) for _ in range(self.layers)]
        logits = self._forward(prompt, cache)
        out: list[int] = []
        while len(out) < n_predict:
            token = int(np.argmax(logits))
            out.append(token)
            if token in stop or len(out) == n_predict:
                break
            logits = self._forward([token], cache)
        return out


def main(argv: Sequence[str]) -> None:
    import llama_cpp
    from safetensors.numpy import load_file

    checkpoint, vocab_path, prompts_json, n_predict = argv
    config = json.loads((Path(checkpoint) / "config.json").read_text(encoding="utf-8"))
    model = NumpyLlama(load_file(str(Path(checkpoint) / "model.safetensors")), config)
    vocab = llama_cpp.Llama(vocab_path, vocab_only=True, verbose=False)
    tokens: list[list[int]] = []
    texts: list[str] = []
    for prompt in json.loads(prompts_json):
        ids = vocab.tokenize(prompt.encode(), add_bos=False, special=True)
        out = model.greedy(ids, int(n_predict), stop=EOG_IDS)
        tokens.append(out)
        texts.append(vocab.detokenize([t for t in out if t not in EOG_IDS]).decode())
    print(json.dumps({"tokens": tokens, "texts": texts}))


if __name__ == "__main__":
    main(sys.argv[1:])
