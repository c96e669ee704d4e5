"""Decode speed of corral's LlamaEngine on SmolLM2, printed as JSON.

* single-stream greedy decode: LlamaEngine vs llama-cpp-python's high-level ``Llama`` with the
  same threads, batch, context and greedy sampling;
* aggregate decode throughput with 1, 2 and 4 parallel streams (split and unified KV cache);
* a 1,000-token second turn with prefix reuse vs evaluated from scratch;
* decode speed with a JSON-schema grammar relative to the same requests without one.

Usage: ``python bench/engine_decode.py [--threads N] [--tokens N] [--repeat N] [--only SECTION]``
(sections: single, turn, aggregate, grammar). The machine is shared, so every measurement is
repeated, compared runs are interleaved, and all runs are reported with the best.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from corral import bundled
from corral.engine.grammar import json_grammar
from corral.engine.llamacpp import LlamaEngine
from corral.engine.sampling import RequestSampler
from corral.engine.types import DoneEvent, GenerateRequest, LoadSpec, SamplingParams, TokenEvent

COUNTING = "Count from 1 to 500: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,"
SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 24},
        "age": {"type": "integer"},
        "city": {"type": "string", "maxLength": 24},
        "hobbies": {"type": "array", "items": {"type": "string", "maxLength": 24}, "maxItems": 4},
    },
    "required": ["name", "age", "city", "hobbies"],
}
PEOPLE = ["Ann", "Bob", "Chiara", "Dmitri", "Esther", "Farid"]


def chat(q: str) -> str:
    return f"<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n"


def best(runs: list[float]) -> dict[str, Any]:
    return {"best": round(max(runs), 1), "runs": [round(r, 1) for r in runs]}


def engine_single(engine: LlamaEngine, n_tokens: int, rid: int) -> float:
    prompt = tuple(engine.tokenize(COUNTING))
    engine.submit(GenerateRequest(rid, prompt, SamplingParams(temperature=0, num_predict=n_tokens)))
    done: DoneEvent | None = None
    while engine.has_work():
        for ev in engine.step():
            if isinstance(ev, DoneEvent):
                done = ev
    assert done is not None and done.eval_count > 1
    return (done.eval_count - 1) / (done.eval_duration_ns / 1e9)


def highlevel_single(path: str, threads: int, n_tokens: int) -> Callable[[], float]:
    import llama_cpp
    import llama_cpp.llama as hl

    default_params = llama_cpp.llama_model_default_params

    def no_extra_bufts() -> Any:  # the AMX buffer type crashes on this CPU (see native.py)
        params = default_params()
        params.use_extra_bufts = False
        return params

    hl.llama_cpp.llama_model_default_params = no_extra_bufts  # type: ignore[attr-defined]
    llm = llama_cpp.Llama(
        path, n_ctx=2048, n_batch=512, n_threads=threads, n_threads_batch=threads, verbose=False
    )
    tokens = llm.tokenize(COUNTING.encode(), special=True)

    def once() -> float:
        llm.reset()  # type: ignore[no-untyped-call]
        first = last = 0.0
        for i, _tok in enumerate(
            llm.generate(tokens, temp=0.0, top_k=1, repeat_penalty=1.0, reset=True)
        ):
            now = time.perf_counter()
            if i == 0:
                first = now
            last = now
            if i + 1 >= n_tokens:
                break
        return (n_tokens - 1) / (last - first)

    return once


def aggregate(engine: LlamaEngine, streams: int, n_tokens: int, base_id: int) -> float:
    """Tokens per second over all streams, from the step where all generate to the end."""
    for i in range(streams):
        text = f"Stream {i}. {COUNTING}"
        engine.submit(
            GenerateRequest(
                base_id + i,
                tuple(engine.tokenize(text)),
                SamplingParams(temperature=0, num_predict=n_tokens),
            )
        )
    started: set[int] = set()
    t0: float | None = None
    counted = 0
    while engine.has_work():
        events = engine.step()
        if t0 is not None:
            counted += sum(isinstance(ev, TokenEvent) for ev in events)
        started |= {ev.request_id for ev in events if isinstance(ev, TokenEvent)}
        if t0 is None and len(started) == streams:
            t0 = time.perf_counter()
    assert t0 is not None
    return counted / (time.perf_counter() - t0)


def second_turn(path: str, threads: int) -> dict[str, Any]:
    """Prompt time of a ~1,000-token second turn: cold vs after its first turn (prefix reuse)."""
    words = ["river", "stone", "lantern", "meadow", "copper", "violet", "harbor", "thunder"]
    notes = " ".join(words[(i * 7) % len(words)] for i in range(950))
    first = chat(f"Notes: {notes}\nSummarise them.")
    second = first + "They are words.<|im_end|>\n<|im_start|>user\nShorter?<|im_end|>\n"
    second += "<|im_start|>assistant\n"
    out: dict[str, Any] = {}
    for label, prompts in (("cold", [second]), ("reused", [first, second])):
        engine = LlamaEngine(LoadSpec(model_path=path, n_ctx=2048, n_parallel=1, n_threads=threads))
        out["prompt_tokens"] = len(engine.tokenize(second))
        done: DoneEvent | None = None
        for rid, p in enumerate(prompts):
            params = SamplingParams(temperature=0, num_predict=1)
            engine.submit(GenerateRequest(rid, tuple(engine.tokenize(p)), params))
            while engine.has_work():
                for ev in engine.step():
                    if isinstance(ev, DoneEvent):
                        done = ev
        engine.close()
        assert done is not None
        out[label] = {
            "evaluated": done.prompt_eval_count,
            "cached": done.cached_tokens,
            "prompt_ms": round(done.prompt_eval_duration_ns / 1e6, 1),
        }
    return out


def _timed_sample(samples: list[int]) -> Callable[[Any, Any, int], int]:
    """A RequestSampler.sample that records how long each call takes."""
    plain = RequestSampler.sample

    def sample(self: Any, ctx: Any, idx: int) -> int:
        t0 = time.perf_counter_ns()
        token = plain(self, ctx, idx)
        samples.append(time.perf_counter_ns() - t0)
        return token

    return sample


def _one_request(engine: LlamaEngine, rid: int, prompt: str, params: SamplingParams) -> Any:
    engine.submit(GenerateRequest(rid, tuple(engine.tokenize(prompt)), params))
    sampler = engine._queue[-1][1] if engine._queue else None
    done: DoneEvent | None = None
    while engine.has_work():
        for ev in engine.step():
            if isinstance(ev, DoneEvent):
                done = ev
    assert done is not None and done.reason in ("stop", "length"), done
    return done, sampler


def grammar_ratio(engine: LlamaEngine, rid: int, rounds: int) -> dict[str, Any]:
    """The same requests (greedy and sampled, 6 prompts) with and without a JSON-schema grammar,
    run in alternation so that load changes hit both. Reports the ratio of the best decode
    rates, the median of the per-pair ratios, and the time spent sampling per token."""
    grammar = json_grammar(SCHEMA)
    rates: dict[str, list[float]] = {"plain": [], "schema": []}
    sample_ns: dict[str, list[int]] = {"plain": [], "schema": []}
    pair_ratios: list[float] = []
    rejections = full = schema_tokens = 0
    original = RequestSampler.sample
    try:
        for _ in range(rounds):
            for i, name in enumerate(PEOPLE):
                prompt = chat(f"Describe a person called {name} as a JSON object.")
                pair: dict[str, float] = {}
                for label, g in (("plain", None), ("schema", grammar)):
                    params = SamplingParams(
                        temperature=0.0 if i % 2 == 0 else 0.9, seed=i, num_predict=64, grammar=g
                    )
                    RequestSampler.sample = _timed_sample(sample_ns[label])  # type: ignore[method-assign,assignment]
                    done, sampler = _one_request(engine, rid, prompt, params)
                    rid += 1
                    pair[label] = (done.eval_count - 1) / (done.eval_duration_ns / 1e9)
                    rates[label].append(pair[label])
                    if g is not None and sampler is not None:
                        rejections += sampler.grammar_rejections
                        full += sampler.grammar_full_passes
                        schema_tokens += done.eval_count
                pair_ratios.append(pair["schema"] / pair["plain"])
    finally:
        RequestSampler.sample = original  # type: ignore[method-assign]
    return {
        "plain_tok_s": best(rates["plain"]),
        "schema_tok_s": best(rates["schema"]),
        "ratio_of_best": round(max(rates["schema"]) / max(rates["plain"]), 3),
        "median_pair_ratio": round(statistics.median(pair_ratios), 3),
        "sample_ms_per_token_median": {
            k: round(statistics.median(v) / 1e6, 3) for k, v in sample_ns.items()
        },
        "sample_ms_per_token_mean": {
            k: round(statistics.fmean(v) / 1e6, 3) for k, v in sample_ns.items()
        },
        "grammar_rejection_rate": round(rejections / max(1, schema_tokens), 3),
        "full_vocab_resamples": full,
    }


SECTIONS = ("single", "turn", "aggregate", "grammar")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--only", choices=SECTIONS, action="append", help="run only these sections")
    args = ap.parse_args()
    sections = set(args.only or SECTIONS)
    path = str(bundled.smollm2_gguf())
    threads = args.threads or (os.cpu_count() or 1)
    n = args.tokens
    result: dict[str, Any] = {"model": "SmolLM2-135M-Instruct Q4_1", "threads": threads}

    if "single" in sections:
        spec = LoadSpec(model_path=path, n_ctx=2048, n_parallel=1, n_threads=threads)
        single = LlamaEngine(spec)
        hl_once = highlevel_single(path, threads, n)
        ours: list[float] = []
        theirs: list[float] = []
        for r in range(args.repeat):  # interleaved, so that load changes hit both
            ours.append(engine_single(single, n, 1000 + r))
            theirs.append(hl_once())
        result["single_stream_decode_tok_s"] = {"LlamaEngine": best(ours), "Llama": best(theirs)}
        single.close()

    if "turn" in sections:
        result["second_turn_1000_tokens"] = second_turn(path, threads)

    if "aggregate" in sections:
        engines = {
            unified: LlamaEngine(
                LoadSpec(model_path=path, n_ctx=1024, n_parallel=4, n_threads=threads),
                kv_unified=unified,
            )
            for unified in (False, True)
        }
        runs: dict[str, dict[str, list[float]]] = {"split_kv": {}, "unified_kv": {}}
        rid = 3000
        for _ in range(args.repeat):  # interleaved, so that load changes hit both
            for streams in (1, 2, 4):
                for unified, engine in engines.items():
                    key = "unified_kv" if unified else "split_kv"
                    rate = aggregate(engine, streams, n, rid)
                    runs[key].setdefault(str(streams), []).append(rate)
                    rid += 10
        result["aggregate_decode_tok_s"] = {
            key: {k: best(v) for k, v in per.items()} for key, per in runs.items()
        }
        for engine in engines.values():
            engine.close()

    if "grammar" in sections:
        spec = LoadSpec(model_path=path, n_ctx=2048, n_parallel=1, n_threads=threads)
        engine = LlamaEngine(spec)
        result["json_schema_grammar"] = grammar_ratio(engine, 5000, max(2, args.repeat))
        engine.close()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
