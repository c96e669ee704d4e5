"""schemathesis against a real corral server (``corral serve`` in its own process) with the real
bundled models, over HTTP: the longer run of tests/server/test_fuzz.py.

The store is a temporary one: ``corral import-bundled`` imports SmolLM2 (``smollm2:135m``) and
all-MiniLM (``all-minilm``), and a tiny GGUF is created as ``tiny`` and copied under the name of
an in-process registry (:class:`tests.registry.fakeregistry.FakeRegistry`), which serves it, so
that pull and push run for real but never reach the internet. Every operation of the served
``/openapi.json`` gets ``--max-examples`` positive and as many negative cases (derandomized:
the same cases every run), steered by :class:`tests.fuzzkit.Steer`, and every answer goes
through the checks of :mod:`tests.fuzzkit` (no 5xx, documented status and media type, body
valid against the spec, each API's error shape). A request that takes longer than ``--timeout``
counts as a hang.

Generation is bounded: ``num_predict`` (native), ``max_tokens``/``max_completion_tokens``
(``/v1``), ``max_output_tokens`` (``/v1/responses``) and ``max_tokens`` (``/v1/messages``) are
at most ``--max-predict`` (a missing one, 0 or a negative one become it), and ``num_ctx`` at
most ``--max-ctx``. Unbounded, a request may generate ten context windows (40,960 tokens with
the default 4096-token context; Ollama's bound too), several minutes on this CPU, and a large
``num_ctx`` allocates a large KV cache. Within those bounds every generated value is sent as
generated.

Prints JSON: requests per operation (and their statuses, and the most frequent refusals), failures
by operation and check with one example each (method, path and body as sent), and the elapsed
time.

    .venv/bin/python -m bench.fuzz [--max-examples 50] [--max-predict 8] [--max-ctx 2048]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import Case, GenerationMode
from tests.fuzzkit import CHECKS, Steer, error_shape
from tests.registry.fakeregistry import FakeRegistry
from tests.tinygguf import write_tiny_llama

from bench.common import machine, start_server

MODELS = ("smollm2:135m", "all-minilm")
MODEL_LAYER = "application/vnd.ollama.image.model"
HOST = {"Host": "127.0.0.1"}


def import_bundled(models: Path) -> None:
    env = {"OLLAMA_MODELS": str(models), "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "corral.cli.main", "import-bundled"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    missing = [line for line in out.stdout.splitlines() if "not installed" in line]
    if missing:
        raise SystemExit(f"bundled models missing: {missing}")


def add_tiny(url: str, gguf: Path, names: list[str]) -> None:
    """Create ``tiny`` from a tiny GGUF and copy it to each of ``names``."""
    data = gguf.read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with httpx.Client(base_url=url, timeout=120) as client:
        client.post(f"/api/blobs/{digest}", content=data).raise_for_status()
        body = {"model": "tiny", "files": {"tiny.gguf": digest}, "stream": False}
        client.post("/api/create", json=body).raise_for_status()
        for name in names:
            client.post(
                "/api/copy", json={"source": "tiny", "destination": name}
            ).raise_for_status()


class Tally:
    """Requests and failures, by operation."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.statuses: dict[str, Counter[int]] = defaultdict(Counter)
        self.failures: dict[str, Counter[str]] = defaultdict(Counter)
        self.examples: dict[str, dict[str, str]] = defaultdict(dict)
        self.refusals: dict[str, Counter[str]] = defaultdict(Counter)  # 4xx messages

    def fail(self, label: str, check: str, example: str) -> None:
        self.failures[label][check] += 1
        self.examples[label].setdefault(check, example[:2000])


def as_sent(body: Any) -> str:
    """A request body for the report (JSON as sent, bytes by their repr, none as nothing)."""
    if isinstance(body, (bytes, bytearray)):
        return repr(bytes(body[:200]))
    try:
        return json.dumps(body, ensure_ascii=True)
    except TypeError:
        return ""  # no body (schemathesis' NOT_SET)


def refusal(content: bytes) -> str:
    """The message of an error body (any API's shape), cut short."""
    try:
        error: Any = json.loads(content).get("error")
    except (ValueError, AttributeError):
        return content[:60].decode("utf-8", "replace")
    if isinstance(error, dict):
        error = error.get("message")
    return str(error)[:60]


def failure_names(exc: BaseException) -> list[str]:
    inner = getattr(exc, "exceptions", None)
    if inner:
        return [n for e in inner for n in failure_names(e)]
    title = getattr(exc, "title", None) or type(exc).__name__
    return [str(title)]


def fuzz_operation(
    operation: Any, url: str, steer: Steer, tally: Tally, examples: int, timeout: float
) -> None:
    label = operation.label
    path = operation.path
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        strategy = operation.as_strategy(mode)

        @given(case=strategy)
        @settings(
            max_examples=examples,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],
        )
        def run(case: Case[Any]) -> None:
            steer.path_parameters(path, case.path_parameters)
            case.body = steer.body(path, case.body)
            curl = f"{case.method} {case.formatted_path} {as_sent(case.body)}"
            tally.requests[label] += 1
            try:
                response = case.call(base_url=url, headers=HOST, timeout=timeout)
            except requests.Timeout:
                tally.fail(label, f"hang (no answer in {timeout:.0f} s)", curl)
                return
            except requests.RequestException as e:
                tally.fail(label, f"transport: {type(e).__name__}", curl)
                return
            tally.statuses[label][response.status_code] += 1
            if 400 <= response.status_code < 500:
                tally.refusals[label][refusal(response.content)] += 1
            try:
                case.validate_response(response, checks=CHECKS, additional_checks=[error_shape])
            except Exception as e:
                body = response.content[:300].decode("utf-8", "replace")
                for name in failure_names(e):
                    tally.fail(label, name, f"{curl}\n-> {response.status_code} {body}")

        try:
            run()
        except Exception as e:  # a strategy that cannot be satisfied (no negative inputs)
            if "Unsatisfiable" not in type(e).__name__:
                raise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=50, help="per operation and mode")
    parser.add_argument("--max-predict", type=int, default=8)
    parser.add_argument("--max-ctx", type=int, default=2048)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds: a hang")
    parser.add_argument("--only", default="", help="fuzz only operations whose label has this")
    args = parser.parse_args()
    # a SIGTERM unwinds (so the server process is stopped by ``finally``)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    started = time.perf_counter()
    registry = FakeRegistry().start()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tiny = write_tiny_llama(root / "tiny.gguf", context_length=4096, tokens=["<s>", "a"])
        registry.add_model("library/tiny", "latest", [(MODEL_LAYER, tiny.read_bytes())])
        steer = Steer(
            models=MODELS,
            registry=registry.host,
            max_predict=args.max_predict,
            max_ctx=args.max_ctx,
        )
        models = root / "models"
        import_bundled(models)
        server = start_server(models)
        try:
            add_tiny(server.url, tiny, [steer.remote_name])
            api = schemathesis.openapi.from_url(server.url + "/openapi.json", headers=HOST)
            tally = Tally()
            doc = httpx.get(server.url + "/openapi.json", headers=HOST).json()
            for path, item in doc["paths"].items():
                for method in item:
                    op = api[path][method]
                    if args.only and args.only not in op.label:
                        continue
                    fuzz_operation(op, server.url, steer, tally, args.max_examples, args.timeout)
                    elapsed = time.perf_counter() - started
                    print(f"{elapsed:7.1f} s  {op.label}", file=sys.stderr, flush=True)
            alive = server.proc is not None and server.proc.poll() is None
        finally:
            server.stop()
            registry.stop()
    out = {
        "bench": "fuzz",
        "machine": machine(),
        "max_examples_per_mode": args.max_examples,
        "max_predict": args.max_predict,
        "max_ctx": args.max_ctx,
        "requests": sum(tally.requests.values()),
        "requests_by_operation": dict(tally.requests),
        "statuses_by_operation": {k: dict(sorted(v.items())) for k, v in tally.statuses.items()},
        "top_refusals_by_operation": {k: dict(v.most_common(4)) for k, v in tally.refusals.items()},
        "failures": sum(sum(c.values()) for c in tally.failures.values()),
        "failures_by_operation": {k: dict(v) for k, v in tally.failures.items()},
        "failure_examples": dict(tally.examples),
        "server_alive_at_end": alive,
        "elapsed_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(out, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
