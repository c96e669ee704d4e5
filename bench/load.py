"""100 clients on two real models for a minute: errors, latency, memory, leaks; prints JSON.

Run: .venv/bin/python -m bench.load [--clients 100] [--seconds 60]

One corral server holds SmolLM2 (chat and generate) and all-MiniLM (embeddings, imported from
the bundled safetensors). Client processes, each with its own event loop, run for ``--seconds``:

* generation clients (most of them): ``/api/chat``, ``/api/generate`` and ``/v1/chat/completions``
  on SmolLM2, streamed and not, 8 to 48 tokens each; one stream in ten is dropped after its
  third chunk (a client that goes away);
* embedding clients: ``/api/embed`` batches of 1 to 16 sentences on all-MiniLM;
* pollers, like chat UIs: ``/api/tags``, ``/api/show`` and ``/api/ps`` in turn, with a short pause
  (they run in a process of their own, so a busy load generator cannot inflate their latency).

Reported: requests by kind and status (only 503s, past ``OLLAMA_MAX_QUEUE``, are allowed besides
200), p50/p95 latency by kind (time to the whole answer; for streams, to the last chunk), the
server's and runners' resident memory at the start (after a warm-up under the same load,
which fills the slots' caches) and at the end of the run, and runner processes
left after the models are stopped and after the server exits (target 0). Target from issue 14:
tags/show/ps p95 <= 100 ms while the models are saturated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import random
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import ollama

from bench.common import machine, start_server
from bench.embed_throughput import MODEL as EMBED
from bench.embed_throughput import create_minilm, sentences
from corral import bundled

CHAT = "smol"
PROMPTS = [
    "Tell me about lighthouses.",
    "Write a haiku about rain.",
    "Explain what a compiler does.",
    "List three fruits and their colours.",
    "Why is the sky blue?",
]


@dataclass
class Record:
    kind: str
    status: int
    seconds: float


def _gen_request(rng: random.Random) -> tuple[str, str, dict[str, Any], bool]:
    """(kind, path, body, stream) for one generation request."""
    stream = rng.random() < 0.7
    n = rng.randint(8, 48)
    prompt = rng.choice(PROMPTS)
    route = rng.choice(("chat", "generate", "v1"))
    if route == "chat":
        body: dict[str, Any] = {
            "model": CHAT,
            "messages": [{"role": "user", "content": prompt}],
            "options": {"num_predict": n},
            "stream": stream,
        }
        path = "/api/chat"
    elif route == "generate":
        body = {"model": CHAT, "prompt": prompt, "options": {"num_predict": n}, "stream": stream}
        path = "/api/generate"
    else:
        body = {
            "model": CHAT,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": n,
            "stream": stream,
        }
        path = "/v1/chat/completions"
    kind = f"{route}{'-stream' if stream else ''}"
    return kind, path, body, stream


async def _generation(
    http: httpx.AsyncClient, rng: random.Random, out: list[Record], end: float
) -> None:
    while time.monotonic() < end:
        kind, path, body, stream = _gen_request(rng)
        drop = stream and rng.random() < 0.1
        t0 = time.perf_counter()
        if not stream:
            r = await http.post(path, json=body)
            out.append(Record(kind, r.status_code, time.perf_counter() - t0))
            continue
        async with http.stream("POST", path, json=body) as r:
            status = r.status_code
            chunks = 0
            async for line in r.aiter_lines():
                if not line.strip():
                    continue
                chunks += 1
                if line.removeprefix("data: ").startswith('{"error"'):
                    status = 599  # an error line inside a 200 stream
                if drop and chunks >= 3:
                    break
        out.append(Record("dropped" if drop else kind, status, time.perf_counter() - t0))


async def _embedder(
    http: httpx.AsyncClient, rng: random.Random, out: list[Record], end: float
) -> None:
    texts = sentences(16)
    while time.monotonic() < end:
        batch = texts[: rng.randint(1, 16)]
        t0 = time.perf_counter()
        r = await http.post("/api/embed", json={"model": EMBED, "input": batch})
        out.append(Record("embed", r.status_code, time.perf_counter() - t0))


async def _poller(
    http: httpx.AsyncClient, rng: random.Random, out: list[Record], end: float
) -> None:
    calls = [
        ("tags", "GET", "/api/tags", None),
        ("show", "POST", "/api/show", {"model": CHAT}),
        ("ps", "GET", "/api/ps", None),
        ("tags", "GET", "/api/tags", None),
        ("show", "POST", "/api/show", {"model": EMBED, "verbose": True}),
        ("ps", "GET", "/api/ps", None),
    ]
    i = rng.randrange(len(calls))
    while time.monotonic() < end:
        kind, method, path, body = calls[i % len(calls)]
        i += 1
        t0 = time.perf_counter()
        r = await http.request(method, path, json=body)
        out.append(Record(kind, r.status_code, time.perf_counter() - t0))
        await asyncio.sleep(rng.uniform(0.1, 0.3))  # a UI's polling pace


async def _run_clients(url: str, roles: list[str], seconds: float, seed: int) -> list[Record]:
    out: list[Record] = []
    end = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=len(roles) + 4, max_keepalive_connections=len(roles))
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as http:
        tasks = []
        for i, role in enumerate(roles):
            rng = random.Random(seed * 1000 + i)
            fn = {"gen": _generation, "embed": _embedder, "poll": _poller}[role]
            tasks.append(asyncio.create_task(fn(http, rng, out, end)))
        await asyncio.gather(*tasks)
    return out


def _client_process(
    url: str, roles: list[str], seconds: float, seed: int, q: mp.Queue[Any]
) -> None:
    records = asyncio.run(_run_clients(url, roles, seconds, seed))
    q.put([(r.kind, r.status, r.seconds) for r in records])


def run_load(
    url: str, groups: list[list[str]], seconds: float, seed: int
) -> list[tuple[str, int, float]]:
    """One process per group of client roles, all for ``seconds``; their records."""
    q: mp.Queue[Any] = mp.Queue()
    procs = [
        mp.Process(target=_client_process, args=(url, g, seconds, seed * 100 + i, q))
        for i, g in enumerate(groups)
    ]
    for p in procs:
        p.start()
    rows = [r for _ in procs for r in q.get()]
    for p in procs:
        p.join()
    return rows


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (the runners of a corral server)."""
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            found.append(int(p.name))
    return found


def wait_for_no_children(pid: int, timeout: float) -> list[int]:
    """Poll until the server has no child processes (runners exit after an unload)."""
    deadline = time.monotonic() + timeout
    while (left := children(pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def memory(server_pid: int) -> dict[str, float]:
    runners = children(server_pid)
    return {
        "server_rss_mb": round(rss_mb(server_pid), 1),
        "runners_rss_mb": round(sum(rss_mb(p) for p in runners), 1),
        "runners": len(runners),
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def split_roles(clients: int, processes: int) -> list[list[str]]:
    """Pollers in a process of their own; generation and embedding clients spread over the rest."""
    pollers = max(1, clients // 10)
    embedders = max(1, clients // 5)
    gens = clients - pollers - embedders
    workers: list[list[str]] = [[] for _ in range(processes)]
    for i, role in enumerate(["gen"] * gens + ["embed"] * embedders):
        workers[i % processes].append(role)
    return [["poll"] * pollers, *workers]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--warmup", type=float, default=15, help="load before memory is read")
    ap.add_argument("--processes", type=int, default=3, help="load-generating processes")
    args = ap.parse_args()
    smol = bundled.smollm2_gguf()
    assert smol is not None, "make test installs the models"
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp) / "models")
        assert server.proc is not None
        pid = server.proc.pid
        try:
            client = ollama.Client(host=server.url)
            client.create(model=CHAT, files={"m.gguf": client.create_blob(smol)})
            create_minilm(client)
            client.generate(model=CHAT, prompt="hi", options={"num_predict": 1})  # load both
            client.embed(model=EMBED, input="hi")
            groups = split_roles(args.clients, args.processes)
            run_load(server.url, groups, args.warmup, seed=1)  # fill the slots and caches first
            mem_start = memory(pid)
            rows = run_load(server.url, groups, args.seconds, seed=2)
            mem_end = memory(pid)
            ps_models = len(client.ps().models)
            for m in (CHAT, EMBED):  # unload, as `corral stop` does: every runner must go
                client.generate(model=m, keep_alive=0)
            left_loaded = wait_for_no_children(pid, timeout=30)
        finally:
            server.stop()
        left_after_exit = [p for p in left_loaded if Path(f"/proc/{p}").exists()]
    by_kind: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for kind, status, seconds in rows:
        by_kind[kind].append((status, seconds))
    table: dict[str, dict[str, Any]] = {}
    bad: dict[str, dict[str, int]] = {}
    for kind, recs in sorted(by_kind.items()):
        statuses: dict[str, int] = defaultdict(int)
        for status, _ in recs:
            statuses[str(status)] += 1
        if set(statuses) - {"200", "503"}:
            bad[kind] = dict(statuses)
        ok = [s for st, s in recs if st == 200]
        table[kind] = {
            "requests": len(recs),
            "by_status": dict(statuses),
            "p50_s": round(percentile(ok, 0.5), 3) if ok else None,
            "p95_s": round(percentile(ok, 0.95), 3) if ok else None,
        }
    polls = [s for k in ("tags", "show", "ps") for st, s in by_kind.get(k, []) if st == 200]
    print(
        json.dumps(
            {
                "machine": machine(),
                "clients": args.clients,
                "seconds": args.seconds,
                "requests": len(rows),
                "errors_other_than_503": bad,
                "by_kind": table,
                "tags_show_ps_p95_s": round(percentile(polls, 0.95), 3) if polls else None,
                "memory_start": mem_start,
                "memory_end": mem_end,
                "models_loaded_at_end": ps_models,
                "runner_processes_after_unload": len(left_loaded),
                "runner_processes_after_server_exit": len(left_after_exit),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
