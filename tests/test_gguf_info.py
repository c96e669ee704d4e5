"""Tests of the header-only GGUF reader and the Ollama facts derived from it."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest

from corral.errors import BadRequest
from corral.gguf_info import (
    FILE_TYPE_NAMES,
    MAX_ARRAY_SIZE,
    MAX_STRING_LENGTH,
    TENSOR_TYPES,
    GGUFFile,
    TensorInfo,
    ValueType,
    file_type_name,
    human_number,
    is_gguf,
    read_gguf,
)

# --- helpers -------------------------------------------------------------------------------------


def write_gguf(
    path: Path,
    arch: str = "llama",
    kv: Callable[[gguf.GGUFWriter], None] | None = None,
    tensors: dict[str, np.ndarray[Any, Any]] | None = None,
    endianess: gguf.GGUFEndian = gguf.GGUFEndian.LITTLE,
) -> Path:
    """A small GGUF written by llama.cpp's own writer."""
    writer = gguf.GGUFWriter(str(path), arch, endianess=endianess)
    if kv is not None:
        kv(writer)
    for name, data in (tensors or {"w": np.zeros((4, 32), dtype=np.float32)}).items():
        writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def gguf_string(s: str | bytes) -> bytes:
    raw = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(raw)) + raw


def raw_gguf(
    kvs: bytes = b"", n_kv: int = 0, tensors: bytes = b"", n_tensors: int = 0, version: int = 3
) -> bytes:
    """Hand-built GGUF bytes, for files the writer refuses to produce."""
    return b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv) + kvs + tensors


def kv_entry(key: str, vtype: int, payload: bytes) -> bytes:
    return gguf_string(key) + struct.pack("<I", vtype) + payload


def read_bytes(tmp_path: Path, data: bytes) -> GGUFFile:
    path = tmp_path / "x.gguf"
    path.write_bytes(data)
    return read_gguf(path)


def assert_bad(tmp_path: Path, data: bytes, match: str) -> None:
    """A bad file is refused with a 400 (how long that takes is measured by bench/gguf_read.py;
    a runaway loop is caught by pytest-timeout)."""
    with pytest.raises(BadRequest, match=match) as info:
        read_bytes(tmp_path, data)
    assert info.value.status == 400


# --- the real model ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smollm2(smollm2_gguf: Path) -> GGUFFile:
    return read_gguf(smollm2_gguf)  # its speed is measured by bench/gguf_read.py


def test_real_file_basic_facts(smollm2: GGUFFile, smollm2_gguf: Path) -> None:
    assert is_gguf(smollm2_gguf)
    assert smollm2.version == 3
    assert smollm2.architecture == "llama"
    assert smollm2.file_type == 3
    assert smollm2.file_type_name == "Q4_1"
    assert smollm2.context_length == 8192
    assert smollm2.embedding_length == 576
    assert smollm2.block_count == 30
    assert smollm2.pooling_type is None
    assert smollm2.get("attention.head_count") == 9
    assert smollm2.get("general.name") == smollm2.name
    template = smollm2.chat_template
    assert template is not None and "<|im_start|>" in template
    assert len(smollm2.kv["tokenizer.ggml.tokens"]) == 49152
    assert smollm2.kv["tokenizer.ggml.tokens"][1] == "<|im_start|>"
    assert smollm2.value_types["tokenizer.ggml.token_type"] is ValueType.INT32
    assert smollm2.data_offset % 32 == 0
    assert smollm2.data_offset < smollm2_gguf.stat().st_size


def test_real_file_parameter_count(smollm2: GGUFFile) -> None:
    assert len(smollm2.tensors) == 272
    expected = sum(math.prod(t.dims) for t in smollm2.tensors)
    assert smollm2.parameter_count == expected
    assert 134_000_000 < expected < 135_000_000
    # Ollama's HumanNumber: millions with two decimals unless whole.
    assert smollm2.parameter_size == f"{expected / 1e6:.2f}M" == "134.52M"
    embd = next(t for t in smollm2.tensors if t.name == "token_embd.weight")
    assert embd.dims == (576, 49152)
    assert embd.type_name == "Q8_0"
    assert {t["type"] for t in smollm2.tensor_list()} == {"F32", "Q4_1", "Q8_0"}


def test_real_file_details_and_config(smollm2: GGUFFile) -> None:
    assert smollm2.details() == {
        "parent_model": "",
        "format": "gguf",
        "family": "llama",
        "families": ["llama"],
        "parameter_size": "134.52M",
        "quantization_level": "Q4_1",
    }
    assert smollm2.config_fields() == {
        "model_format": "gguf",
        "model_family": "llama",
        "model_families": ["llama"],
        "model_type": "134.52M",
        "file_type": "Q4_1",
    }
    assert smollm2.capabilities(None) == ["completion"]


def test_real_file_model_info(smollm2: GGUFFile) -> None:
    info = smollm2.model_info(verbose=False)
    assert list(info) == sorted(info)
    assert info["general.architecture"] == "llama"
    assert info["llama.block_count"] == 30
    assert info["llama.context_length"] == 8192
    assert info["general.parameter_count"] == smollm2.parameter_count
    assert info["llama.attention.layer_norm_rms_epsilon"] == 1e-05  # float32 shown shortest
    assert "general.name" not in info and "tokenizer.chat_template" not in info
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type"):
        assert info[key] is None  # Ollama: non-empty arrays are null unless verbose
    assert info["general.languages"] is None
    json.dumps(info, allow_nan=False)

    verbose = smollm2.model_info(verbose=True)
    assert set(verbose) == set(info)
    assert len(verbose["tokenizer.ggml.tokens"]) == 49152
    assert verbose["tokenizer.ggml.merges"][0] == "Ġ t"
    assert verbose["general.languages"] == ["en"]
    json.dumps(verbose, allow_nan=False)


def test_real_file_truncated_header(smollm2_gguf: Path, tmp_path: Path) -> None:
    with smollm2_gguf.open("rb") as f:
        head = f.read(3_000_000)
    for cut in (10, 30, 1000, 200_000, 1_500_000):
        assert_bad(tmp_path, head[:cut], "unexpected EOF|count \\d+ exceeds the file size")
    # Header complete but tensor data cut off: caught by Ollama's bounds check.
    assert_bad(tmp_path, head, r"offset\+size \(\d+\) exceeds file size \(3000000\)")


# --- Ollama formatting tables --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0"),
        (999, "999"),
        (1000, "1K"),
        (1499, "1K"),
        (2500, "2K"),  # Go's %.0f rounds half to even, as Python does
        (999_999, "1000K"),
        (1_000_000, "1M"),
        (1_500_000, "1.50M"),
        (134_515_008, "134.52M"),
        (268_098_176, "268.10M"),
        (999_999_999, "1000.00M"),
        (1_000_000_000, "1B"),
        (1_500_000_000, "1.5B"),
        (7_241_732_096, "7.2B"),
        (70_000_000_000, "70B"),
    ],
)
def test_human_number(n: int, text: str) -> None:
    assert human_number(n) == text


@pytest.mark.parametrize(
    ("value", "name"),
    [(0, "F32"), (1, "F16"), (2, "Q4_0"), (3, "Q4_1"), (4, "unknown"), (7, "Q8_0"),
     (15, "Q4_K_M"), (14, "Q4_K_S"), (18, "Q6_K"), (32, "BF16"), (38, "MXFP4_MOE"),
     (1024, "unknown"), (None, "unknown")],
)  # fmt: skip
def test_file_type_names(value: int | None, name: str) -> None:
    assert file_type_name(value) == name


def test_file_type_names_match_llama_ftype() -> None:
    for member in gguf.LlamaFileType:
        if member.value in FILE_TYPE_NAMES and member.name.startswith("MOSTLY_"):
            assert FILE_TYPE_NAMES[member.value] == member.name.removeprefix("MOSTLY_")


def test_tensor_type_sizes_match_gguf_package() -> None:
    for qtype, (block, size) in gguf.GGML_QUANT_SIZES.items():
        if qtype.name == "Q8_1":  # gguf-py's entry predates ggml's half-precision d/s pair
            continue
        assert TENSOR_TYPES[int(qtype)] == (qtype.name, block, size)


# --- synthetic files -----------------------------------------------------------------------------


def all_types(w: gguf.GGUFWriter) -> None:
    w.add_uint8("t.u8", 255)
    w.add_int8("t.i8", -128)
    w.add_uint16("t.u16", 65535)
    w.add_int16("t.i16", -32768)
    w.add_uint32("t.u32", 4_000_000_000)
    w.add_int32("t.i32", -2_000_000_000)
    w.add_uint64("t.u64", 2**64 - 1)
    w.add_int64("t.i64", -(2**63))
    w.add_float32("t.f32", 0.1)
    w.add_float64("t.f64", 0.1)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "héllo ✓")
    w.add_array("t.arr_str", ["a", "", "ü"])
    w.add_array("t.arr_i32", [1, -2, 3])
    w.add_array("t.arr_f32", [0.1, 0.5, -3.25])
    w.add_array("t.arr_bool", [True, False])
    w.add_key_value("t.arr_u8", [1, 2, 255], gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.UINT8)
    w.add_key_value("t.arr_f64", [0.1, 2.0], gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.FLOAT64)
    w.add_array("t.nested", [[1, 2], [3]])
    w.add_uint32("llama.context_length", 2048)


def test_all_value_types(tmp_path: Path) -> None:
    f = read_gguf(write_gguf(tmp_path / "t.gguf", kv=all_types))
    kv = f.kv
    assert (kv["t.u8"], kv["t.i8"], kv["t.u16"], kv["t.i16"]) == (255, -128, 65535, -32768)
    assert (kv["t.u32"], kv["t.i32"]) == (4_000_000_000, -2_000_000_000)
    assert (kv["t.u64"], kv["t.i64"]) == (2**64 - 1, -(2**63))
    assert kv["t.f32"] == float(np.float32(0.1)) and kv["t.f64"] == 0.1
    assert kv["t.bool"] is True
    assert kv["t.str"] == "héllo ✓"
    assert kv["t.arr_str"] == ("a", "", "ü")
    assert kv["t.arr_i32"] == (1, -2, 3)
    assert kv["t.arr_f32"] == (float(np.float32(0.1)), 0.5, -3.25)
    assert kv["t.arr_bool"] == (True, False)
    assert kv["t.arr_u8"] == (1, 2, 255)
    assert kv["t.arr_f64"] == (0.1, 2.0)
    assert kv["t.nested"] == ((1, 2), (3,))
    assert f.value_types["t.f32"] is ValueType.FLOAT32
    assert f.value_types["t.arr_str"] is ValueType.STRING
    assert f.value_types["t.nested"] is ValueType.ARRAY
    assert f.context_length == 2048
    assert f.tensors == (TensorInfo("w", (32, 4), 0, 0),)
    assert f.parameter_count == 128 and f.parameter_size == "128"
    assert f.file_type_name == "unknown"  # no general.file_type

    info = f.model_info(verbose=True)
    assert info["t.f32"] == 0.1  # float32 in its shortest form, as Go marshals it
    assert info["t.arr_f32"] == [0.1, 0.5, -3.25]
    assert info["t.nested"] == [[1, 2], [3]]
    assert info["general.parameter_count"] == 128
    assert json.loads(json.dumps(info, allow_nan=False)) == info
    assert f.model_info()["t.arr_bool"] is None


def test_version_2_is_read(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "v2.gguf", kv=all_types)
    data = bytearray(path.read_bytes())
    data[4:8] = struct.pack("<I", 2)
    f = read_bytes(tmp_path, bytes(data))
    assert f.version == 2
    assert f.kv["t.nested"] == ((1, 2), (3,))


def test_big_vocabulary(tmp_path: Path) -> None:
    n = 100_000

    def vocab(w: gguf.GGUFWriter) -> None:
        w.add_token_list([f"tok{i}" for i in range(n)])
        w.add_token_scores([-i / 10 for i in range(n)])

    f = read_gguf(write_gguf(tmp_path / "v.gguf", kv=vocab))  # timed by bench/gguf_read.py
    assert f.kv["tokenizer.ggml.tokens"][n - 1] == f"tok{n - 1}"
    assert f.model_info(verbose=True)["tokenizer.ggml.scores"][:3] == [0.0, -0.1, -0.2]


def test_empty_array_and_non_finite_floats(tmp_path: Path) -> None:
    kvs = (
        kv_entry("general.architecture", 8, gguf_string("llama"))
        + kv_entry("x.empty", 9, struct.pack("<IQ", 5, 0))
        + kv_entry("x.nan", 6, struct.pack("<f", math.nan))
        + kv_entry("x.inf", 9, struct.pack("<IQff", 6, 2, math.inf, 1.5))
    )
    f = read_bytes(tmp_path, raw_gguf(kvs, 4))
    assert f.kv["x.empty"] == ()
    info = f.model_info(verbose=False)
    assert info["x.empty"] == []  # Ollama keeps empty arrays even when not verbose
    assert info["x.nan"] is None
    assert f.model_info(verbose=True)["x.inf"] == [None, 1.5]
    assert f.parameter_count == 0 and f.parameter_size == "0"


def test_alignment_is_honoured(tmp_path: Path) -> None:
    def aligned(w: gguf.GGUFWriter) -> None:
        w.data_alignment = 64
        w.add_uint32("general.alignment", 64)

    f = read_gguf(write_gguf(tmp_path / "a.gguf", kv=aligned))
    assert f.data_offset % 64 == 0


def test_tensor_types_and_offsets(tmp_path: Path) -> None:
    tensors: dict[str, np.ndarray[Any, Any]] = {
        "a": np.zeros((2, 64), dtype=np.float16),
        "b": np.zeros((3,), dtype=np.float32),
        "c": np.zeros((2, 2, 2, 32), dtype=np.int8),
    }
    f = read_gguf(write_gguf(tmp_path / "t.gguf", tensors=tensors))
    by_name = {t.name: t for t in f.tensors}
    assert by_name["a"].dims == (64, 2) and by_name["a"].type_name == "F16"
    assert by_name["c"].dims == (32, 2, 2, 2) and by_name["c"].type_name == "I8"
    assert by_name["b"].offset % 32 == 0
    assert f.parameter_count == 128 + 3 + 256


# --- hostile and broken files --------------------------------------------------------------------


def test_bad_magic_and_empty(tmp_path: Path) -> None:
    assert_bad(tmp_path, b"GGML" + b"\0" * 100, "invalid file magic")
    assert_bad(tmp_path, b"", "invalid file magic")
    assert_bad(tmp_path, b"GG", "invalid file magic")
    path = tmp_path / "not.gguf"
    path.write_bytes(b"PK\3\4 a zip")
    assert not is_gguf(path)
    assert not is_gguf(tmp_path / "missing")


def test_versions(tmp_path: Path) -> None:
    assert_bad(tmp_path, raw_gguf(version=1), "unsupported GGUF version 1")
    assert_bad(tmp_path, raw_gguf(version=4), "unsupported GGUF version 4")


def test_big_endian_is_rejected(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "be.gguf", endianess=gguf.GGUFEndian.BIG)
    with pytest.raises(BadRequest, match="big-endian"):
        read_gguf(path)
    assert_bad(tmp_path, b"FUGG" + b"\0" * 40, "big-endian")


def test_huge_string_length(tmp_path: Path) -> None:
    key = struct.pack("<Q", 2**62) + b"abc" + b"\0" * 16
    assert_bad(tmp_path, raw_gguf(key, 1), f"string length {2**62} exceeds maximum")
    key = struct.pack("<Q", MAX_STRING_LENGTH + 1) + b"abc" + b"\0" * 16
    assert_bad(tmp_path, raw_gguf(key, 1), "exceeds maximum")
    # Within the limit but beyond the end of the file.
    value = kv_entry("k", 8, struct.pack("<Q", 1000) + b"short")
    assert_bad(tmp_path, raw_gguf(value, 1), "unexpected EOF")
    # A huge string inside a string array.
    arr = kv_entry("k", 9, struct.pack("<IQ", 8, 2) + gguf_string("ok") + struct.pack("<Q", 2**60))
    assert_bad(tmp_path, raw_gguf(arr + b"\0" * 64, 1), "string length")


def test_huge_counts(tmp_path: Path) -> None:
    assert_bad(tmp_path, raw_gguf(n_kv=2**63), "key/value count")
    assert_bad(tmp_path, raw_gguf(n_tensors=2**40), "tensor count")
    huge = kv_entry("k", 9, struct.pack("<IQ", 4, 2**50))
    assert_bad(tmp_path, raw_gguf(huge, 1), f"array size {2**50} exceeds maximum {MAX_ARRAY_SIZE}")
    # Within the array limit, but more elements than the file has bytes for.
    big = kv_entry("k", 9, struct.pack("<IQ", 8, 1_000_000))
    assert_bad(tmp_path, raw_gguf(big + b"\0" * 100, 1), "unexpected EOF")


def test_invalid_types_and_nesting(tmp_path: Path) -> None:
    assert_bad(tmp_path, raw_gguf(kv_entry("k", 13, b"\0" * 8), 1), "invalid type: 13")
    bad_item = kv_entry("k", 9, struct.pack("<IQ", 99, 1))
    assert_bad(tmp_path, raw_gguf(bad_item + b"\0" * 8, 1), "invalid array type: 99")
    deep = struct.pack("<IQ", 9, 1) * 20 + struct.pack("<IQ", 4, 0)
    assert_bad(tmp_path, raw_gguf(kv_entry("k", 9, deep), 1), "nested deeper")
    dup = kv_entry("k", 4, b"\1\0\0\0")
    assert_bad(tmp_path, raw_gguf(dup + dup, 2), "duplicate GGUF key")


def tensor_entry(name: str, dims: tuple[int, ...], ggml_type: int = 0, offset: int = 0) -> bytes:
    shape = struct.pack(f"<I{len(dims)}Q", len(dims), *dims)
    return gguf_string(name) + shape + struct.pack("<IQ", ggml_type, offset)


def test_bad_tensor_infos(tmp_path: Path) -> None:
    five = tensor_entry("t", (1, 1, 1, 1, 1))
    assert_bad(tmp_path, raw_gguf(tensors=five, n_tensors=1), 'tensor "t" dimensions 5')
    unknown = tensor_entry("t", (32,), ggml_type=33)
    assert_bad(tmp_path, raw_gguf(tensors=unknown + b"\0" * 256, n_tensors=1), "unknown type")
    ragged = tensor_entry("t", (33,), ggml_type=2)
    assert_bad(tmp_path, raw_gguf(tensors=ragged + b"\0" * 256, n_tensors=1), "block size")
    beyond = tensor_entry("t", (1000,))
    assert_bad(tmp_path, raw_gguf(tensors=beyond + b"\0" * 64, n_tensors=1), "exceeds file size")
    huge = tensor_entry("t", (2**63, 2**63))
    assert_bad(tmp_path, raw_gguf(tensors=huge + b"\0" * 64, n_tensors=1), "overflow")
    twice = tensor_entry("t", (1,)) + tensor_entry("t", (1,), offset=32)
    assert_bad(tmp_path, raw_gguf(tensors=twice + b"\0" * 96, n_tensors=2), "duplicate")


def test_truncated_synthetic_file(tmp_path: Path) -> None:
    data = write_gguf(tmp_path / "t.gguf", kv=all_types).read_bytes()
    header_end = read_gguf(tmp_path / "t.gguf").data_offset
    for cut in range(4, header_end - 8, 7):
        with pytest.raises(BadRequest):
            read_bytes(tmp_path, data[:cut])
    assert_bad(tmp_path, data[:-1], "exceeds file size")


def test_alignment_zero(tmp_path: Path) -> None:
    kvs = kv_entry("general.alignment", 4, struct.pack("<I", 0))
    assert_bad(tmp_path, raw_gguf(kvs, 1), "invalid GGUF alignment: 0")


# --- capabilities --------------------------------------------------------------------------------


def synthetic(kv: dict[str, Any], arch: str = "llama") -> GGUFFile:
    return GGUFFile(3, {"general.architecture": arch, **kv}, ())


CHATML_TOOLS = (
    "{{- if .Tools }}tools: {{ range .Tools }}{{ . }}{{ end }}{{ end }}"
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>{{ end }}"
)
FIM = "{{ .Prompt }}{{ if .Suffix }}<fim>{{ .Suffix }}{{ end }}"
THINKING = (
    "{{ range .Messages }}{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}"
    "{{ .Content }}{{ end }}"
)


@pytest.mark.parametrize(
    ("kv", "arch", "template", "expected"),
    [
        ({}, "llama", None, ["completion"]),
        ({}, "llama", "{{ .Prompt }}", ["completion"]),
        ({"bert.pooling_type": 1}, "bert", None, ["embedding"]),
        ({"gemma3.vision.block_count": 27}, "gemma3", None, ["completion", "vision"]),
        ({"qwen.audio.block_count": 1}, "qwen", None, ["completion", "audio"]),
        ({}, "llama", CHATML_TOOLS, ["completion", "tools"]),
        ({}, "llama", FIM, ["completion", "insert"]),
        ({}, "llama", THINKING, ["completion", "thinking"]),
        ({}, "llama", "{{ .Thinking }}", ["completion"]),  # not inside range .Messages
        ({}, "llama", "tools .Tools in plain text", ["completion"]),
        ({}, "gptoss", "{{ .Prompt }}", ["completion", "thinking"]),
        ({"llama.vision.block_count": 1}, "llama", CHATML_TOOLS + "{{ .Suffix }}" + THINKING,
         ["completion", "vision", "tools", "insert", "thinking"]),
    ],
)  # fmt: skip
def test_capabilities(
    kv: dict[str, Any], arch: str, template: str | None, expected: list[str]
) -> None:
    assert synthetic(kv, arch).capabilities(template) == expected


def test_capabilities_use_the_template_predicate() -> None:
    asked: list[str] = []

    def uses(name: str) -> bool:
        asked.append(name)
        return name in ("Suffix", "Thinking")

    f = synthetic({})
    assert f.capabilities("anything", uses) == ["completion", "insert", "thinking"]
    assert asked == ["Tools", "Suffix", "Thinking"]
    assert f.capabilities("", uses) == ["completion"]
    assert f.capabilities(None, has_projector=True) == ["completion", "vision"]


def test_key_rule_and_defaults() -> None:
    f = synthetic({"llama.context_length": 4096, "tokenizer.ggml.model": "gpt2"})
    assert f.get("context_length") == 4096
    assert f.get("tokenizer.ggml.model") == "gpt2"
    assert f.get("missing", 7) == 7
    assert GGUFFile(3, {}, ()).architecture == "unknown"
    assert GGUFFile(3, {}, ()).chat_template is None
