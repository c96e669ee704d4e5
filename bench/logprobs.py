"""The cost of log probabilities: decode tok/s with ``logprobs: true, top_logprobs: 5`` ÷ without
(issue 15 target >= 0.9); prints JSON.

Run: .venv/bin/python -m bench.logprobs [--rounds 5]

One corral server with SmolLM2; each round streams the same 128-token generation once without
and once with log probabilities (the order alternating between rounds). The median of each
counts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

import ollama

from bench.common import machine, start_server, stream_generate
from corral import bundled

MODEL = "smol"
BODY: dict[str, Any] = {
    "model": MODEL,
    "prompt": "Write a long, detailed story about a lighthouse keeper and a storm.",
    "options": {"num_predict": 128, "temperature": 0, "num_ctx": 2048},
    "stream": True,
}


def rate(url: str, logprobs: bool) -> float:
    body = {**BODY, "logprobs": True, "top_logprobs": 5} if logprobs else BODY
    return stream_generate(url, "/api/generate", body).decode_rate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    gguf = bundled.smollm2_gguf()
    assert gguf is not None, "make test installs the models"
    runs: dict[str, list[float]] = {"plain": [], "logprobs": []}
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp) / "models")
        try:
            client = ollama.Client(host=server.url)
            client.create(model=MODEL, files={"m.gguf": client.create_blob(gguf)})
            rate(server.url, False)  # load and warm up
            for i in range(args.rounds):
                order = (False, True) if i % 2 == 0 else (True, False)
                for with_lp in order:
                    runs["logprobs" if with_lp else "plain"].append(
                        round(rate(server.url, with_lp), 1)
                    )
        finally:
            server.stop()
    plain, lp = statistics.median(runs["plain"]), statistics.median(runs["logprobs"])
    print(
        json.dumps(
            {
                "machine": machine(),
                "runs_tok_s": runs,
                "plain_tok_s": plain,
                "logprobs_top5_tok_s": lp,
                "ratio": round(lp / plain, 3),
                "target": ">= 0.9",
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
