"""Flash attention chosen by timing it on this CPU, once per model, then remembered."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from corral.engine import tuning
from corral.engine.native import L, init_backend, load_model


@pytest.fixture(scope="module")
def model(smollm2_gguf: Path) -> Iterator[Any]:
    init_backend()
    m = load_model(str(smollm2_gguf), n_gpu_layers=0, main_gpu=0, use_mmap=True, use_mlock=False)
    yield m
    L.llama_model_free(m)


def test_the_choice_is_measured_once_then_remembered(
    model: Any, smollm2_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "tuning.json"
    monkeypatch.setenv("CORRAL_TUNING_CACHE", str(cache))
    n_vocab = int(L.llama_vocab_n_tokens(L.llama_model_get_vocab(model)))
    first = tuning.choose_flash_attn(model, str(smollm2_gguf), 1, n_vocab)
    stored = json.loads(cache.read_text())
    key = tuning.tuning_key(str(smollm2_gguf), 1)
    assert stored[key]["flash_attn"] is first
    assert stored[key]["on_ms"] > 0 and stored[key]["off_ms"] > 0

    calls: list[bool] = []

    def counted(_m: object, _t: int, fa: bool, _v: int) -> float:
        calls.append(fa)
        return 1.0

    monkeypatch.setattr(tuning, "_time_once", counted)
    assert tuning.choose_flash_attn(model, str(smollm2_gguf), 1, n_vocab) is first
    assert calls == []  # remembered, not measured again
    tuning.choose_flash_attn(model, str(smollm2_gguf), 2, n_vocab)
    assert calls  # another thread count is another measurement


def test_off_must_be_clearly_faster_to_win(
    model: Any, smollm2_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CORRAL_TUNING_CACHE", str(tmp_path / "t.json"))
    times = {True: 1.00, False: 0.99}  # off 1% faster: within the margin, on is kept
    monkeypatch.setattr(tuning, "_time_once", lambda _m, _t, fa, _v: times[fa])
    assert tuning.choose_flash_attn(model, str(smollm2_gguf), 3, 10) is True
    times[False] = 0.90
    assert tuning.choose_flash_attn(model, str(smollm2_gguf), 4, 10) is False


def test_an_unreadable_cache_is_measured_over(
    model: Any, smollm2_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "tuning.json"
    cache.write_text("{not json")
    monkeypatch.setenv("CORRAL_TUNING_CACHE", str(cache))
    monkeypatch.setattr(tuning, "_time_once", lambda _m, _t, fa, _v: 1.0 if fa else 2.0)
    assert tuning.choose_flash_attn(model, str(smollm2_gguf), 1, 10) is True
    assert json.loads(cache.read_text())  # rewritten whole
