"""Tiny header-complete GGUF files for tests whose engine ignores the weights (the fake engine)
but whose catalog reads the header: a llama chat model and a BERT embedding model."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np


def _finish(w: gguf.GGUFWriter, path: Path) -> Path:
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def write_tiny_llama(path: Path, *, context_length: int, tokens: list[str]) -> Path:
    """A llama GGUF with one tiny tensor."""
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(context_length)
    w.add_embedding_length(8)
    w.add_block_count(1)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_tensor("token_embd.weight", np.zeros((len(tokens), 8), np.float32))
    return _finish(w, path)


def write_tiny_bert(path: Path) -> Path:
    """A BERT GGUF with its pooling type set (an embedding model) and one tiny tensor."""
    w = gguf.GGUFWriter(str(path), "bert")
    w.add_context_length(512)
    w.add_embedding_length(16)
    w.add_block_count(1)
    w.add_pooling_type(gguf.PoolingType.MEAN)
    w.add_tokenizer_model("bert")
    w.add_token_list(["[PAD]", "[UNK]", "a"])
    w.add_tensor("token_embd.weight", np.zeros((3, 16), np.float32))
    return _finish(w, path)
