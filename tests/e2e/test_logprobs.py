"""Log probabilities from a real model (SmolLM2) through the official ``ollama`` client."""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import ollama
import openai
import pytest
from ollama._types import Logprob
from openai.types.chat import ChatCompletionMessageParam

from tests.serverproc import ServerProcess

pytestmark = pytest.mark.slow

GREEDY = {"temperature": 0, "repeat_penalty": 1.0, "num_predict": 10}


@pytest.fixture(scope="module")
def smol(client: ollama.Client, smollm2_digest: str) -> str:
    client.create(model="smol-logprobs", files={"model.gguf": smollm2_digest})
    return "smol-logprobs"


def answer_tokens(eval_count: int | None, done_reason: str | None) -> int:
    """The tokens of the answer: ``eval_count`` counts the end-of-generation token too."""
    return (eval_count or 0) - (1 if done_reason == "stop" else 0)


def check_entries(entries: Sequence[Logprob], top: int) -> None:
    for e in entries:
        assert e.logprob <= 0.0
        tops = e.top_logprobs or []
        assert len(tops) == top
        values = [t.logprob for t in tops]
        assert values == sorted(values, reverse=True)
        assert math.fsum(math.exp(v) for v in values) <= 1.0 + 1e-4
        # greedy without penalties picks the most likely token of these very logits
        assert tops[0].token == e.token
        assert tops[0].logprob == pytest.approx(e.logprob, abs=1e-6)


def test_generate_logprobs(client: ollama.Client, smol: str) -> None:
    r = client.generate(
        model=smol, prompt="The capital of France is", options=GREEDY, logprobs=True, top_logprobs=5
    )
    entries = r.logprobs or []
    assert len(entries) == answer_tokens(r.eval_count, r.done_reason)
    assert "".join(e.token for e in entries) == r.response
    check_entries(entries, 5)


def test_streamed_chat_logprobs_under_batching(client: ollama.Client, smol: str) -> None:
    def one(i: int) -> tuple[int, list[Logprob], int, str | None]:
        chunks = list(
            client.chat(
                model=smol,
                messages=[{"role": "user", "content": f"Count to {i + 3}."}],
                options=GREEDY,
                stream=True,
                logprobs=True,
                top_logprobs=i,
            )
        )
        entries = [e for c in chunks for e in c.logprobs or []]
        return i, entries, chunks[-1].eval_count or 0, chunks[-1].done_reason

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, range(1, 5)))
    for top, entries, eval_count, reason in results:
        assert len(entries) == answer_tokens(eval_count, reason)
        check_entries(entries, top)


def test_openai_sdk_reads_the_logprobs(server: ServerProcess, smol: str) -> None:
    oa = openai.OpenAI(base_url=server.url + "/v1", api_key="x")
    msgs: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello."}]
    r = oa.chat.completions.create(
        model=smol, messages=msgs, max_tokens=8, temperature=0, logprobs=True, top_logprobs=3
    )
    lp = r.choices[0].logprobs
    assert lp is not None and lp.content
    assert "".join(t.token for t in lp.content) == r.choices[0].message.content
    for t in lp.content:
        assert len(t.top_logprobs) == 3
        assert t.logprob <= t.top_logprobs[0].logprob + 1e-6
    stream = oa.chat.completions.create(
        model=smol, messages=msgs, max_tokens=8, temperature=0, logprobs=True, stream=True
    )
    tokens = [
        t
        for c in stream
        if c.choices and c.choices[0].logprobs
        for t in c.choices[0].logprobs.content or []
    ]
    assert len(tokens) == len(lp.content)
