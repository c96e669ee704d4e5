"""Tokenizer metadata of a Hugging Face checkpoint, in the form llama.cpp reads from GGUF.

Two vocabularies are built from the tokenizer files (``tokenizer.json``, ``vocab.txt``,
``tokenizer_config.json``, ``config.json``), following the rules of llama.cpp's converter:

- :func:`bpe_vocab`: byte-level BPE (``tokenizer.ggml.model`` "gpt2"): tokens in id order padded
  to the model's vocabulary size, token types (added special tokens are CONTROL, other added
  tokens USER_DEFINED), merges, and the pre-tokenizer name recognised from the tokenizer's
  pre-tokenizer configuration;
- :func:`wordpiece_vocab`: BERT WordPiece (``tokenizer.ggml.model`` "bert") with the tokens
  rewritten to llama.cpp's phantom-space form.

Both carry the special token ids, the add-BOS/EOS flags and the chat template.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from corral.errors import BadRequest

from .source import read_json
from .writer import Metadata

log = logging.getLogger(__name__)

UNKNOWN_TOKENIZER_FORMAT: Final = "unknown tokenizer format"  # Ollama's text

# llama.cpp token types (gguf TokenType)
NORMAL: Final = 1
CONTROL: Final = 3
USER_DEFINED: Final = 4
UNUSED: Final = 5

SPECIAL_TYPES: Final = ("bos", "eos", "unk", "sep", "pad", "cls", "mask")
_SPECIAL_KEYS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "bos": "tokenizer.ggml.bos_token_id",
        "eos": "tokenizer.ggml.eos_token_id",
        "unk": "tokenizer.ggml.unknown_token_id",
        "sep": "tokenizer.ggml.seperator_token_id",  # sic, llama.cpp's spelling
        "pad": "tokenizer.ggml.padding_token_id",
        "cls": "tokenizer.ggml.cls_token_id",
        "mask": "tokenizer.ggml.mask_token_id",
    }
)

# sha256 over the regexes of a tokenizer's Split pre-tokenizers -> llama.cpp pre-tokenizer name
# (the same fingerprints Ollama's converter recognises).
_SPLIT_REGEX_DIGESTS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "d98f9631be1e9607a9848c26c1f9eac1aa9fc21ac6ba82a2fc0741af9780a48f": "llama-bpe",
        "03df5c5863ad70781dcfdef491ead25140f895fe8010964be0daefe27be32b02": "deepseek-llm",
        "21cde974d587f0d54dc8d56b183cc1e6239600172035c68fbd6d4b9f8da0576e": "deepseek-coder",
        "1ff7f41064896984db5d1bb6ff64fa4bc29007d08c1b439e505b7392777a319e": "qwen2",
    }
)


@dataclass(frozen=True)
class Vocab:
    """Everything a GGUF file says about a tokenizer."""

    model: str
    pre: str
    tokens: tuple[str, ...]
    types: tuple[int, ...]
    merges: tuple[str, ...] = ()
    special_ids: Mapping[str, int] = field(default_factory=dict)
    add_special: Mapping[str, bool] = field(default_factory=dict)
    chat_template: str | None = None
    add_space_prefix: bool | None = None
    token_type_count: int | None = None

    def write(self, meta: Metadata) -> None:
        meta.string("tokenizer.ggml.model", self.model)
        meta.string("tokenizer.ggml.pre", self.pre)
        if self.token_type_count is not None:
            meta.u32("tokenizer.ggml.token_type_count", self.token_type_count)
        meta.strings("tokenizer.ggml.tokens", self.tokens)
        meta.i32s("tokenizer.ggml.token_type", self.types)
        if self.merges:
            meta.strings("tokenizer.ggml.merges", self.merges)
        for typ, token_id in self.special_ids.items():
            meta.u32(_SPECIAL_KEYS[typ], token_id)
        for typ, value in self.add_special.items():
            meta.flag(f"tokenizer.ggml.add_{typ}_token", value)
        if self.add_space_prefix is not None:
            meta.flag("tokenizer.ggml.add_space_prefix", self.add_space_prefix)
        if self.chat_template:
            meta.string("tokenizer.chat_template", self.chat_template)


@dataclass(frozen=True)
class TokenizerFiles:
    """The parsed tokenizer files of a checkpoint directory (absent files are empty)."""

    tokenizer: Mapping[str, Any]
    config: Mapping[str, Any]
    model_config: Mapping[str, Any]
    directory: Path

    @classmethod
    def load(cls, src_dir: Path, model_config: Mapping[str, Any]) -> TokenizerFiles:
        return cls(
            tokenizer=_optional_json(src_dir / "tokenizer.json"),
            config=_optional_json(src_dir / "tokenizer_config.json"),
            model_config=model_config,
            directory=src_dir,
        )

    @property
    def added_tokens(self) -> list[Mapping[str, Any]]:
        added = self.tokenizer.get("added_tokens") or []
        return [t for t in added if isinstance(t, dict) and isinstance(t.get("id"), int)]


def _optional_json(path: Path) -> Mapping[str, Any]:
    if not path.is_file():
        return {}
    value = read_json(path)
    if not isinstance(value, dict):
        raise BadRequest(f"parse {path.name}: expected a JSON object")
    return value


def _vocab_size(files: TokenizerFiles, highest_id: int) -> int:
    configured = files.model_config.get("vocab_size")
    size = configured if isinstance(configured, int) and configured > 0 else highest_id + 1
    if highest_id >= size:
        raise BadRequest(
            f"the tokenizer has token id {highest_id} but the model's vocab_size is {size}"
        )
    return size


def looks_special(token: str) -> bool:
    """Added tokens that llama.cpp treats as control tokens even when not marked special."""
    return (
        token in ("<pad>", "<mask>", "<2mass>", "[@BOS@]")
        or (token.startswith("<|") and token.endswith("|>"))
        or (token.startswith("<｜") and token.endswith("｜>"))
        or (token.startswith("<unused") and token.endswith(">"))
    )


def bpe_vocab(files: TokenizerFiles) -> Vocab:
    """The byte-level BPE vocabulary of ``tokenizer.json`` (llama.cpp tokenizer "gpt2")."""
    model = files.tokenizer.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("vocab"), dict):
        raise BadRequest(UNKNOWN_TOKENIZER_FORMAT)
    if model.get("type", "BPE") != "BPE":
        raise BadRequest(f"unsupported tokenizer model {model.get('type')!r}, expected BPE")
    by_id: dict[int, str] = {}
    for text, token_id in model["vocab"].items():
        if isinstance(token_id, int) and token_id >= 0:
            by_id[token_id] = text
    added: dict[int, Mapping[str, Any]] = {}
    for token in files.added_tokens:
        by_id[token["id"]] = str(token.get("content", ""))
        added[token["id"]] = token
    if not by_id:
        raise BadRequest(UNKNOWN_TOKENIZER_FORMAT)
    size = _vocab_size(files, max(by_id))
    tokens: list[str] = []
    types: list[int] = []
    for i in range(size):
        text = by_id.get(i)
        if text is None:
            tokens.append(f"[PAD{i}]")
            types.append(UNUSED)
        elif i in added:
            if added[i].get("special") or looks_special(text):
                types.append(CONTROL)
            else:
                text = text.replace("\u2581", " ")  # llama.cpp wants user tokens pre-normalised
                types.append(USER_DEFINED)
            tokens.append(text)
        else:
            tokens.append(text)
            types.append(NORMAL)
    ids, add = special_tokens(files, {t: i for i, t in enumerate(tokens)})
    add_prefix = files.config.get("add_prefix_space")
    return Vocab(
        model="gpt2",
        pre=pre_tokenizer_name(files.tokenizer),
        tokens=tuple(tokens),
        types=tuple(types),
        merges=tuple(_merges(model.get("merges"))),
        special_ids=ids,
        add_special={"bos": add.get("bos", False), **add},
        chat_template=chat_template(files),
        add_space_prefix=add_prefix if isinstance(add_prefix, bool) else None,
    )


def _merges(raw: Any) -> list[str]:
    if not raw:
        return []
    if not isinstance(raw, list):
        raise BadRequest("could not parse tokenizer merges. expected []string or [][]string")
    out: list[str] = []
    for merge in raw:
        if isinstance(merge, str):
            out.append(merge)
        elif isinstance(merge, list) and len(merge) == 2 and all(isinstance(p, str) for p in merge):
            # pair form (transformers >= 4.45): spaces inside a part are encoded as U+0120 + 256
            out.append(" ".join(p.replace(" ", chr(ord(" ") + 256)) for p in merge))
        else:
            raise BadRequest("could not parse tokenizer merges. expected []string or [][]string")
    return out


def pre_tokenizer_name(tokenizer: Mapping[str, Any]) -> str:
    """llama.cpp's ``tokenizer.ggml.pre`` for a ``tokenizer.json``, from its pre-tokenizer.

    Split regexes are fingerprinted as Ollama does; a sequence of individual ``Digits`` and
    ``ByteLevel`` is SmolLM's pre-tokenizer and a lone regex ``ByteLevel`` is GPT-2's. Anything
    else falls back to llama.cpp's "default" (with a warning), as Ollama does.
    """
    pre = tokenizer.get("pre_tokenizer")
    if not isinstance(pre, dict):
        return "default"
    steps = pre.get("pretokenizers") if pre.get("type") == "Sequence" else [pre]
    if not isinstance(steps, list):
        return "default"
    steps = [s for s in steps if isinstance(s, dict)]
    kinds = [s.get("type") for s in steps]
    regexes = [
        s["pattern"]["Regex"]
        for s in steps
        if s.get("type") == "Split"
        and isinstance(s.get("pattern"), dict)
        and isinstance(s["pattern"].get("Regex"), str)
    ]
    if regexes:
        digest = hashlib.sha256("".join(regexes).encode()).hexdigest()
        if digest in _SPLIT_REGEX_DIGESTS:
            return _SPLIT_REGEX_DIGESTS[digest]
        log.warning("unknown pretokenizer, using default (digest %s)", digest)
        return "default"
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits"):
        return "smollm"
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        return "gpt-2"
    log.warning("unknown pretokenizer %s, using default", kinds)
    return "default"


def _token_content(entry: Any) -> str | None:
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict) and isinstance(entry.get("content"), str):
        return str(entry["content"])
    return None


def special_tokens(
    files: TokenizerFiles, vocab: Mapping[str, int]
) -> tuple[dict[str, int], dict[str, bool]]:
    """Special token ids and add-token flags as llama.cpp's converter derives them.

    Ids come from ``tokenizer_config.json`` (``<type>_token`` looked up among the added tokens,
    then the vocabulary), then from ``config.json``'s ``<type>_token_id``. A BERT-style
    tokenizer without BOS/EOS uses CLS/SEP for them. The flags come from a ``TemplateProcessing``
    post-processor, overridden by ``add_<type>_token`` in ``tokenizer_config.json``.
    """
    content = {typ: _token_content(files.config.get(f"{typ}_token")) for typ in SPECIAL_TYPES}
    if content["bos"] is None and content["cls"] is not None:
        content["bos"] = content["cls"]
    if content["eos"] is None and content["sep"] is not None:
        content["eos"] = content["sep"]
    added = {str(t.get("content")): int(t["id"]) for t in files.added_tokens}
    n_vocab = len(vocab)
    ids: dict[str, int] = {}
    for typ in SPECIAL_TYPES:
        text = content[typ]
        token_id = None
        if text is not None:
            token_id = added.get(text, vocab.get(text))
        if token_id is None:
            from_config = files.model_config.get(f"{typ}_token_id")
            token_id = from_config if isinstance(from_config, int) else None
        if token_id is not None and 0 <= token_id < n_vocab:
            ids[typ] = token_id
    add: dict[str, bool] = {}
    processor = files.tokenizer.get("post_processor")
    if isinstance(processor, dict):
        processors = processor.get("processors", [processor])
        for proc in processors if isinstance(processors, list) else []:
            if isinstance(proc, dict) and proc.get("type") == "TemplateProcessing":
                add.update(_template_flags(proc, content))
    for typ in ("bos", "eos", "sep"):
        flag = files.config.get(f"add_{typ}_token")
        if isinstance(flag, bool):
            add[typ] = flag
    return ids, add


def _template_flags(proc: Mapping[str, Any], content: Mapping[str, str | None]) -> dict[str, bool]:
    single = proc.get("single")
    if not isinstance(single, list) or len(single) < 2:
        return {}

    def special(item: Any) -> str | None:
        token = item.get("SpecialToken") if isinstance(item, dict) else None
        return str(token.get("id")) if isinstance(token, dict) else None

    flags: dict[str, bool] = {}
    if (first := special(single[0])) is not None:
        flags["bos"] = first in (content["bos"], content["cls"])
    if (last := special(single[-1])) is not None:
        flags["eos"] = last == content["eos"]
    return flags


def chat_template(files: TokenizerFiles) -> str | None:
    """The chat template: ``tokenizer_config.json``'s (the "default" one of a list), else
    ``chat_template.jinja`` or ``chat_template.json`` beside it."""
    raw: Any = files.config.get("chat_template")
    if raw is None:
        jinja = files.directory / "chat_template.jinja"
        as_json = files.directory / "chat_template.json"
        if jinja.is_file():
            raw = jinja.read_text(encoding="utf-8")
        elif as_json.is_file():
            value = read_json(as_json)
            raw = value.get("chat_template") if isinstance(value, dict) else None
    if isinstance(raw, str):
        return raw
    if isinstance(raw, list):
        for entry in raw:
            if isinstance(entry, dict) and entry.get("name") == "default":
                template = entry.get("template")
                return template if isinstance(template, str) else None
        return None
    if raw is not None:
        raise BadRequest("invalid chat_template: expected a string or a list of templates")
    return None


def _wordpiece_tokens(files: TokenizerFiles) -> dict[int, str]:
    model = files.tokenizer.get("model")
    if isinstance(model, dict) and isinstance(model.get("vocab"), dict):
        if model.get("type", "WordPiece") != "WordPiece":
            raise BadRequest(f"unsupported tokenizer model {model.get('type')!r} for BERT")
        return {i: t for t, i in model["vocab"].items() if isinstance(i, int) and i >= 0}
    vocab_txt = files.directory / "vocab.txt"
    if vocab_txt.is_file():
        lines = vocab_txt.read_text(encoding="utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return {i: line.rstrip("\r") for i, line in enumerate(lines)}
    raise BadRequest(UNKNOWN_TOKENIZER_FORMAT)


def wordpiece_vocab(files: TokenizerFiles, token_type_count: int) -> Vocab:
    """The WordPiece vocabulary of a BERT model (llama.cpp tokenizer "bert")."""
    by_id = _wordpiece_tokens(files)
    for token in files.added_tokens:
        by_id[token["id"]] = str(token.get("content", ""))
    if not by_id:
        raise BadRequest(UNKNOWN_TOKENIZER_FORMAT)
    size = _vocab_size(files, max(by_id))
    special_text = {_token_content(files.config.get(f"{t}_token")) for t in SPECIAL_TYPES}
    special_text |= {str(t.get("content")) for t in files.added_tokens if t.get("special")}
    special_text.discard(None)
    raw: list[str] = []
    tokens: list[str] = []
    types: list[int] = []
    for i in range(size):
        text = by_id.get(i)
        if text is None:
            raw.append(f"[PAD{i}]")
            tokens.append(f"[PAD{i}]")
            types.append(UNUSED)
            continue
        raw.append(text)
        if text in special_text:
            tokens.append(text)
            types.append(CONTROL)
        else:
            # phantom space: a word start gets U+2581, a "##" continuation loses its prefix
            tokens.append(text[2:] if text.startswith("##") else "\u2581" + text)
            types.append(NORMAL)
    ids, add = special_tokens(files, {t: i for i, t in enumerate(raw)})
    return Vocab(
        model="bert",
        pre="default",
        tokens=tuple(tokens),
        types=tuple(types),
        special_ids=ids,
        add_special=add,
        token_type_count=token_type_count,
    )


def ensure_tokens(vocab: Vocab, required: Sequence[str]) -> None:
    """Refuse a vocabulary that lacks a special token the architecture cannot work without."""
    missing = [t for t in required if t not in vocab.special_ids]
    if missing:
        raise BadRequest(f"the tokenizer defines no {', '.join(missing)} token")
