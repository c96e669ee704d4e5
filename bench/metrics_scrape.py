"""How long a ``GET /metrics`` scrape takes while 4 clients keep SmolLM2's slots busy (issue 15),
and idle; prints JSON.

Run: .venv/bin/python -m bench.metrics_scrape [--scrapes 50]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import ollama

from bench.common import machine, p95, start_server
from corral import bundled

MODEL = "smol"


def scrape_times(url: str, n: int) -> list[float]:
    times = []
    with httpx.Client(timeout=60) as http:
        for _ in range(n):
            t0 = time.perf_counter()
            r = http.get(url + "/metrics")
            times.append(time.perf_counter() - t0)
            r.raise_for_status()
            time.sleep(0.05)  # a scraper's pace, not an ordering
    return times


def busy_client(url: str, stop: threading.Event, started: threading.Event) -> None:
    body = {"model": MODEL, "prompt": "Tell me a long story.", "options": {"num_predict": 256}}
    with httpx.Client(timeout=600) as http:
        while not stop.is_set():
            with http.stream("POST", url + "/api/generate", json=body) as r:
                for _ in r.iter_lines():
                    started.set()
                    if stop.is_set():
                        break


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scrapes", type=int, default=50)
    args = ap.parse_args()
    gguf = bundled.smollm2_gguf()
    assert gguf is not None, "make test installs the models"
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp) / "models")
        try:
            client = ollama.Client(host=server.url)
            client.create(model=MODEL, files={"m.gguf": client.create_blob(gguf)})
            client.generate(model=MODEL, prompt="hi", options={"num_predict": 1})
            idle = scrape_times(server.url, args.scrapes)
            stop = threading.Event()
            starts = [threading.Event() for _ in range(4)]
            workers = [
                threading.Thread(target=busy_client, args=(server.url, stop, s)) for s in starts
            ]
            for w in workers:
                w.start()
            for s in starts:
                s.wait()
            busy = scrape_times(server.url, args.scrapes)
            stop.set()
            for w in workers:
                w.join()
            size = len(httpx.get(server.url + "/metrics").content)
        finally:
            server.stop()
    ms = 1000
    print(
        json.dumps(
            {
                "machine": machine(),
                "scrapes": args.scrapes,
                "idle_ms": {
                    "p50": round(statistics.median(idle) * ms, 2),
                    "p95": round(p95(idle) * ms, 2),
                },
                "four_busy_clients_ms": {
                    "p50": round(statistics.median(busy) * ms, 2),
                    "p95": round(p95(busy) * ms, 2),
                },
                "response_bytes": size,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
