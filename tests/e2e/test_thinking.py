"""Thinking on a real model: a template that opens the think block, so SmolLM2's own words land
in ``thinking``; with the official ``ollama`` and ``openai`` clients."""

from __future__ import annotations

import ollama
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.serverproc import ServerProcess

pytestmark = pytest.mark.slow

OPENS_THE_BLOCK = (
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n"
    "{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Content }}<|im_end|>\n"
    "{{ end }}<|im_start|>assistant\n{{ if .Think }}<think>\n{{ end }}"
)
OPTIONS = {"num_predict": 12, "temperature": 0}
ASK = [{"role": "user", "content": "What is two plus two?"}]
OA_ASK: list[ChatCompletionMessageParam] = [{"role": "user", "content": ASK[0]["content"]}]


@pytest.fixture(scope="module")
def thinker(client: ollama.Client, smollm2_digest: str) -> str:
    client.create(
        model="smol-think", files={"model.gguf": smollm2_digest}, template=OPENS_THE_BLOCK
    )
    return "smol-think"


def test_the_capability_is_shown(client: ollama.Client, thinker: str) -> None:
    assert "thinking" in (client.show(thinker).capabilities or [])


def test_chat_reasoning_lands_in_thinking(client: ollama.Client, thinker: str) -> None:
    r = client.chat(model=thinker, messages=ASK, think=True, options=OPTIONS)
    assert r.message.thinking  # the model's words, inside the block its prompt opened
    assert "<think>" not in (r.message.thinking or "") + (r.message.content or "")
    assert r.done_reason in ("stop", "length")


def test_streamed_thinking_chunks(client: ollama.Client, thinker: str) -> None:
    chunks = list(client.chat(model=thinker, messages=ASK, stream=True, options=OPTIONS))
    assert chunks[-1].done
    thinking = [c.message.thinking for c in chunks if c.message.thinking]
    assert len(thinking) >= 2  # streamed piece by piece, think on by default
    assert chunks[-1].eval_count == OPTIONS["num_predict"] or chunks[-1].done_reason == "stop"


def test_generate_and_think_levels(client: ollama.Client, thinker: str) -> None:
    r = client.generate(model=thinker, prompt="Name a colour.", think="low", options=OPTIONS)
    assert r.thinking


def test_think_false_answers_without_thinking(client: ollama.Client, thinker: str) -> None:
    r = client.chat(model=thinker, messages=ASK, think=False, options=OPTIONS)
    assert not r.message.thinking
    assert r.message.content


def test_a_model_without_the_capability_refuses(client: ollama.Client, smollm2_digest: str) -> None:
    client.create(model="smol-plain", files={"model.gguf": smollm2_digest})
    with pytest.raises(ollama.ResponseError) as e:
        client.chat(model="smol-plain", messages=ASK, think=True)
    assert e.value.status_code == 400
    assert e.value.error == '"smol-plain" does not support thinking'


def test_openai_reasoning(server: ServerProcess, thinker: str) -> None:
    oa = openai.OpenAI(base_url=server.url + "/v1", api_key="x")
    r = oa.chat.completions.create(
        model=thinker, messages=OA_ASK, max_tokens=12, temperature=0, reasoning_effort="low"
    )
    extra = r.choices[0].message.model_extra or {}
    assert extra.get("reasoning")
    stream = oa.chat.completions.create(
        model=thinker, messages=OA_ASK, max_tokens=12, temperature=0, stream=True
    )
    reasoning = [
        (c.choices[0].delta.model_extra or {}).get("reasoning") for c in stream if c.choices
    ]
    assert any(reasoning)
