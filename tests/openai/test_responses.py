"""``POST /v1/responses`` (OpenAI's Responses API) through the official ``openai`` SDK: against a
real HTTP server with scripted fake runners, and (``slow``) SmolLM2 for real. The pure mappings
are tested in :mod:`tests.openai.test_responses_convert`.

The fake engine picks its reply by a substring of the rendered prompt, so a scripted key placed
in ``instructions``, a content part, a tool's output or a reasoning item proves that this part of
the request reached the model.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import ollama
import openai
import pytest

from corral.engine.fake import DEFAULT_REPLY, Endless, Reply
from tests.conditions import wait_for
from tests.fakerunner import InProcessRunner
from tests.openai import test_openai_e2e as shared
from tests.openai.fakeserver import FakeServer
from tests.openai.test_openai_e2e import JSON_REPLY, PERSON, TOOL_REPLY, TOOLS_TEMPLATE
from tests.openai.test_responses_convert import WEATHER

# the real-model server of the OpenAI tests (SmolLM2 as "smollm2:135m" and "smol-tools")
real = shared.real
real_oai = shared.real_oai


# ---- through the server, with the openai SDK and scripted fake runners ------------------------

CHAT = "resp-chat"
THINKER = "resp-thinker"
THINKER_TEMPLATE = (
    "{{ range .Messages }}<|{{ .Role }}|>"
    "{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Content }}\n{{ end }}"
    "<|assistant|>{{ if .Think }}thinking{{ end }}\n"
)
SCRIPT: dict[str, Reply] = {
    "TOOL-RESULT": "used the tool result",
    "INSTRUCTED": "followed the instructions",
    "PART-KEY": "read the second part",
    "OLD-THOUGHT": "remembered the thought",
    "PONDER": "<think>I ponder.</think>The answer.",
    "JSON please": JSON_REPLY,
    "weather": TOOL_REPLY,
    "forever": Endless("la "),
}


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path) -> Iterator[FakeServer]:
    root = tmp_path_factory.mktemp("responses-fake")
    server = FakeServer(root / "models", script=SCRIPT).start()
    try:
        client = ollama.Client(host=server.url)
        digest = client.create_blob(smollm2_gguf)
        client.create(model=CHAT, files={"model.gguf": digest}, template=TOOLS_TEMPLATE)
        client.create(model=THINKER, files={"model.gguf": digest}, template=THINKER_TEMPLATE)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def oai(fake: FakeServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.url + "/v1", api_key="ignored", max_retries=0)


def test_response(oai: openai.OpenAI) -> None:
    r = oai.responses.create(model=CHAT, input="hello")
    assert r.object == "response" and r.id.startswith("resp_")
    assert r.status == "completed" and r.model == CHAT
    assert r.created_at > 0 and r.completed_at is not None
    assert r.output_text == DEFAULT_REPLY
    (message,) = r.output
    assert message.type == "message" and message.id.startswith("msg_")
    assert message.role == "assistant" and message.status == "completed"
    assert r.usage is not None and r.usage.input_tokens > 0
    assert r.usage.output_tokens > len(DEFAULT_REPLY) - 2
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens


def test_instructions_parts_and_items_reach_the_model(oai: openai.OpenAI) -> None:
    r = oai.responses.create(model=CHAT, input="hello", instructions="INSTRUCTED")
    assert r.output_text == "followed the instructions"
    assert r.instructions == "INSTRUCTED"
    parts: Any = [
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "first, "},
                {"type": "input_text", "text": "PART-KEY"},
            ],
        }
    ]
    assert oai.responses.create(model=CHAT, input=parts).output_text == "read the second part"


def test_streaming(oai: openai.OpenAI) -> None:
    events = list(oai.responses.create(model=CHAT, input="hello again", stream=True))
    types = [e.type for e in events]
    assert types[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert set(types[4:-4]) == {"response.output_text.delta"}
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1]
    assert final.type == "response.completed"
    assert deltas == final.response.output_text == DEFAULT_REPLY
    assert final.response.usage is not None and final.response.usage.output_tokens > 0
    assert events[0].type == "response.created" and events[0].response.id == final.response.id


def test_stream_wire_format(fake: FakeServer) -> None:
    body = {"model": CHAT, "input": "hi", "stream": True, "max_output_tokens": 3}
    with httpx.stream("POST", fake.url + "/v1/responses", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = r.read().decode()
    blocks = raw.split("\n\n")
    assert blocks[-1] == ""
    for block in blocks[:-1]:
        event, data = block.split("\n")
        assert event.startswith("event: ") and data.startswith("data: {")
        assert json.loads(data.removeprefix("data: "))["type"] == event.removeprefix("event: ")
    assert "[DONE]" not in raw
    assert blocks[-2].startswith("event: response.incomplete\n")


def test_sdk_stream_helper(oai: openai.OpenAI) -> None:
    """``responses.stream`` checks item identities across events and rebuilds the response."""
    with oai.responses.stream(model=THINKER, input="PONDER", reasoning={"effort": "low"}) as s:
        texts = [e.delta for e in s if e.type == "response.output_text.delta"]
        final = s.get_final_response()
    assert "".join(texts) == final.output_text == "The answer."


def test_reasoning_items(oai: openai.OpenAI) -> None:
    r = oai.responses.create(model=THINKER, input="PONDER", reasoning={"effort": "high"})
    reasoning, message = r.output
    assert reasoning.type == "reasoning" and reasoning.id.startswith("rs_")
    assert [s.text for s in reasoning.summary] == ["I ponder."]
    assert message.type == "message" and r.output_text == "The answer."
    assert r.reasoning is not None and r.reasoning.effort == "high"

    events = list(
        oai.responses.create(
            model=THINKER, input="PONDER", reasoning={"effort": "low"}, stream=True
        )
    )
    thought = "".join(e.delta for e in events if e.type == "response.reasoning_summary_text.delta")
    assert thought == "I ponder."
    types = [e.type for e in events]
    assert types.index("response.reasoning_summary_text.done") < types.index(
        "response.content_part.added"
    )

    # the reasoning item sent back is the next turn's thinking, rendered by the template
    history: Any = [
        {"role": "user", "content": "q"},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "OLD-THOUGHT"},
        {"role": "assistant", "content": "a"},
        {"role": "user", "content": "again"},
    ]
    assert oai.responses.create(model=THINKER, input=history).output_text == (
        "remembered the thought"
    )


def test_reasoning_effort_on_a_model_without_thinking(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        oai.responses.create(model=CHAT, input="hi", reasoning={"effort": "low"})
    assert e.value.status_code == 400
    assert e.value.body == {
        "message": f'"{CHAT}" does not support thinking',
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


def test_function_call_round_trip(oai: openai.OpenAI) -> None:
    tools: Any = [WEATHER]
    r = oai.responses.create(model=CHAT, input="What is the weather in Paris?", tools=tools)
    (fc,) = r.output
    assert fc.type == "function_call" and fc.status == "completed"
    assert fc.call_id.startswith("call_") and (fc.id or "").startswith("fc_")
    assert fc.name == "get_weather" and json.loads(fc.arguments) == {"city": "Paris"}
    assert r.output_text == ""
    assert [t.model_dump(exclude_none=True) for t in r.tools] == [WEATHER]

    # the SDK's output items go back as input, with the function's result
    follow: Any = [
        {"role": "user", "content": "What is the weather in Paris?"},
        *[item.model_dump(exclude_none=True) for item in r.output],
        {"type": "function_call_output", "call_id": fc.call_id, "output": "TOOL-RESULT: sunny"},
    ]
    again = oai.responses.create(model=CHAT, input=follow, tools=tools)
    assert again.output_text == "used the tool result"

    # tool_choice "none" drops the tools: the reply stays text
    r = oai.responses.create(model=CHAT, input="weather?", tools=tools, tool_choice="none")
    assert r.output_text == TOOL_REPLY and r.tool_choice == "none"


def test_function_call_streaming(oai: openai.OpenAI) -> None:
    tools: Any = [WEATHER]
    events = list(
        oai.responses.create(model=CHAT, input="weather in Paris?", tools=tools, stream=True)
    )
    added = [e for e in events if e.type == "response.output_item.added"]
    assert [e.item.type for e in added] == ["function_call"]
    (args,) = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert json.loads(args.arguments) == {"city": "Paris"}
    final = events[-1]
    assert final.type == "response.completed"
    assert [i.type for i in final.response.output] == ["function_call"]


def test_max_output_tokens(oai: openai.OpenAI) -> None:
    r = oai.responses.create(model=CHAT, input="forever", max_output_tokens=6)
    assert r.output_text == "la la "
    assert r.status == "incomplete" and r.max_output_tokens == 6
    assert r.incomplete_details is not None and r.incomplete_details.reason == "max_output_tokens"
    assert r.usage is not None and r.usage.output_tokens == 6
    events = list(
        oai.responses.create(model=CHAT, input="forever", max_output_tokens=4, stream=True)
    )
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.output_text == "la l"


def test_json_schema_text_format(oai: openai.OpenAI) -> None:
    fmt: Any = {"format": {"type": "json_schema", "name": "person", "schema": PERSON}}
    r = oai.responses.create(model=CHAT, input="JSON please", text=fmt)
    assert json.loads(r.output_text) == {"name": "Ada", "age": 36}
    assert r.text is not None and r.text.format is not None and r.text.format.type == "json_schema"


def test_unknown_model(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as e:
        oai.responses.create(model="nope", input="hi")
    assert e.value.body == {
        "message": "model 'nope' not found",
        "type": "not_found_error",
        "param": None,
        "code": None,
    }
    with pytest.raises(openai.NotFoundError):
        oai.responses.create(model="nope", input="hi", stream=True)


BAD_REQUESTS: list[tuple[Any, str]] = [
    (b"{not json", "invalid JSON"),
    ([1], "JSON object"),
    ({"input": "hi"}, "model is required"),
    ({"model": CHAT, "input": 5}, "input must be a string or array"),
    ({"model": CHAT, "input": [{"type": "frob"}]}, 'input[0]: unknown input item type: "frob"'),
    ({"model": CHAT, "input": [{"content": "x"}]}, "missing required 'type' field"),
    ({"model": CHAT, "input": [{"role": "wizard", "content": "x"}]}, 'invalid role "wizard"'),
    (
        {"model": CHAT, "input": [{"type": "message", "content": "x"}]},
        'input[0]: missing required field "role"',
    ),
    (
        {"model": CHAT, "input": [{"role": "user", "content": "x"}, {"type": "function_call"}]},
        'input[1]: missing required field "call_id"',
    ),
    (
        {"model": CHAT, "input": [{"role": "user", "content": [{"type": "input_text"}]}]},
        'input[0]: content[0]: missing required field "text"',
    ),
    ({"model": CHAT, "input": "x", "tools": [{"name": 5}]}, 'invalid value for "tools.0.name"'),
    ({"model": CHAT, "input": "hi", "temperature": "hot"}, "temperature"),
    ({"model": CHAT, "input": "hi", "stream": "yes"}, "stream"),
    ({"model": CHAT, "input": "hi", "max_output_tokens": 1.5}, "max_output_tokens"),
    ({"model": CHAT, "input": "hi", "previous_response_id": "resp_1"}, "stateless"),
    ({"model": CHAT, "input": "hi", "reasoning": {"effort": "huge"}}, "invalid reasoning value"),
]


@pytest.mark.parametrize(("body", "message"), BAD_REQUESTS)
def test_bad_requests(fake: FakeServer, body: Any, message: str) -> None:
    url = fake.url + "/v1/responses"
    r = httpx.post(url, content=body) if isinstance(body, bytes) else httpx.post(url, json=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == "invalid_request_error"
    assert message in err["message"]


def test_extra_body_num_ctx_and_keep_alive(oai: openai.OpenAI, fake: FakeServer) -> None:
    oai.responses.create(model=CHAT, input="hi", extra_body={"num_ctx": 1024, "keep_alive": "1h"})
    assert shared.ps(fake.url)[f"{CHAT}:latest"]["context_length"] == 1024
    oai.responses.create(model=CHAT, input="hi", extra_body={"keep_alive": 0})
    assert f"{CHAT}:latest" not in shared.ps(fake.url)


def test_client_disconnect_cancels_generation(oai: openai.OpenAI, fake: FakeServer) -> None:
    """The runner pauses 50 steps into an endless answer; the client leaves after its first events;
    the server must cancel the request, which then ends instead of filling the context."""
    oai.responses.create(model=CHAT, input="hi", max_output_tokens=1)  # load
    loaded = fake.services.scheduler.running()[0]  # the most recently used
    runner = cast(InProcessRunner, loaded.runner)
    before, cancels = runner.engine.steps, runner.cancels
    runner.pause_after = before + 50
    body = {"model": CHAT, "input": "forever and ever", "stream": True}
    try:
        with httpx.stream("POST", fake.url + "/v1/responses", json=body) as r:
            lines = [line for _, line in zip(range(12), r.iter_lines(), strict=False) if line]
            assert lines[0] == "event: response.created"
        wait_for(lambda: runner.cancels > cancels, "the server did not cancel the request")
    finally:
        runner.pause_after = None
        fake.call(runner.gate.set)
    wait_for(lambda: not runner.engine.has_work(), "generation went on after the client left")
    assert runner.engine.steps - before <= 52


def test_api_key_applies(tmp_path: Path) -> None:
    server = FakeServer(tmp_path / "models", api_key="k3y").start()
    try:
        r = httpx.post(server.url + "/v1/responses", json={"model": CHAT, "input": "hi"})
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "invalid_api_key"
        keyed = openai.OpenAI(base_url=server.url + "/v1", api_key="k3y", max_retries=0)
        with pytest.raises(openai.NotFoundError):  # past the key: no such model here
            keyed.responses.create(model=CHAT, input="hi")
    finally:
        server.stop()


# ---- SmolLM2 for real ---------------------------------------------------------------------------


@pytest.mark.slow
def test_real_response_and_stream(real_oai: openai.OpenAI) -> None:
    q = "What is the capital of France?"
    r = real_oai.responses.create(
        model="smollm2:135m", input=q, instructions="Answer in one sentence.", temperature=0,
        max_output_tokens=40,
    )  # fmt: skip
    assert r.status in ("completed", "incomplete") and r.output_text.strip()
    assert r.instructions == "Answer in one sentence."
    assert r.usage is not None and 0 < r.usage.output_tokens <= 40
    events = list(
        real_oai.responses.create(
            model="smollm2:135m", input=q, temperature=0, max_output_tokens=40, stream=True
        )
    )
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].type == "response.created" and events[1].type == "response.in_progress"
    final = events[-1]
    assert final.type in ("response.completed", "response.incomplete")
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas and deltas == final.response.output_text
    done = [e for e in events if e.type == "response.output_text.done"]
    assert [e.text for e in done] == [deltas]


@pytest.mark.slow
def test_real_max_output_tokens(real_oai: openai.OpenAI) -> None:
    r = real_oai.responses.create(
        model="smollm2:135m", input="Write a long story.", max_output_tokens=5, temperature=0
    )
    assert r.status == "incomplete"
    assert r.incomplete_details is not None and r.incomplete_details.reason == "max_output_tokens"
    assert r.usage is not None and r.usage.output_tokens == 5


@pytest.mark.slow
def test_real_function_tool(real_oai: openai.OpenAI) -> None:
    """The model's answer, forced into the tool-call shape by a schema, comes back as a call."""
    shape: Any = {
        "format": {
            "type": "json_schema",
            "name": "call",
            "schema": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "enum": ["get_weather"]},
                    "arguments": WEATHER["parameters"],
                },
                "required": ["name", "arguments"],
            },
        }
    }
    r = real_oai.responses.create(
        model="smol-tools", input="What is the weather in Paris?", tools=[cast(Any, WEATHER)],
        text=shape, temperature=0, max_output_tokens=60,
    )  # fmt: skip
    (fc,) = [i for i in r.output if i.type == "function_call"]
    assert fc.name == "get_weather" and fc.call_id.startswith("call_")
    assert "city" in json.loads(fc.arguments)


@pytest.mark.slow
def test_real_reasoning_effort_without_thinking(real_oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        real_oai.responses.create(model="smollm2:135m", input="hi", reasoning={"effort": "low"})
    assert e.value.status_code == 400
    assert cast(dict[str, Any], e.value.body)["message"] == (
        '"smollm2:135m" does not support thinking'
    )
