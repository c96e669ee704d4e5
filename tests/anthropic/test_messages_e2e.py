"""``/v1/messages`` end to end: the official ``anthropic`` SDK against ``corral serve`` running
SmolLM2 for real (and SmolLM2 with the designed colour projector of :mod:`tests.visionfixture`
as a vision model). Answers are checked for their structure, not their words, except where the
projector's design fixes them."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import ollama
import pytest
from anthropic.types import MessageParam

from tests.anthropic.shared import TOOLS_TEMPLATE, WEATHER, ask
from tests.serverproc import ServerProcess
from tests.visionfixture import build_projector, solid_image

pytestmark = pytest.mark.slow

SMOL, TOOLS, VISION, THINKER = "smollm2:135m", "smol-tools", "smol-vision", "smol-think"
# A template that opens the think block, so SmolLM2's first words land in ``thinking`` (as in
# tests/e2e/test_thinking.py)
OPENS_THE_BLOCK = (
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n"
    "{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Content }}<|im_end|>\n"
    "{{ end }}<|im_start|>assistant\n{{ if .Think }}<think>\n{{ end }}"
)
GREEDY: dict[str, Any] = {"extra_body": {"temperature": 0}}
# SmolLM2's own default system prompt, which the colour test's answers are tuned to
SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
QUESTION = "What color is this image? Answer with one word."


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("anthropic-real")
    proc = ServerProcess(root / "models").start()
    try:
        client = ollama.Client(host=proc.url)
        digest = client.create_blob(smollm2_gguf)
        client.create(model=SMOL, files={"model.gguf": digest})
        client.create(model=TOOLS, from_=SMOL, template=TOOLS_TEMPLATE)
        client.create(model=THINKER, from_=SMOL, template=OPENS_THE_BLOCK)
        projector = client.create_blob(build_projector(root / "colours.gguf", smollm2_gguf))
        client.create(model=VISION, files={"a.gguf": projector, "b.gguf": digest}, system=SYSTEM)
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def client(real: ServerProcess) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=real.url, api_key="unused", max_retries=0, timeout=300)


def count(client: anthropic.Anthropic, **fields: Any) -> int:
    return client.messages.count_tokens(**fields).input_tokens


def test_count_tokens_equals_input_tokens(client: anthropic.Anthropic) -> None:
    """Counted first, on a cache that has never seen the prompt, then answered: the count is
    the prompt the model evaluated, for each shape of request (and the stream reports it)."""
    history: list[MessageParam] = [
        *ask("Name a fruit."),
        {"role": "assistant", "content": "An apple."},
        *ask("And a vegetable?"),
    ]
    cases: list[dict[str, Any]] = [
        {"model": SMOL, "messages": ask("Hello there, who are you?")},
        {"model": SMOL, "messages": ask("Hello there."), "system": "You answer in French."},
        {"model": SMOL, "messages": history},
        {
            "model": TOOLS,
            "messages": ask("Weather in Rome?"),
            "system": "You can use tools.",
            "tools": [WEATHER],
        },
    ]
    for case in cases:
        n = count(client, **case)
        r = client.messages.create(max_tokens=4, **case, **GREEDY)
        assert r.usage.input_tokens == n, case
        with client.messages.stream(max_tokens=4, **case, **GREEDY) as stream:
            assert stream.get_final_message().usage.input_tokens == n, case
    assert count(client, **cases[1]) > count(client, model=SMOL, messages=ask("Hello there."))


def test_create_and_stream(client: anthropic.Anthropic) -> None:
    question = ask("What is the capital of France?")
    r = client.messages.create(model=SMOL, max_tokens=24, messages=question, **GREEDY)
    assert r.id.startswith("msg_") and r.model == SMOL
    (block,) = r.content
    assert block.type == "text" and block.text
    assert r.stop_reason in ("end_turn", "max_tokens")
    assert 0 < r.usage.output_tokens <= 24
    with client.messages.stream(model=SMOL, max_tokens=24, messages=question, **GREEDY) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert streamed == block.text  # greedy: the same answer, streamed
    assert final.content[0].type == "text" and final.content[0].text == streamed
    assert final.stop_reason == r.stop_reason and final.usage == r.usage


def test_system_prompt(client: anthropic.Anthropic) -> None:
    r = client.messages.create(
        model=SMOL,
        max_tokens=8,
        system=[{"type": "text", "text": "You are a pirate."}],
        messages=ask("Who are you?"),
        **GREEDY,
    )
    assert r.content and r.stop_reason in ("end_turn", "max_tokens")
    assert r.usage.input_tokens == count(
        client, model=SMOL, system="You are a pirate.", messages=ask("Who are you?")
    )


def test_max_tokens(client: anthropic.Anthropic) -> None:
    r = client.messages.create(
        model=SMOL, max_tokens=3, messages=ask("Write a long story about a dragon."), **GREEDY
    )
    assert r.stop_reason == "max_tokens" and r.usage.output_tokens == 3


def test_stop_sequences(client: anthropic.Anthropic) -> None:
    r = client.messages.create(
        model=SMOL,
        max_tokens=40,
        messages=ask("Write a long story about a dragon."),
        stop_sequences=[" "],
        **GREEDY,
    )
    assert r.stop_reason in ("end_turn", "max_tokens") and r.stop_sequence is None
    assert all(" " not in b.text for b in r.content if b.type == "text")
    assert r.usage.output_tokens < 40  # the first space ended it


def test_tools_round_trip(client: anthropic.Anthropic) -> None:
    """The model's answer, held to the call's shape by ``output_config.format``, comes back as a
    ``tool_use`` block; the ``tool_result`` turn is then answered."""
    call_shape: dict[str, Any] = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "enum": ["get_weather"]},
            "arguments": WEATHER["input_schema"],
        },
        "required": ["name", "arguments"],
    }
    question = ask("What is the weather in Paris?")
    r = client.messages.create(
        model=TOOLS,
        max_tokens=60,
        messages=question,
        tools=[WEATHER],
        output_config={"format": {"type": "json_schema", "schema": call_shape}},
        **GREEDY,
    )
    assert r.stop_reason == "tool_use"
    (call,) = r.content
    assert call.type == "tool_use" and call.id.startswith("toolu_")
    assert call.name == "get_weather" and isinstance(call.input, dict) and "city" in call.input
    turns: list[MessageParam] = [
        *question,
        {"role": "assistant", "content": r.content},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "Sunny, 24 C"}],
        },
    ]
    follow = client.messages.create(
        model=TOOLS, max_tokens=16, messages=turns, tools=[WEATHER], **GREEDY
    )
    assert follow.stop_reason in ("end_turn", "max_tokens", "tool_use")
    assert follow.usage.input_tokens == count(client, model=TOOLS, messages=turns, tools=[WEATHER])


def image_block(rgb: tuple[int, int, int]) -> Any:
    data = base64.b64encode(solid_image(rgb)).decode()
    return {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}


def test_image_on_a_vision_model(client: anthropic.Anthropic) -> None:
    content = [image_block((0, 0, 255)), {"type": "text", "text": QUESTION}]
    turn: list[MessageParam] = [{"role": "user", "content": content}]
    n = count(client, model=VISION, messages=turn)
    r = client.messages.create(model=VISION, max_tokens=12, messages=turn, **GREEDY)
    assert r.usage.input_tokens == n
    # the projector's 16 positions count
    assert n >= count(client, model=VISION, messages=ask(QUESTION)) + 16
    # the projector is designed so that a solid blue image reads as the word " blue"
    text = "".join(b.text for b in r.content if b.type == "text").lower()
    assert "blue" in text and "red" not in text and "green" not in text


def test_image_on_a_text_model_is_refused(client: anthropic.Anthropic) -> None:
    turn: list[MessageParam] = [{"role": "user", "content": [image_block((255, 0, 0))]}]
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(model=SMOL, max_tokens=5, messages=turn)
    assert e.value.status_code == 400
    assert "does not support vision" in e.value.message
    with pytest.raises(anthropic.BadRequestError):
        client.messages.count_tokens(model=SMOL, messages=turn)


def test_thinking(client: anthropic.Anthropic) -> None:
    """The model's words inside the block its prompt opened come back as a thinking block (and
    thinking deltas, closed by a signature), on a model that can think."""
    question = ask("What is two plus two?")
    enabled: Any = {"type": "enabled", "budget_tokens": 1024}
    r = client.messages.create(
        model=THINKER, max_tokens=12, messages=question, thinking=enabled, **GREEDY
    )
    first = r.content[0]
    assert first.type == "thinking" and first.thinking and first.signature
    assert r.stop_reason in ("end_turn", "max_tokens")
    with client.messages.stream(
        model=THINKER, max_tokens=12, messages=question, thinking=enabled, **GREEDY
    ) as stream:
        deltas = [e.delta.type for e in stream if e.type == "content_block_delta"]
        final = stream.get_final_message()
    assert deltas.count("thinking_delta") >= 2 and "signature_delta" in deltas
    assert final.content[0].type == "thinking"
    assert final.content[0].thinking == first.thinking  # greedy: the same reasoning, streamed
    assert final.content[0].signature == first.signature
    off = client.messages.create(
        model=THINKER, max_tokens=12, messages=question, thinking={"type": "disabled"}, **GREEDY
    )
    assert [b.type for b in off.content] == ["text"]
    assert r.usage.input_tokens == count(client, model=THINKER, messages=question, thinking=enabled)
    assert off.usage.input_tokens < r.usage.input_tokens  # the opened block is in the prompt
