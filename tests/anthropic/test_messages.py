"""``/v1/messages`` and ``/v1/messages/count_tokens`` through the official ``anthropic`` SDK (and
raw HTTP for the wire format), against a real corral HTTP server whose runners are scripted fake
engines (:mod:`tests.openai.fakeserver`): replies, tool calls, thinking and token counts are
known exactly (the fake's tokens are characters)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import anthropic
import httpx
import ollama
import pytest
from anthropic.types import MessageParam

from corral.engine.fake import DEFAULT_REPLY, Endless, Reply
from tests.anthropic.shared import TOOLS_TEMPLATE, WEATHER, ask
from tests.conditions import wait_for
from tests.fakerunner import InProcessRunner
from tests.openai.fakeserver import FakeServer

# A template that opens the think block for the model (as tests/e2e/test_thinking.py's)
THINK_TEMPLATE = (
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n"
    "{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Content }}<|im_end|>\n"
    "{{ end }}<|im_start|>assistant\n{{ if .Think }}<think>\n{{ end }}"
)
CHAT, THINKER = "fake-chat", "fake-thinker"
TOOL_REPLY = '{"name": "get_weather", "arguments": {"city": "Paris"}}'
SCRIPT: dict[str, Reply] = {
    "sunny, 24 C": "It is sunny in Paris.",
    "weather": TOOL_REPLY,
    "PIRATE": "Arr!",
    "forever": Endless("la "),
    "<think>": "The user says hi.</think>Hello!",
}
KEY = "s3cret"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()


def make_models(url: str, gguf: Path) -> None:
    client = ollama.Client(host=url)
    digest = client.create_blob(gguf)
    client.create(model=CHAT, files={"model.gguf": digest}, template=TOOLS_TEMPLATE)
    client.create(model=THINKER, files={"model.gguf": digest}, template=THINK_TEMPLATE)


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path) -> Iterator[FakeServer]:
    server = FakeServer(tmp_path_factory.mktemp("anthropic-fake") / "models", script=SCRIPT)
    server.start()
    try:
        make_models(server.url, smollm2_gguf)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def client(fake: FakeServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fake.url, api_key="ignored", max_retries=0)


def count(client: anthropic.Anthropic, **fields: Any) -> int:
    return client.messages.count_tokens(**fields).input_tokens


# ---- messages ----------------------------------------------------------------------------------


def test_create(client: anthropic.Anthropic) -> None:
    raw = client.messages.with_raw_response.create(model=CHAT, max_tokens=100, messages=ask("hi"))
    assert raw.headers["request-id"].startswith("req_")
    r = raw.parse()
    assert r.type == "message" and r.role == "assistant" and r.model == CHAT
    assert r.id.startswith("msg_")
    assert [b.type for b in r.content] == ["text"]
    assert r.content[0].text == DEFAULT_REPLY  # type: ignore[union-attr]
    assert r.stop_reason == "end_turn" and r.stop_sequence is None
    assert r.usage.input_tokens == count(client, model=CHAT, messages=ask("hi"))
    assert r.usage.output_tokens >= len(DEFAULT_REPLY)


def test_stream(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model=CHAT, max_tokens=100, messages=ask("hello")) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert kinds.count("content_block_start") == kinds.count("content_block_stop") == 1
    assert final.content[0].text == DEFAULT_REPLY  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn" and final.id.startswith("msg_")
    assert final.usage.input_tokens == count(client, model=CHAT, messages=ask("hello"))
    assert final.usage.output_tokens >= len(DEFAULT_REPLY)


def test_stream_wire_format(fake: FakeServer) -> None:
    body = {"model": CHAT, "max_tokens": 3, "messages": ask("hi"), "stream": True}
    with httpx.stream("POST", fake.url + "/v1/messages", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["request-id"].startswith("req_")
        raw = r.read().decode()
    frames = raw.split("\n\n")
    assert frames[-1] == ""
    events = []
    for frame in frames[:-1]:
        name, data = frame.split("\n")
        payload = json.loads(data.removeprefix("data: "))
        assert name == f"event: {payload['type']}"
        events.append(payload)
    text = "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")
    assert text == "The"
    assert events[-2]["delta"]["stop_reason"] == "max_tokens"
    assert events[-2]["usage"]["output_tokens"] == 3


def test_system_prompt(client: anthropic.Anthropic) -> None:
    r = client.messages.create(
        model=CHAT, max_tokens=50, system="You are a PIRATE.", messages=ask("hi")
    )
    assert r.content[0].text == "Arr!"  # type: ignore[union-attr]
    blocks: Any = [{"type": "text", "text": "You are"}, {"type": "text", "text": "a PIRATE."}]
    r = client.messages.create(model=CHAT, max_tokens=50, system=blocks, messages=ask("hi"))
    assert r.content[0].text == "Arr!"  # type: ignore[union-attr]


def test_max_tokens_and_sampling(client: anthropic.Anthropic) -> None:
    # the anthropic 2.x SDK has no sampling arguments any more; older clients send them
    sampling = {"temperature": 0.5, "top_p": 0.9, "top_k": 3}
    r = client.messages.create(
        model=CHAT, max_tokens=6, messages=ask("forever"), extra_body=sampling
    )
    assert r.stop_reason == "max_tokens" and r.usage.output_tokens == 6
    assert r.content[0].text == "la la "  # type: ignore[union-attr]


def test_stop_sequences(client: anthropic.Anthropic) -> None:
    """A stop sequence ends the answer before it; as in Ollama, the native flow does not say
    which stop word ended it, so the stop reason is ``end_turn``."""
    r = client.messages.create(
        model=CHAT, max_tokens=50, messages=ask("forever"), stop_sequences=["a l"]
    )
    assert r.content[0].text == "l"  # type: ignore[union-attr]
    assert r.stop_reason == "end_turn" and r.stop_sequence is None


def test_tool_round_trip(client: anthropic.Anthropic) -> None:
    question = ask("What is the weather in Paris?")
    r = client.messages.create(model=CHAT, max_tokens=100, messages=question, tools=[WEATHER])
    assert r.stop_reason == "tool_use"
    (call,) = r.content
    assert call.type == "tool_use" and call.id.startswith("toolu_")
    assert call.name == "get_weather" and call.input == {"city": "Paris"}

    turns: list[MessageParam] = [
        *question,
        {"role": "assistant", "content": r.content},  # the SDK's blocks, sent back as they came
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny, 24 C"}],
        },
    ]
    follow = client.messages.create(model=CHAT, max_tokens=100, messages=turns, tools=[WEATHER])
    # the tool's answer reached the model's prompt: the fake replies to it
    assert follow.content[0].text == "It is sunny in Paris."  # type: ignore[union-attr]
    assert follow.stop_reason == "end_turn"
    assert follow.usage.input_tokens == count(client, model=CHAT, messages=turns, tools=[WEATHER])

    # tool_choice "none" leaves the tools out: the reply stays text
    r = client.messages.create(
        model=CHAT, max_tokens=100, messages=question, tools=[WEATHER], tool_choice={"type": "none"}
    )
    assert r.content[0].text == TOOL_REPLY  # type: ignore[union-attr]


def test_tool_use_streamed(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model=CHAT, max_tokens=100, messages=ask("weather in Paris?"), tools=[WEATHER]
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    deltas = [e for e in events if e.type == "content_block_delta"]
    assert [d.delta.type for d in deltas] == ["input_json_delta"]
    (call,) = final.content
    assert call.type == "tool_use" and call.input == {"city": "Paris"}
    assert final.stop_reason == "tool_use"


def test_thinking(client: anthropic.Anthropic) -> None:
    r = client.messages.create(
        model=THINKER,
        max_tokens=100,
        messages=ask("hi"),
        thinking={"type": "enabled", "budget_tokens": 1024},
    )
    thinking, text = r.content
    assert thinking.type == "thinking" and thinking.thinking == "The user says hi."
    assert thinking.signature
    assert text.type == "text" and text.text == "Hello!"

    with client.messages.stream(model=THINKER, max_tokens=100, messages=ask("hi")) as stream:
        deltas = [e.delta.type for e in stream if e.type == "content_block_delta"]
        final = stream.get_final_message()
    assert "thinking_delta" in deltas and deltas.index("signature_delta") < deltas.index(
        "text_delta"
    )
    assert [b.type for b in final.content] == ["thinking", "text"]  # a thinker thinks by default
    assert final.content[0].signature == thinking.signature  # type: ignore[union-attr]

    # the thinking block goes back in the history; thinking disabled answers without it
    turns: list[MessageParam] = [
        *ask("hi"),
        {"role": "assistant", "content": r.content},
        *ask("again"),
    ]
    r = client.messages.create(
        model=THINKER, max_tokens=100, messages=turns, thinking={"type": "disabled"}
    )
    assert [b.type for b in r.content] == ["text"]


def test_thinking_asked_of_a_model_that_cannot_think(client: anthropic.Anthropic) -> None:
    """As in Ollama, Anthropic clients' thinking is dropped rather than refused."""
    r = client.messages.create(
        model=CHAT,
        max_tokens=100,
        messages=ask("hi"),
        thinking={"type": "enabled", "budget_tokens": 2048},
    )
    assert [b.type for b in r.content] == ["text"]
    n = count(
        client, model=CHAT, messages=ask("hi"), thinking={"type": "enabled", "budget_tokens": 2048}
    )
    assert n == r.usage.input_tokens


def test_count_tokens_equals_input_tokens(client: anthropic.Anthropic) -> None:
    cases: list[dict[str, Any]] = [
        {"model": CHAT, "messages": ask("hi")},
        {"model": CHAT, "messages": ask("hi"), "system": "You are terse."},
        # (this template shows the tools in the system message)
        {"model": CHAT, "messages": ask("hi"), "system": "You are terse.", "tools": [WEATHER]},
        {"model": THINKER, "messages": ask("hi")},
        {"model": THINKER, "messages": ask("hi"), "thinking": {"type": "disabled"}},
    ]
    counts = []
    for case in cases:
        n = count(client, **case)
        r = client.messages.create(max_tokens=5, **case)
        assert n == r.usage.input_tokens, case
        counts.append(n)
    plain, system, tools, thinking, not_thinking = counts
    assert plain < system < tools  # the system prompt and the tools are counted
    assert thinking > not_thinking  # the template's opened think block is counted


def test_output_config_format_reaches_the_native_flow(client: anthropic.Anthropic) -> None:
    bad: Any = {"format": {"type": "json_schema", "schema": {"type": 5}}}
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(model=CHAT, max_tokens=5, messages=ask("hi"), output_config=bad)
    assert "format" in e.value.message


def test_unknown_fields_and_headers_are_ignored(client: anthropic.Anthropic) -> None:
    r = client.messages.create(
        model=CHAT,
        max_tokens=5,
        messages=ask("hi"),
        metadata={"user_id": "u1"},
        extra_headers={"anthropic-beta": "prompt-caching-2024-07-31"},
        extra_body={"container": "c", "keep_alive": "1m", "num_ctx": 2048},
    )
    assert r.stop_reason == "max_tokens"


# ---- errors ------------------------------------------------------------------------------------


def test_errors_through_the_sdk(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as nf:
        client.messages.create(model="nope", max_tokens=5, messages=ask("hi"))
    assert nf.value.body == {
        "type": "error",
        "error": {"type": "not_found_error", "message": "model 'nope' not found"},
        "request_id": nf.value.request_id,
    }
    with pytest.raises(anthropic.NotFoundError):
        client.messages.count_tokens(model="nope", messages=ask("hi"))
    image: Any = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
    }
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(
            model=CHAT, max_tokens=5, messages=[{"role": "user", "content": [image]}]
        )
    assert "does not support vision" in e.value.message
    assert cast(dict[str, Any], e.value.body)["error"]["type"] == "invalid_request_error"


USER = [{"role": "user", "content": "hi"}]

# id: (path, raw body, status, a piece of the message)
TABLE: dict[str, tuple[str, str, int, str]] = {
    "empty-body": ("/v1/messages", "", 400, "missing request body"),
    "truncated-json": ("/v1/messages", "{", 400, "unexpected EOF"),
    "array-body": ("/v1/messages", "[]", 400, "must be a JSON object"),
    "max-tokens-missing": (
        "/v1/messages",
        json.dumps({"model": CHAT, "messages": USER}),
        400,
        "max_tokens: Field required",
    ),
    "block-without-type": (
        "/v1/messages",
        json.dumps(
            {
                "model": CHAT,
                "max_tokens": 5,
                "messages": [{"role": "user", "content": [{"text": "x"}]}],
            }
        ),
        400,
        "messages.0.content.0: Unable to extract tag",
    ),
    "unknown-block": (
        "/v1/messages",
        json.dumps(
            {
                "model": CHAT,
                "max_tokens": 5,
                "messages": [{"role": "user", "content": [{"type": "video"}]}],
            }
        ),
        400,
        "Input tag 'video'",
    ),
    "url-image": (
        "/v1/messages",
        json.dumps(
            {
                "model": CHAT,
                "max_tokens": 5,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image", "source": {"type": "url", "url": "https://x"}}
                        ],
                    }
                ],
            }
        ),
        400,
        "image source type 'url' is not supported",
    ),
    "bad-base64-image": (
        "/v1/messages",
        json.dumps(
            {
                "model": CHAT,
                "max_tokens": 5,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/png",
                                    "data": "%%",
                                },
                            }
                        ],
                    }
                ],
            }
        ),
        400,
        "vision",
    ),
    "tool-result-without-id": (
        "/v1/messages",
        json.dumps(
            {
                "model": CHAT,
                "max_tokens": 5,
                "messages": [
                    {"role": "user", "content": [{"type": "tool_result", "content": "x"}]}
                ],
            }
        ),
        400,
        "tool_use_id: Field required",
    ),
    "wrong-type": (
        "/v1/messages",
        json.dumps({"model": CHAT, "max_tokens": "5", "messages": USER}),
        400,
        "max_tokens: Input should be a valid integer",
    ),
    "unknown-model": (
        "/v1/messages",
        json.dumps({"model": "nope", "max_tokens": 5, "messages": USER}),
        404,
        "model 'nope' not found",
    ),
    "count-no-messages": (
        "/v1/messages/count_tokens",
        json.dumps({"model": CHAT}),
        400,
        "messages: Field required",
    ),
    "count-bad-block": (
        "/v1/messages/count_tokens",
        json.dumps({"model": CHAT, "messages": [{"role": "user", "content": [{"type": 1}]}]}),
        400,
        "messages.0.content.0",
    ),
    "count-unknown-model": (
        "/v1/messages/count_tokens",
        json.dumps({"model": "nope", "messages": USER}),
        404,
        "not found",
    ),
}


@pytest.mark.parametrize("case", list(TABLE))
def test_errors_in_anthropic_shape(fake: FakeServer, case: str) -> None:
    path, body, status, message = TABLE[case]
    r = httpx.post(fake.url + path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    got = r.json()
    assert set(got) == {"type", "error", "request_id"} and got["type"] == "error"
    assert got["error"]["type"] == {400: "invalid_request_error", 404: "not_found_error"}[status]
    assert message in got["error"]["message"], got
    assert got["request_id"] == r.headers["request-id"]


def test_error_after_the_stream_started(client: anthropic.Anthropic, fake: FakeServer) -> None:
    """A runner that dies mid-answer ends the stream with an ``error`` event, which the SDK
    raises; the next request loads the model again."""
    client.messages.create(model=CHAT, max_tokens=1, messages=ask("hi"))  # load
    (loaded,) = fake.services.scheduler.running()
    runner = cast(InProcessRunner, loaded.runner)
    runner.pause_after = runner.engine.steps + 20
    try:
        with (
            pytest.raises(anthropic.APIStatusError) as e,
            client.messages.stream(model=CHAT, max_tokens=500, messages=ask("forever")) as stream,
        ):
            for event in stream:
                if event.type == "content_block_delta":
                    fake.call(runner.die)
    finally:
        runner.pause_after = None
        fake.call(runner.gate.set)
    assert cast(dict[str, Any], e.value.body)["error"]["type"] == "api_error"
    r = client.messages.create(model=CHAT, max_tokens=100, messages=ask("hi"))
    assert r.content[0].text == DEFAULT_REPLY  # type: ignore[union-attr]


def test_client_disconnect_cancels_generation(
    client: anthropic.Anthropic, fake: FakeServer
) -> None:
    """The client leaves after a few events of an endless answer; the server cancels it."""
    client.messages.create(model=CHAT, max_tokens=1, messages=ask("hi"))  # load
    (loaded,) = fake.services.scheduler.running()
    runner = cast(InProcessRunner, loaded.runner)
    before, cancels = runner.engine.steps, runner.cancels
    runner.pause_after = before + 50
    body = {"model": CHAT, "max_tokens": 100000, "messages": ask("forever"), "stream": True}
    try:
        with httpx.stream("POST", fake.url + "/v1/messages", json=body) as r:
            lines = [line for _, line in zip(range(10), r.iter_lines(), strict=False) if line]
            assert lines[0] == "event: message_start"
        wait_for(lambda: runner.cancels > cancels, "the server did not cancel the request")
    finally:
        runner.pause_after = None
        fake.call(runner.gate.set)
    wait_for(lambda: not runner.engine.has_work(), "generation went on after the client left")
    assert runner.engine.steps - before <= 52


# ---- the API key -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path) -> Iterator[FakeServer]:
    models = tmp_path_factory.mktemp("anthropic-key") / "models"
    server = FakeServer(models, script=SCRIPT, api_key=KEY).start()
    try:
        client = ollama.Client(host=server.url, headers={"Authorization": f"Bearer {KEY}"})
        client.create(model=CHAT, files={"model.gguf": client.create_blob(smollm2_gguf)})
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
def test_api_key(keyed: FakeServer, path: str) -> None:
    body = {"model": CHAT, "max_tokens": 5, "messages": USER}
    for headers in ({}, {"x-api-key": "wrong"}, {"Authorization": "Bearer wrong"}):
        r = httpx.post(keyed.url + path, json=body, headers=headers)
        assert r.status_code == 401
        assert r.json()["type"] == "error"
        assert r.json()["error"]["type"] == "authentication_error"
    for headers in ({"x-api-key": KEY}, {"Authorization": f"Bearer {KEY}"}):
        assert httpx.post(keyed.url + path, json=body, headers=headers).status_code == 200
    # x-api-key is Anthropic's header: other routes still want a bearer token
    r = httpx.get(keyed.url + "/v1/models", headers={"x-api-key": KEY})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"


def test_api_key_through_the_sdk(keyed: FakeServer) -> None:
    good = anthropic.Anthropic(base_url=keyed.url, api_key=KEY, max_retries=0)
    assert good.messages.create(model=CHAT, max_tokens=3, messages=ask("hi")).content
    assert good.messages.count_tokens(model=CHAT, messages=ask("hi")).input_tokens > 0
    bad = anthropic.Anthropic(base_url=keyed.url, api_key="wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as e:
        bad.messages.create(model=CHAT, max_tokens=3, messages=ask("hi"))
    assert cast(dict[str, Any], e.value.body)["error"]["type"] == "authentication_error"
