"""Several busy models on one machine: the CPU budget across runners (issue 12); prints JSON.

Run: .venv/bin/python -m bench.cpu_budget [--rounds 3]   (a few minutes on 2 cores)

One corral server holds SmolLM2 (chat), Gemma 3 270M (a second chat model) and all-MiniLM
(embeddings, imported from the bundled safetensors), all with their default threads (one per
core). In rounds, alternating, it measures:

* ``chat``: SmolLM2 streaming a story alone, decode tok/s (tokens after the first / time);
* ``embed``: all-minilm embedding batches of 32 sentences alone, inputs/s;
* ``chat_with_embed``: both at once, each measured over the chat's stream;
* ``gemma`` alone, then ``two_chats``: SmolLM2 and Gemma streaming at once.

Ratios (targets): chat while embedding >= 0.45x chat alone; embedding while chatting >= 0.45x
alone; two chat models at once, the sum of each one's rate over its rate alone >= 0.9 (the work
done per second, against one model at a time). The best round of each figure counts.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import ollama

from bench.common import machine, start_server, stream_generate
from bench.embed_throughput import MODEL as EMBED
from bench.embed_throughput import create_minilm, sentences
from corral import bundled

SMOL, GEMMA = "smol", "gemma"
STORY = "Write a long, detailed story about a lighthouse keeper and a storm."
PREDICT = 128
CHAT_OPTIONS = {"num_predict": PREDICT, "temperature": 0, "num_ctx": 2048}


def stream_rate(url: str, model: str) -> float:
    """Decode tok/s of one streamed generation (client-side, first token to last)."""
    body = {"model": model, "prompt": STORY, "options": CHAT_OPTIONS, "stream": True}
    return stream_generate(url, "/api/generate", body).decode_rate


class Embedder(threading.Thread):
    """Embeds batches of 32 sentences back to back until stopped; counts inputs per second."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.client = httpx.Client(timeout=600)
        self.texts = sentences(32)
        self.stop = threading.Event()
        self.done = 0
        self.seconds = 0.0

    def run(self) -> None:
        t0 = time.perf_counter()
        while not self.stop.is_set():
            r = self.client.post(
                self.url + "/api/embed", json={"model": EMBED, "input": self.texts}
            )
            r.raise_for_status()
            self.done += len(self.texts)
        self.seconds = time.perf_counter() - t0

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0


def embed_alone(url: str, seconds: float) -> float:
    e = Embedder(url)
    e.start()
    time.sleep(seconds)  # a measurement window, not an ordering
    e.stop.set()
    e.join()
    return e.rate


def chat_with_embed(url: str) -> tuple[float, float]:
    e = Embedder(url)
    e.start()
    while e.done == 0:  # the embedder is busy before the chat starts
        time.sleep(0.01)
    chat = stream_rate(url, SMOL)
    e.stop.set()
    e.join()
    return chat, e.rate


def two_chats(url: str) -> tuple[float, float]:
    rates: dict[str, float] = {}

    def run(model: str) -> None:
        rates[model] = stream_rate(url, model)

    threads = [threading.Thread(target=run, args=(m,)) for m in (SMOL, GEMMA)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return rates[SMOL], rates[GEMMA]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    smol_gguf, gemma_gguf = bundled.smollm2_gguf(), bundled.gemma3_gguf()
    assert smol_gguf is not None and gemma_gguf is not None, "make test installs the models"
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp) / "models")
        try:
            url = server.url
            client = ollama.Client(host=url)
            client.create(model=SMOL, files={"m.gguf": client.create_blob(smol_gguf)})
            client.create(model=GEMMA, files={"m.gguf": client.create_blob(gemma_gguf)})
            create_minilm(client)
            for m in (SMOL, GEMMA):  # load and warm up
                stream_rate(url, m)
            embed_alone(url, 1.0)
            runs: dict[str, list[float]] = {}

            def add(key: str, value: float) -> None:
                runs.setdefault(key, []).append(round(value, 2))

            for _ in range(args.rounds):
                add("chat_alone_tok_s", stream_rate(url, SMOL))
                add("embed_alone_inputs_s", embed_alone(url, 5.0))
                chat, emb = chat_with_embed(url)
                add("chat_with_embed_tok_s", chat)
                add("embed_with_chat_inputs_s", emb)
                add("gemma_alone_tok_s", stream_rate(url, GEMMA))
                smol, gemma = two_chats(url)
                add("two_chats_smol_tok_s", smol)
                add("two_chats_gemma_tok_s", gemma)
        finally:
            server.stop()
    best = {k: max(v) for k, v in runs.items()}
    out: dict[str, Any] = {
        "machine": machine(),
        "runs": runs,
        "best": best,
        "ratios": {
            "chat_while_embedding": round(
                best["chat_with_embed_tok_s"] / best["chat_alone_tok_s"], 3
            ),
            "embedding_while_chatting": round(
                best["embed_with_chat_inputs_s"] / best["embed_alone_inputs_s"], 3
            ),
            "two_chats_work_per_second": round(
                best["two_chats_smol_tok_s"] / best["chat_alone_tok_s"]
                + best["two_chats_gemma_tok_s"] / best["gemma_alone_tok_s"],
                3,
            ),
        },
        "targets": {
            "chat_while_embedding": ">= 0.45",
            "embedding_while_chatting": ">= 0.45",
            "two_chats_work_per_second": ">= 0.9",
        },
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
