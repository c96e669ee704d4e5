"""Helpers shared by the benchmarks: a corral server on a free port, streaming timers."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from tests.serverproc import ServerProcess

# One client for every request: building an httpx client loads a CA bundle (tens of ms, longer
# when threads build them at once), which a timing must not count as server latency.
HTTP = httpx.Client(timeout=600, limits=httpx.Limits(max_connections=64))


@dataclass
class StreamTiming:
    ttft: float  # seconds from request to first token
    tokens: int  # tokens generated (server count)
    decode_seconds: float  # first token to last token, client side
    server_eval_ns: int

    @property
    def decode_rate(self) -> float:
        return (self.tokens - 1) / self.decode_seconds if self.decode_seconds > 0 else 0.0


def stream_generate(url: str, path: str, body: dict[str, Any]) -> StreamTiming:
    """POST a streaming request and time its first and last chunks."""
    t0 = time.perf_counter()
    first = last = 0.0
    final: dict[str, Any] = {}
    with HTTP.stream("POST", url + path, json=body) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line:
                continue
            obj = json.loads(line)
            now = time.perf_counter()
            piece = obj.get("response") or (obj.get("message") or {}).get("content")
            if piece and not first:
                first = now
            if piece:
                last = now
            if obj.get("error"):
                raise RuntimeError(obj["error"])
            if obj.get("done"):
                final = obj
    return StreamTiming(
        first - t0,
        int(final.get("eval_count", 0)),
        last - first,
        int(final.get("eval_duration", 0)),
    )


def start_server(models: Path, **env: str) -> ServerProcess:
    return ServerProcess(models, env=env).start(timeout=60)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def machine() -> dict[str, Any]:
    """The CPU count and model, for the record next to a benchmark's figures."""
    text = Path("/proc/cpuinfo").read_text(errors="replace")
    names = [ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")]
    return {"nproc": len(os.sched_getaffinity(0)), "cpu": names[0] if names else "unknown"}
