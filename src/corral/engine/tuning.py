"""Flash attention on or off, chosen by measuring this CPU with this model (and remembered).

Whether llama.cpp's flash-attention kernels make CPU inference faster depends on the CPU and
the model: on one 2-core machine decode was 20-25% slower with them, on another (AMD EPYC with
AVX-512) 7-10% faster, and a 1,000-token prefill 30% faster. So when nothing forces the choice
(``OLLAMA_FLASH_ATTENTION`` unset) and the build has no GPU, the first load of a model on a
machine times a short prefill and a few decode steps both ways, in small throw-away contexts
(a few milliseconds for a small model, a few seconds for a 7B one), and keeps the faster one
— on unless off is clearly faster, since with it on a request's output does not depend on what
else shares its batch. The result is remembered per CPU, model file and thread count in
``$CORRAL_TUNING_CACHE`` (default ``~/.cache/corral/tuning.json``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from corral.engine.native import Batch, ContextConfig, L, new_context

log = logging.getLogger(__name__)

PREFILL = 32
DECODE = 6
ROUNDS = 2
OFF_MUST_WIN_BY = 0.03  # keep flash attention unless off is at least 3% faster


def cache_path() -> Path:
    raw = os.environ.get("CORRAL_TUNING_CACHE", "").strip()
    if raw:
        return Path(raw).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base) / "corral" / "tuning.json"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return os.uname().machine


def tuning_key(model_path: str, n_threads: int) -> str:
    size = Path(model_path).stat().st_size if Path(model_path).exists() else 0
    return f"{cpu_name()}|{os.cpu_count()}|{Path(model_path).name}|{size}|t{n_threads}"


def _load_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _store(path: Path, key: str, value: dict[str, Any]) -> None:
    data = _load_cache(path)
    data[key] = value
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tuning-")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, path)


def _time_once(model: Any, n_threads: int, flash_attn: bool, n_vocab: int) -> float:
    """Seconds for a short prefill and a few single-token decode steps."""
    cfg = ContextConfig(
        n_ctx=PREFILL + DECODE + 8,
        n_batch=PREFILL,
        n_seq_max=1,
        n_threads=n_threads,
        kv_unified=False,
        flash_attn=flash_attn,
    )
    ctx = new_context(model, cfg)
    batch = Batch(PREFILL)
    try:
        tokens = [(7 * i + 11) % max(n_vocab, 1) for i in range(PREFILL + DECODE)]
        t0 = time.perf_counter()
        batch.add(tokens[:PREFILL], 0, 0, True)
        if L.llama_decode(ctx, batch.raw) != 0:
            raise RuntimeError("decode failed")
        for i in range(DECODE):
            batch.clear()
            batch.add([tokens[PREFILL + i]], PREFILL + i, 0, True)
            if L.llama_decode(ctx, batch.raw) != 0:
                raise RuntimeError("decode failed")
        return time.perf_counter() - t0
    finally:
        batch.free()
        L.llama_free(ctx)


def choose_flash_attn(model: Any, model_path: str, n_threads: int, n_vocab: int) -> bool:
    """Whether to run this model with flash attention on this CPU (see the module docstring)."""
    path = cache_path()
    key = tuning_key(model_path, n_threads)
    cached = _load_cache(path).get(key)
    if isinstance(cached, dict) and isinstance(cached.get("flash_attn"), bool):
        return bool(cached["flash_attn"])
    try:
        best = {False: float("inf"), True: float("inf")}
        for _ in range(ROUNDS):
            for fa in (True, False):
                best[fa] = min(best[fa], _time_once(model, n_threads, fa, n_vocab))
    except Exception as e:  # a model these kernels cannot run: leave llama.cpp's default
        log.warning("flash attention could not be timed (%s); leaving it off", e)
        return False
    choice = not best[False] < best[True] * (1 - OFF_MUST_WIN_BY)
    log.info(
        "flash attention %s (on %.1f ms, off %.1f ms)", choice, best[True] * 1e3, best[False] * 1e3
    )
    _store(
        path,
        key,
        {
            "flash_attn": choice,
            "on_ms": round(best[True] * 1e3, 2),
            "off_ms": round(best[False] * 1e3, 2),
        },
    )
    return choice
