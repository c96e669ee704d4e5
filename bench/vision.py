"""Vision on a real (designed) projector over SmolLM2; prints one JSON object.

Run: .venv/bin/python -m bench.vision   (about a minute on 2 cores)

1. image_ttft_s: time to first token of a chat turn carrying one image (median of 5, a new
   image each time so that nothing comes from the prompt cache), and the same turn without it;
2. three text clients streaming at once, alone and while a fourth client sends image requests
   back to back: their aggregate decode tok/s, and the ratio (rounds alternate).
"""

from __future__ import annotations

import base64
import json
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import ollama
from tests.visionfixture import build_projector, solid_image

from bench.common import machine, start_server
from corral import bundled

SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
QUESTION = "What color is this image? Answer with one word."


def image(i: int) -> str:
    return base64.b64encode(solid_image((255 - i, i, 0))).decode()


def ttft(client: ollama.Client, msgs: list[dict[str, Any]]) -> float:
    t0 = time.perf_counter()
    for chunk in client.chat(model="vis", messages=msgs, stream=True, options={"num_predict": 4}):
        if chunk.message.content:
            return time.perf_counter() - t0
    return time.perf_counter() - t0


def text_stream(client: ollama.Client, tag: str) -> float:
    first = last = 0.0
    n = 0
    msgs = [{"role": "user", "content": f"{tag}: write a long story about a lighthouse."}]
    for chunk in client.chat(model="vis", messages=msgs, stream=True, options={"num_predict": 96}):
        if chunk.message.content:
            now = time.perf_counter()
            first = first or now
            last, n = now, n + 1
    return (n - 1) / (last - first) if last > first else 0.0


def images_loop(client: ollama.Client, r: int, stop: threading.Event, sent: list[int]) -> None:
    """Image requests back to back (a new image each), until ``stop``."""
    k = 0
    while not stop.is_set():
        msg = {"role": "user", "content": QUESTION, "images": [image(50 + r * 40 + k)]}
        client.chat(model="vis", messages=[msg], options={"num_predict": 8})
        k, sent[0] = k + 1, sent[0] + 1


def main() -> None:
    gguf = bundled.smollm2_gguf()
    assert gguf is not None
    out: dict[str, Any] = {"machine": machine()}
    with tempfile.TemporaryDirectory() as tmp:
        proj = build_projector(Path(tmp) / "mmproj.gguf", gguf)
        server = start_server(Path(tmp) / "models", OLLAMA_NUM_PARALLEL="4")
        try:
            client = ollama.Client(host=server.url)
            files = {"a.gguf": client.create_blob(proj), "b.gguf": client.create_blob(gguf)}
            client.create(model="vis", files=files, system=SYSTEM, parameters={"temperature": 0})
            ttft(client, [{"role": "user", "content": "warm up"}])
            with_img, without = [], []
            for i in range(5):
                msg = {"role": "user", "content": f"{i} {QUESTION}"}
                without.append(ttft(client, [msg]))
                with_img.append(ttft(client, [{**msg, "images": [image(i)]}]))
            out["image_ttft_s"] = statistics.median(with_img)
            out["text_ttft_s"] = statistics.median(without)

            def three(tag: str) -> float:
                with ThreadPoolExecutor(3) as ex:
                    return sum(ex.map(lambda k: text_stream(client, f"{tag}-{k}"), range(3)))

            alone, beside = [], []
            for r in range(3):
                alone.append(three(f"alone{r}"))
                stop = threading.Event()
                sent = [0]

                th = threading.Thread(target=images_loop, args=(client, r, stop, sent))
                th.start()
                beside.append(three(f"beside{r}"))
                stop.set()
                th.join()
                out.setdefault("image_requests_during_rounds", []).append(sent[0])
            out["three_text_clients_tok_s_alone"] = statistics.median(alone)
            out["three_text_clients_tok_s_with_image_client"] = statistics.median(beside)
            out["ratio_with_image_over_alone"] = statistics.median(beside) / statistics.median(
                alone
            )
        finally:
            server.stop()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
