"""BERT-family sentence embedders (``BertModel`` and friends) -> GGUF architecture "bert".

Hyperparameters come from ``config.json``; the pooling type and the normalisation flag from the
sentence-transformers modules (``modules.json`` and the pooling module's ``config.json``: mean
pooling is 1, CLS pooling 2); the WordPiece vocabulary from ``tokenizer.json`` or ``vocab.txt``.
The position ids buffer, the pooler and masked-LM/NSP heads are dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Final

import gguf

from corral.errors import BadRequest

from .common import HParams, map_tensors, sort_plans, tensor_name_map, write_general
from .source import SafetensorsSource, read_json
from .vocab import TokenizerFiles, wordpiece_vocab
from .writer import OUT_TYPES, Metadata, TensorPlan

log = logging.getLogger(__name__)

ARCH: Final = "bert"
HF_ARCHITECTURES: Final = ("BertModel", "BertForMaskedLM")
POOLING_NONE: Final = 0
POOLING_MEAN: Final = 1
POOLING_CLS: Final = 2
POOLING_LAST: Final = 3
_DROPPED: Final = ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias")
_DROPPED_PREFIXES: Final = ("cls.predictions", "cls.seq_relationship")


def sentence_transformers_modules(src_dir: Path) -> tuple[int | None, bool]:
    """(pooling type, normalize) from ``modules.json``; (None, False) without one.

    The pooling module's own ``config.json`` (``1_Pooling/config.json``) may be missing: Ollama's
    CLI uploads a folder's files under their base names, so that file arrives as a second
    ``config.json`` and only one of the two survives. Without it the pooling is
    sentence-transformers' default, mean pooling.
    """
    path = src_dir / "modules.json"
    if not path.is_file():
        return None, False
    modules = read_json(path)
    if not isinstance(modules, list):
        raise BadRequest("parse modules.json: expected a list")
    pooling_dir: str | None = None
    normalize = False
    for module in modules:
        if not isinstance(module, dict):
            continue
        kind = module.get("type")
        if kind == "sentence_transformers.models.Pooling":
            pooling_dir = str(module.get("path", ""))
        elif kind == "sentence_transformers.models.Normalize":
            normalize = True
    if pooling_dir is None:
        return None, normalize
    name = f"{pooling_dir}/config.json"
    if not _relative(pooling_dir) or not (src_dir / name).is_file():
        log.warning("%s is missing: using mean pooling, the sentence-transformers default", name)
        return POOLING_MEAN, normalize
    pooling = read_json(src_dir / name, name)
    if not isinstance(pooling, dict):
        raise BadRequest(f"parse {name}: expected a JSON object")
    return _pooling_type(pooling), normalize


def _relative(folder: str) -> bool:
    """Whether a module path of modules.json names a folder inside the checkpoint."""
    parts = PurePosixPath(folder).parts
    return bool(parts) and not folder.startswith("/") and ".." not in parts and "\\" not in folder


def _pooling_type(pooling: Mapping[str, Any]) -> int:
    if pooling.get("pooling_mode_mean_tokens"):
        return POOLING_MEAN
    if pooling.get("pooling_mode_cls_token"):
        return POOLING_CLS
    if pooling.get("pooling_mode_lasttoken"):
        return POOLING_LAST
    raise BadRequest("unsupported pooling mode: only mean, CLS and last-token pooling are")


def _rename(name: str) -> str | None:
    if name.startswith("bert."):
        name = name[len("bert.") :]
    if name.endswith(".gamma"):
        name = name[: -len(".gamma")] + ".weight"
    elif name.endswith(".beta"):
        name = name[: -len(".beta")] + ".bias"
    if name in _DROPPED or name.startswith(_DROPPED_PREFIXES):
        return None
    return name


def build(
    src_dir: Path, config: Mapping[str, Any], source: SafetensorsSource, out_type: str
) -> tuple[Metadata, list[TensorPlan]]:
    """The GGUF metadata and tensor plans of a BERT checkpoint."""
    hp = HParams(config)
    n_blocks = hp.require_int("num_hidden_layers", "n_layers", "n_layer")
    token_type_count = hp.optional_int("type_vocab_size") or 2
    meta = Metadata()
    write_general(meta, OUT_TYPES[out_type][0])
    meta.u32(f"{ARCH}.block_count", n_blocks)
    if (n_ctx := hp.optional_int("max_position_embeddings", "n_ctx")) is not None:
        meta.u32(f"{ARCH}.context_length", n_ctx)
    meta.u32(f"{ARCH}.embedding_length", hp.require_int("hidden_size", "n_embd"))
    if (n_ff := hp.optional_int("intermediate_size", "n_inner")) is not None:
        meta.u32(f"{ARCH}.feed_forward_length", n_ff)
    meta.u32(f"{ARCH}.attention.head_count", hp.require_int("num_attention_heads", "n_head"))
    eps = hp.optional_float("layer_norm_eps", "layer_norm_epsilon", "norm_epsilon")
    meta.f32(f"{ARCH}.attention.layer_norm_epsilon", eps if eps is not None else 1e-12)
    meta.flag(f"{ARCH}.attention.causal", False)
    pooling, normalize = sentence_transformers_modules(src_dir)
    if pooling is not None:
        meta.u32(f"{ARCH}.pooling_type", pooling)
    meta.flag(f"{ARCH}.normalize_embeddings", normalize)

    vocab = wordpiece_vocab(TokenizerFiles.load(src_dir, config), token_type_count)
    vocab.write(meta)

    name_map = tensor_name_map(gguf.MODEL_ARCH.BERT, n_blocks)
    plans = map_tensors(source, name_map, out_type, _rename)
    embd = next((p for p in plans if p.name == "token_embd.weight"), None)
    if embd is None:
        raise BadRequest("the checkpoint has no word embeddings (embeddings.word_embeddings)")
    if embd.shape[0] != len(vocab.tokens):
        raise BadRequest(
            f"the tokenizer has {len(vocab.tokens)} tokens but the word embeddings "
            f"have {embd.shape[0]} rows"
        )
    return meta, sort_plans(plans)
