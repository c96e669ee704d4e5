"""FakeEngine: the scriptable, deterministic engine the server tests run against."""

from __future__ import annotations

import pytest

from corral.engine.fake import BOS, DEFAULT_REPLY, EOS, Endless, FakeEngine
from corral.engine.types import EngineLoadError, GenerateRequest, LoadSpec, SamplingParams
from tests.engine.helpers import Result, collect, run


def _engine(**kw: object) -> FakeEngine:
    spec_kw = {
        k: kw.pop(k) for k in list(kw) if k in {"n_ctx", "n_parallel", "n_batch", "embedding"}
    }
    return FakeEngine(LoadSpec(model_path="fake.gguf", **spec_kw), **kw)  # type: ignore[arg-type]


def _req(engine: FakeEngine, rid: int, text: str, **sampling: object) -> GenerateRequest:
    return GenerateRequest(rid, tuple(engine.tokenize(text)), SamplingParams(**sampling))  # type: ignore[arg-type]


def test_tokenize_round_trip() -> None:
    e = _engine()
    toks = e.tokenize("héllo ✓")
    assert toks[0] == BOS and len(toks) == 8
    assert e.tokenize("ab", add_special=False) == [ord("a") + 3, ord("b") + 3]
    assert e.detokenize(toks) == "héllo ✓"
    assert e.token_piece(toks[2]) == "é".encode()
    assert e.is_eog(EOS) and not e.is_eog(toks[1])


def test_default_reply_then_stop() -> None:
    e = _engine()
    res = run(e, [_req(e, 1, "hi")])[1]
    assert res.text == DEFAULT_REPLY
    assert res.done is not None and res.done.reason == "stop"
    assert res.done.eval_count == len(DEFAULT_REPLY) + 1  # the EOS sample counts, as in Ollama
    assert res.done.prompt_eval_count == 3 and res.done.cached_tokens == 0
    assert EOS not in res.tokens


def test_script_mapping_and_callable() -> None:
    e = _engine(script={"TOOLCALL": '{"name": "f"}', "hello": "hi there"})
    out = run(e, [_req(e, 1, "please TOOLCALL now"), _req(e, 2, "hello"), _req(e, 3, "x")])
    assert out[1].text == '{"name": "f"}'
    assert out[2].text == "hi there"
    assert out[3].text == DEFAULT_REPLY
    e2 = _engine(script=lambda prompt: prompt.upper())
    assert run(e2, [_req(e2, 1, "abc")])[1].text == "ABC"


def test_num_predict_and_endless() -> None:
    e = _engine(default_reply=Endless("ab"))
    res = run(e, [_req(e, 1, "x", num_predict=5)])[1]
    assert res.text == "ababa"
    assert res.done is not None and res.done.reason == "length" and res.done.eval_count == 5


def test_context_full_ends_with_length() -> None:
    e = _engine(n_ctx=16, default_reply=Endless("z"))
    res = run(e, [_req(e, 1, "hello")])[1]  # 6 prompt tokens
    assert res.done is not None and res.done.reason == "length"
    assert len(res.tokens) == 16 - 6 + 1


def test_errors_are_done_events() -> None:
    e = _engine(n_ctx=8)
    out = run(e, [GenerateRequest(1, ()), _req(e, 2, "far too long a prompt")])
    for rid in (1, 2):
        done = out[rid].done
        assert done is not None and done.reason == "error" and done.error
    with pytest.raises(EngineLoadError, match="broken"):
        _engine(load_error="broken")


def test_parallel_slots_fifo_queue_and_cancel() -> None:
    e = _engine(n_parallel=2, default_reply=Endless("."))
    for rid in (1, 2, 3, 4):
        e.submit(_req(e, rid, f"request {rid}"))
    results: dict[int, Result] = {}
    collect(results, e.step())
    assert set(results) == {1, 2}  # two slots: 3 and 4 wait
    e.cancel(3)  # cancelling a queued request
    e.cancel(1)
    events = e.step()
    collect(results, events)
    assert results[3].done is not None and results[3].done.reason == "cancel"
    assert results[1].done is not None and results[1].done.reason == "cancel"
    assert 4 in results and results[4].done is None  # took the freed slot at once
    for _ in range(3):
        collect(results, e.step())
    assert len(results[4].tokens) >= 3 and len(results[2].tokens) >= 4
    e.cancel(2)
    e.cancel(4)
    e.cancel(99)  # unknown ids are ignored
    while e.has_work():
        collect(results, e.step())
    assert all(r.done is not None for r in results.values())


def test_prefill_is_chunked_by_n_batch() -> None:
    e = _engine(n_batch=4, default_reply="ok")
    e.submit(_req(e, 1, "0123456789"))  # 11 tokens: 3 steps of prefill
    results: dict[int, Result] = {}
    collect(results, e.step())
    collect(results, e.step())
    assert not results[1].tokens if 1 in results else True
    collect(results, e.step())
    assert results[1].tokens  # the third step completes the prompt and samples


def test_prefix_reuse_counts() -> None:
    e = _engine(n_parallel=2, default_reply="abc")
    first = "a long shared system prompt. user: hi"
    r1 = run(e, [_req(e, 1, first)])[1]
    assert r1.done is not None and r1.done.cached_tokens == 0
    second = first + r1.text + " user: more"
    r2 = run(e, [_req(e, 2, second)])[2]
    n = len(e.tokenize(second))
    assert r2.done is not None
    # the history holds the prompt and every generated token but the final EOS
    assert r2.done.cached_tokens == len(e.tokenize(first)) + len("abc")
    assert r2.done.prompt_eval_count == n - r2.done.cached_tokens


def test_identical_prompt_still_evaluates_one_token() -> None:
    e = _engine(default_reply="x")
    run(e, [_req(e, 1, "same")])
    done = run(e, [_req(e, 2, "same")])[2].done
    assert done is not None and done.prompt_eval_count == 1 and done.cached_tokens == 4


def test_embed() -> None:
    e = _engine(embedding=True, embed_dim=8)
    vecs = e.embed([e.tokenize("abc"), e.tokenize("abd")])
    assert len(vecs) == 2 and all(len(v) == 8 for v in vecs)
    assert vecs[0] != vecs[1]
    with pytest.raises(ValueError):
        e.embed([[]])
    gen = _engine()
    with pytest.raises(ValueError):
        gen.embed([[1]])
    out = run(e, [_req(e, 1, "x")])[1]
    assert out.done is not None and out.done.reason == "error"


def test_duplicate_request_id_is_refused() -> None:
    e = _engine()
    e.submit(_req(e, 1, "a"))
    with pytest.raises(ValueError):
        e.submit(_req(e, 1, "b"))
