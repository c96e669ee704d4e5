"""LlamaEngine on the real bundled models (SmolLM2-135M and Gemma 3 270M)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]
import pytest

from corral.engine.grammar import json_grammar
from corral.engine.llamacpp import LlamaEngine
from corral.engine.types import EngineLoadError, GenerateRequest, LoadSpec, SamplingParams
from tests.engine.helpers import Result, collect, run

pytestmark = pytest.mark.slow

GREEDY = SamplingParams(temperature=0.0, num_predict=24)


def chat(question: str) -> str:
    """SmolLM2's ChatML (without a system turn: this small model answers better without)."""
    return f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def smol(smollm2_gguf: Path) -> Iterator[LlamaEngine]:
    engine = LlamaEngine(LoadSpec(model_path=str(smollm2_gguf), n_ctx=2048, n_parallel=4))
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def gemma(gemma3_gguf: Path) -> Iterator[LlamaEngine]:
    engine = LlamaEngine(LoadSpec(model_path=str(gemma3_gguf), n_ctx=1024, n_parallel=2))
    yield engine
    engine.close()


def req(
    engine: LlamaEngine, rid: int, text: str, params: SamplingParams = GREEDY
) -> GenerateRequest:
    return GenerateRequest(rid, tuple(engine.tokenize(text)), params)


def one(engine: LlamaEngine, text: str, params: SamplingParams = GREEDY, rid: int = 1) -> Result:
    return run(engine, [req(engine, rid, text, params)])[rid]


# Model text is only compared between runs made under the same conditions. With flash attention
# off (the CPU default) a greedy near-tie can resolve differently when a request shares its
# batch with others, or when its prompt was partly cached instead of evaluated whole (measured:
# "Write a haiku about the sea." differs in both cases). So a repeat runs on a fresh engine, or
# the comparison runs with ``flash_attn=True``, which makes the output independent of batch
# mates (see corral.engine.llamacpp) and, measured here, of how the prompt was split.


def fresh_one(gguf: Path, text: str, params: SamplingParams = GREEDY) -> Result:
    """``text`` on a freshly loaded SmolLM2: nothing cached, nothing else in the batch."""
    engine = LlamaEngine(LoadSpec(model_path=str(gguf), n_ctx=512, n_parallel=1))
    try:
        return one(engine, text, params)
    finally:
        engine.close()


# ------------------------------------------------------------------- basics


def test_model_facts_and_tokens(smol: LlamaEngine) -> None:
    info = smol.model_info()
    assert info["architecture"] == "llama" and info["n_ctx_train"] == 8192
    assert smol.n_ctx == 2048 and smol.n_parallel == 4 and smol.n_vocab == 49152
    assert info["n_threads"] >= 1
    toks = smol.tokenize("Hello world")
    assert smol.detokenize(toks) == "Hello world"
    assert b"".join(smol.token_piece(t) for t in toks) == b"Hello world"
    special = smol.tokenize("<|im_start|>", parse_special=True)
    assert len(special) == 1 and smol.token_piece(special[0]) == b"<|im_start|>"
    assert smol.is_eog(info["eos_token_id"]) and not smol.is_eog(toks[0])


def test_eog_ends_with_stop(smol: LlamaEngine) -> None:
    res = one(
        smol, chat("What is the capital of France?"), SamplingParams(temperature=0, num_predict=64)
    )
    assert res.done is not None and res.done.reason == "stop"
    assert "Paris" in res.text
    assert not any(smol.is_eog(t) for t in res.tokens)
    assert res.done.eval_count == len(res.tokens) + 1  # the EOG sample counts, as in Ollama
    assert res.done.prompt_eval_duration_ns > 0 and res.done.eval_duration_ns > 0


def test_num_predict_ends_with_length(smol: LlamaEngine) -> None:
    res = one(
        smol,
        chat("Write a long story about a dragon."),
        SamplingParams(temperature=0, num_predict=5),
    )
    assert res.done is not None and res.done.reason == "length"
    assert len(res.tokens) == 5 and res.done.eval_count == 5


def test_greedy_is_deterministic(smollm2_gguf: Path) -> None:
    a = fresh_one(smollm2_gguf, chat("Name three fruits."))
    b = fresh_one(smollm2_gguf, chat("Name three fruits."))
    assert a.tokens == b.tokens and a.text


def test_seed_is_deterministic(smol: LlamaEngine, smollm2_gguf: Path) -> None:
    params = SamplingParams(temperature=1.0, top_k=100, top_p=0.95, seed=1234, num_predict=24)
    prompt = chat("Tell me something surprising.")
    a = fresh_one(smollm2_gguf, prompt, params)
    b = fresh_one(smollm2_gguf, prompt, params)
    assert a.tokens == b.tokens
    others = [
        one(smol, prompt, SamplingParams(temperature=1.0, top_k=100, seed=s, num_predict=24)).tokens
        for s in (1, 2, 3)
    ]
    assert any(o != a.tokens for o in others)


def test_all_sampler_options_run(smol: LlamaEngine) -> None:
    prompt = chat("Say something.")
    for params in (
        SamplingParams(
            repeat_penalty=1.3,
            presence_penalty=0.5,
            frequency_penalty=0.5,
            repeat_last_n=-1,
            typical_p=0.9,
            min_p=0.05,
            seed=1,
            num_predict=8,
        ),
        SamplingParams(mirostat=1, seed=2, num_predict=8),
        SamplingParams(mirostat=2, seed=3, num_predict=8),
        SamplingParams(temperature=0.7, seed=-1, num_predict=8),
    ):
        res = one(smol, prompt, params)
        assert res.done is not None and res.done.reason in ("stop", "length"), params


# ------------------------------------------------------------------- batching


QUESTIONS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "What is 2+2?",
    "Name three colors.",
]


def test_concurrent_requests_match_solo_runs(smollm2_gguf: Path) -> None:
    """With flash attention every sequence is computed independently of its batch mates."""
    spec = LoadSpec(model_path=str(smollm2_gguf), n_ctx=1024, n_parallel=4, flash_attn=True)
    engine = LlamaEngine(spec)
    params = SamplingParams(temperature=0, num_predict=32)
    try:
        solo = [one(engine, chat(q), params, rid=100 + i).tokens for i, q in enumerate(QUESTIONS)]
        reqs = [req(engine, 200 + i, chat(q), params) for i, q in enumerate(QUESTIONS)]
        together = run(engine, reqs)
    finally:
        engine.close()
    assert [together[200 + i].tokens for i in range(4)] == solo


# Raw continuations whose greedy answer leads the runner-up by a wide margin: at least 2.5 in
# logit on every token checked (SmolLM2 Q4_1, flash attention off), where a different batch
# composition moves logits by far less. A stream that read another's logits or KV cells would
# continue the other's sequence instead.
SEQUENCES = {
    "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,": " 11, 12",
    "10, 20, 30, 40,": " 50",
    "a, b, c, d, e,": " f, g",
    "Monday, Tuesday, Wednesday, Thursday,": " Friday",
}


def run_together(gguf: Path, prompts: list[str], params: SamplingParams) -> list[Result]:
    """``prompts`` on a fresh 4-slot engine (default attention), all in one batch from step 1."""
    engine = LlamaEngine(LoadSpec(model_path=str(gguf), n_ctx=1024, n_parallel=4))
    try:
        for i, p in enumerate(prompts):
            engine.submit(req(engine, i, p, params))
        results: dict[int, Result] = {}
        collect(results, engine.step())
        assert sorted(rid for rid, r in results.items() if r.tokens) == list(range(len(prompts)))
        while engine.has_work():
            collect(results, engine.step())
    finally:
        engine.close()
    return [results[i] for i in range(len(prompts))]


def test_concurrent_requests_do_not_mix(smollm2_gguf: Path) -> None:
    """The default (faster) attention: each stream continues its own prompt, and the same batch
    run again gives the same tokens. Its text is only checked where the answer is far from a
    near-tie, which batch mates could tip (see above)."""
    params = SamplingParams(temperature=0, num_predict=16)
    seqs = run_together(smollm2_gguf, list(SEQUENCES), params)
    for res, (prompt, expected) in zip(seqs, SEQUENCES.items(), strict=True):
        assert res.done is not None and res.done.reason in ("stop", "length")
        assert res.text.startswith(expected), (prompt, res.text)

    params = SamplingParams(temperature=0, num_predict=32)
    prompts = [chat(q) for q in QUESTIONS]
    first = run_together(smollm2_gguf, prompts, params)
    again = run_together(smollm2_gguf, prompts, params)
    assert [r.tokens for r in again] == [r.tokens for r in first]
    assert len({tuple(r.tokens) for r in first}) == len(QUESTIONS)  # four different answers
    for r in first:
        assert r.done is not None and r.done.reason in ("stop", "length") and r.tokens
        assert r.done.eval_count == len(r.tokens) + (r.done.reason == "stop")


def test_queue_is_fifo_and_cancel_frees_a_slot(smol: LlamaEngine) -> None:
    params = SamplingParams(temperature=0, num_predict=400)
    prompt = "Count from one to one thousand: one, two, three,"
    for rid in range(1, 7):
        smol.submit(req(smol, rid, prompt + " " * rid, params))
    results: dict[int, Result] = {}
    for _ in range(3):
        collect(results, smol.step())
    started = {rid for rid, r in results.items() if r.tokens}
    assert started == {1, 2, 3, 4}  # four slots; 5 and 6 wait
    smol.cancel(2)
    smol.cancel(6)  # still queued
    collect(results, smol.step())
    assert results[2].done is not None and results[2].done.reason == "cancel"
    assert results[6].done is not None and results[6].done.reason == "cancel"
    assert results[6].done.eval_count == 0
    for _ in range(2):
        collect(results, smol.step())
    assert results[5].tokens, "the freed slot went to the next queued request"
    for rid in (1, 3, 4, 5):
        smol.cancel(rid)
    while smol.has_work():
        collect(results, smol.step())
    assert {r.done.reason for r in results.values() if r.done} == {"cancel"}
    assert not smol.has_work()


# ------------------------------------------------------------------- prefix reuse


def long_context(n_words: int) -> str:
    words = [
        "river",
        "stone",
        "lantern",
        "meadow",
        "copper",
        "violet",
        "harbor",
        "thunder",
        "pepper",
        "orchard",
        "glacier",
        "saddle",
        "ember",
        "quartz",
        "willow",
    ]
    return " ".join(words[(i * 7) % len(words)] for i in range(n_words))


def test_second_turn_evaluates_only_the_new_tokens(smol: LlamaEngine) -> None:
    first = chat("Here are some notes: " + long_context(950) + "\nSummarise them in a line.")
    r1 = one(smol, first, SamplingParams(temperature=0, num_predict=16), rid=1)
    n1 = len(smol.tokenize(first))
    assert n1 > 1000
    assert r1.done is not None and r1.done.prompt_eval_count + r1.done.cached_tokens == n1
    second = (
        first + r1.text + "<|im_end|>\n<|im_start|>user\nThanks! Shorter?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    r2 = one(smol, second, SamplingParams(temperature=0, num_predict=8), rid=2)
    n2 = len(smol.tokenize(second))
    assert r2.done is not None
    assert r2.done.cached_tokens >= n1
    assert r2.done.prompt_eval_count == n2 - r2.done.cached_tokens
    assert r2.done.prompt_eval_count < 40


def test_reused_prefix_gives_the_same_output_as_a_fresh_context(smollm2_gguf: Path) -> None:
    """Flash attention on (see above): the cached and the fresh run split the prompt differently."""
    spec = LoadSpec(model_path=str(smollm2_gguf), n_ctx=1024, n_parallel=4, flash_attn=True)
    base = chat("Remember these words: " + long_context(120) + ". Which word comes first?")
    params = SamplingParams(temperature=0, num_predict=24)
    follow = (
        base + "The first word is river.<|im_end|>\n<|im_start|>user\nAnd the last?"
        "<|im_end|>\n<|im_start|>assistant\n"
    )
    engine = LlamaEngine(spec)
    try:
        one(engine, base, params, rid=1)
        cached = one(engine, follow, params, rid=2)
    finally:
        engine.close()
    assert cached.done is not None and cached.done.cached_tokens > 100
    fresh_engine = LlamaEngine(replace(spec, n_parallel=1))
    try:
        fresh = one(fresh_engine, follow, params, rid=3)
    finally:
        fresh_engine.close()
    assert fresh.done is not None and fresh.done.cached_tokens == 0
    assert cached.tokens == fresh.tokens


def test_prompt_longer_than_context_is_an_error(smol: LlamaEngine) -> None:
    res = one(smol, long_context(3000))
    assert res.done is not None and res.done.reason == "error"
    assert "longer than the context window" in (res.done.error or "")
    empty = run(smol, [GenerateRequest(9, (), GREEDY)])[9]
    assert empty.done is not None and empty.done.reason == "error"


# ------------------------------------------------------------------- grammar


SCHEMA = {  # bounded, so that every constrained generation must end within num_predict
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "age": {"type": "integer"},
        "hobbies": {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 3},
    },
    "required": ["name", "age", "hobbies"],
    "additionalProperties": False,
}


@pytest.mark.parametrize("temperature", [0.0, 0.9])
def test_json_schema_grammar(smol: LlamaEngine, temperature: float) -> None:
    params = SamplingParams(
        temperature=temperature, seed=7, num_predict=300, grammar=json_grammar(SCHEMA)
    )
    res = one(smol, chat("Describe a person called Ann as JSON."), params)
    assert res.done is not None and res.done.reason == "stop", res.text
    jsonschema.validate(json.loads(res.text), SCHEMA)


def test_generic_json_grammar(smollm2_gguf: Path) -> None:
    # A fresh engine: unbounded JSON from a 135M model only reliably ends from a known state.
    engine = LlamaEngine(LoadSpec(model_path=str(smollm2_gguf), n_ctx=512, n_parallel=1))
    params = SamplingParams(temperature=0, num_predict=300, grammar=json_grammar(None))
    try:
        res = one(engine, chat("List two animals as a JSON object."), params)
    finally:
        engine.close()
    assert res.done is not None and res.done.reason == "stop", res.text
    assert isinstance(json.loads(res.text), dict)


def test_invalid_grammar_is_an_error(smol: LlamaEngine) -> None:
    res = one(smol, chat("hi"), SamplingParams(grammar="root ::= ( unbalanced"))
    assert (
        res.done is not None and res.done.reason == "error" and "grammar" in (res.done.error or "")
    )


# ------------------------------------------------------------------- context full


COUNTING = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,"


def test_context_shift_keeps_generating(smollm2_gguf: Path) -> None:
    engine = LlamaEngine(LoadSpec(model_path=str(smollm2_gguf), n_ctx=64, n_parallel=1))
    try:
        res = one(engine, COUNTING, SamplingParams(temperature=0, num_predict=100, num_keep=4))
    finally:
        engine.close()
    assert res.done is not None and res.done.reason == "length"
    assert res.done.eval_count == 100  # several shifts of the 64-token context


def test_without_shift_a_full_context_ends_with_length(smollm2_gguf: Path) -> None:
    engine = LlamaEngine(LoadSpec(model_path=str(smollm2_gguf), n_ctx=64, n_parallel=1))
    engine._can_shift = False
    try:
        n_prompt = len(engine.tokenize(COUNTING))
        res = one(engine, COUNTING, SamplingParams(temperature=0, num_predict=500))
    finally:
        engine.close()
    assert res.done is not None and res.done.reason == "length"
    assert len(res.tokens) == 64 - n_prompt + 1


@pytest.mark.parametrize("unified", [True, False])
def test_copied_prefix_then_shift_leaves_the_source_intact(
    smollm2_gguf: Path, unified: bool
) -> None:
    """B gets A's prompt KV copied (shared cells when unified, a stream copy when not), then
    shifts; A's cached history must be exactly what it is when B never ran. Flash attention on:
    A decodes beside B in one run and alone in the other (see above)."""
    spec = LoadSpec(model_path=str(smollm2_gguf), n_ctx=128, n_parallel=2, flash_attn=True)
    prompt_a = "Numbers: " + COUNTING * 2  # ~75 tokens: a shift discards from position 66
    params_a = SamplingParams(temperature=0, num_predict=4)
    params_follow = SamplingParams(temperature=0, num_predict=16)

    def scenario(with_b: bool) -> tuple[Result, Result | None]:
        engine = LlamaEngine(spec, kv_unified=unified)
        try:
            engine.submit(req(engine, 1, prompt_a, params_a))
            results: dict[int, Result] = {}
            collect(results, engine.step())  # A's prompt is now in slot 0
            if with_b:
                b_params = SamplingParams(temperature=0, num_predict=100)
                engine.submit(req(engine, 2, prompt_a + " 13,", b_params))
            while engine.has_work():
                collect(results, engine.step())
            follow = prompt_a + results[1].text + " and more"
            return one(engine, follow, params_follow, rid=3), results.get(2)
        finally:
            engine.close()

    after, b = scenario(with_b=True)
    assert b is not None and b.done is not None
    assert b.done.cached_tokens > 50  # copied from A's slot
    assert b.done.eval_count == 100  # it shifted
    reference, _ = scenario(with_b=False)
    assert after.done is not None and after.done.cached_tokens > 50
    assert after.tokens == reference.tokens


# ------------------------------------------------------------------- other architecture


def test_gemma_generates_and_reuses_its_prefix(gemma: LlamaEngine) -> None:
    text = "The capital of France is Paris. The capital of Germany is"
    params = SamplingParams(temperature=0, num_predict=6)
    a = one(gemma, text, params, rid=1)
    assert a.done is not None and a.done.reason in ("stop", "length") and a.tokens
    longer = text + a.text + " The capital of Italy is"
    b = one(gemma, longer, params, rid=2)
    assert b.done is not None and b.done.cached_tokens >= len(gemma.tokenize(text))
    assert "Rome" in b.text


# ------------------------------------------------------------------- embeddings & loading


def test_embeddings_from_a_generative_model(smollm2_gguf: Path) -> None:
    """No embedding GGUF is bundled yet, so the pooled path runs on SmolLM2 (LAST pooling)."""
    engine = LlamaEngine(
        LoadSpec(model_path=str(smollm2_gguf), n_ctx=256, n_batch=256, embedding=True)
    )
    try:
        texts = ["The cat sat on the mat.", "A dog barked.", "Quantum chromodynamics."]
        batched = engine.embed([engine.tokenize(t) for t in texts])
        single = engine.embed([engine.tokenize(texts[1])])
        out = run(engine, [GenerateRequest(1, (1, 2, 3), GREEDY)])[1]
    finally:
        engine.close()
    assert len(batched) == 3 and all(len(v) == 576 for v in batched)
    assert all(math.isfinite(x) for v in batched for x in v)
    norm = math.sqrt(sum(x * x for x in single[0]))
    assert norm > 0
    assert all(abs(a - b) <= 1e-3 * norm for a, b in zip(batched[1], single[0], strict=True))
    assert out.done is not None and out.done.reason == "error"


def test_embed_on_a_generation_engine_is_refused(smol: LlamaEngine) -> None:
    with pytest.raises(ValueError):
        smol.embed([[1, 2, 3]])


def test_corrupt_or_missing_gguf(tmp_path: Path, smollm2_gguf: Path) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a model at all" * 100)
    truncated = tmp_path / "truncated.gguf"
    with smollm2_gguf.open("rb") as f:
        truncated.write_bytes(f.read(2_000_000))
    for path in (junk, truncated, tmp_path / "missing.gguf"):
        with pytest.raises(EngineLoadError):
            LlamaEngine(LoadSpec(model_path=str(path), n_ctx=256, n_parallel=1))
    with pytest.raises(EngineLoadError, match="adapter"):
        LlamaEngine(
            LoadSpec(model_path=str(smollm2_gguf), n_ctx=256, n_parallel=1, lora_paths=(str(junk),))
        )
