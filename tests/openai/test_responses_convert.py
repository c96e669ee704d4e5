"""``/v1/responses`` without a server: Responses requests as native chats
(:mod:`corral.openai.responses`) and native chat chunks as Responses events and objects
(:mod:`corral.openai.responses_stream`), every event checked against the ``openai`` SDK's own
models. The route itself is tested in :mod:`tests.openai.test_responses`."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.responses import Response as SDKResponse
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from corral.api.types import ChatMessageOut, ChatResponse
from corral.errors import BadRequest
from corral.openai.responses import ResponsesRequest, chat_request, check_input
from corral.openai.responses_stream import ResponseStream, build_response
from tests.openai.test_openai_e2e import PERSON

EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
PNG = "iVBORw0KGgo="
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


# ---- requests -> native chat ---------------------------------------------------------------------


def native(**fields: Any) -> dict[str, Any]:
    body = {"model": "m", **fields}
    check_input(body)
    return chat_request(ResponsesRequest.model_validate(body))


def call(name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"function": {"name": name, "arguments": args}}


MESSAGE_CASES: list[tuple[dict[str, Any], list[dict[str, Any]]]] = [
    ({"input": "hi"}, [{"role": "user", "content": "hi"}]),
    ({"input": ""}, []),
    (
        {"input": "hi", "instructions": "be brief"},
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
    ),
    (  # the shorthand item (no type), developer as system, parts concatenated as Ollama does
        {
            "input": [
                {"role": "developer", "content": "rules"},
                {
                    "type": "message",
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "a"},
                        {"type": "input_text", "text": "b"},
                        {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}"},
                    ],
                },
                {"role": "assistant", "content": [{"type": "output_text", "text": "c"}]},
            ]
        },
        [
            {"role": "system", "content": "rules"},
            {"role": "user", "content": "ab", "images": [PNG]},
            {"role": "assistant", "content": "c"},
        ],
    ),
    (  # a call joins the assistant's message; its output names the function
        {
            "input": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": "Let me look."},
                {
                    "type": "function_call",
                    "call_id": "call_1",
                    "name": "get_weather",
                    "arguments": '{"city": "Paris"}',
                },
                {"type": "function_call", "call_id": "call_2", "name": "now", "arguments": ""},
                {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
                {
                    "type": "function_call_output",
                    "call_id": "call_2",
                    "output": [{"type": "input_text", "text": "noon"}],
                },
            ]
        },
        [
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": "Let me look.",
                "tool_calls": [call("get_weather", {"city": "Paris"}), call("now", {})],
            },
            {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
            {"role": "tool", "content": "noon", "tool_name": "now"},
        ],
    ),
    (  # a message replayed between a call and its output stays in the call's message
        {
            "input": [
                {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
                {"role": "assistant", "content": "calling f"},
                {"type": "function_call_output", "call_id": "c", "output": "done"},
            ]
        },
        [
            {"role": "assistant", "content": "calling f", "tool_calls": [call("f", {})]},
            {"role": "tool", "content": "done", "tool_name": "f"},
        ],
    ),
    (  # reasoning: encrypted_content (the plain thinking), else the summary, for the next turn
        {
            "input": [
                {"role": "user", "content": "q"},
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "T1"},
                {"role": "assistant", "content": "a"},
                {"role": "user", "content": "q2"},
                {"type": "reasoning", "summary": [{"type": "summary_text", "text": "T2"}]},
                {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
                {"type": "reasoning", "summary": [{"type": "summary_text", "text": "T3"}]},
            ]
        },
        [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "a", "thinking": "T1"},
            {"role": "user", "content": "q2"},
            {"role": "assistant", "content": "", "tool_calls": [call("f", {})], "thinking": "T2"},
            {"role": "assistant", "content": "", "thinking": "T3"},
        ],
    ),
]


@pytest.mark.parametrize(("fields", "messages"), MESSAGE_CASES)
def test_input_becomes_native_messages(
    fields: dict[str, Any], messages: list[dict[str, Any]]
) -> None:
    assert native(**fields)["messages"] == messages


REQUEST_CASES: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({}, {"options": {"temperature": 1.0}, "stream": False}),  # top_p: the model's, as Ollama
    (
        {"temperature": 0, "top_p": 0.5, "max_output_tokens": 7, "stream": True},
        {"options": {"temperature": 0, "top_p": 0.5, "num_predict": 7}, "stream": True},
    ),
    (
        {"num_ctx": 2048, "keep_alive": "1h"},
        {"options": {"temperature": 1.0, "num_ctx": 2048}, "keep_alive": "1h"},
    ),
    (
        {"tools": [WEATHER]},
        {
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "description": "Weather in a city",
                        "parameters": WEATHER["parameters"],
                    },
                }
            ]
        },
    ),
    (
        {
            "tools": [
                {"type": "namespace", "name": "ns", "tools": [{"type": "function", "name": "f"}]}
            ]
        },
        {
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "ns.f",
                        "description": "",
                        "parameters": {"type": "object", "properties": {}},
                    },
                }
            ]
        },
    ),
    (
        {"text": {"format": {"type": "json_schema", "name": "p", "schema": PERSON}}},
        {"format": PERSON},
    ),
    ({"text": {"format": {"type": "json_object"}}}, {"format": "json"}),
    ({"text": {"format": {"type": "text"}}}, {}),
    ({"reasoning": {"effort": "high"}}, {"think": "high"}),
    ({"reasoning": {"effort": "minimal"}}, {"think": "low"}),
    ({"reasoning": {"effort": "none"}}, {"think": False}),
    ({"reasoning": {"summary": "auto"}}, {}),
    ({"store": True, "include": ["reasoning.encrypted_content"], "user": "u"}, {}),
]


@pytest.mark.parametrize(("fields", "expected"), REQUEST_CASES)
def test_request_fields(fields: dict[str, Any], expected: dict[str, Any]) -> None:
    got = native(input="hi", **fields)
    assert {k: got.get(k) for k in expected} == expected


def test_tool_choice_none_drops_the_tools() -> None:
    assert "tools" not in native(input="hi", tools=[WEATHER], tool_choice="none")
    assert "tools" in native(input="hi", tools=[WEATHER], tool_choice="auto")


INVALID: list[tuple[dict[str, Any], str]] = [
    ({"input": 5}, "input must be a string or array"),
    ({"input": {"role": "user"}}, "input must be a string or array"),
    ({"input": ["hi"]}, "input[0]: input item must be an object"),
    ({"input": [{"content": "x"}]}, "input[0]: input item missing required 'type' field"),
    (
        {"input": [{"role": "user", "content": "x"}, {"type": "frob"}]},
        'input[1]: unknown input item type: "frob"',
    ),
    (
        {"input": [{"type": "item_reference", "id": "x"}]},
        'unknown input item type: "item_reference"',
    ),
    ({"input": [{"role": "user", "content": 3}]}, "input[0]: content must be a string or array"),
    (
        {"input": [{"role": "user", "content": [{"type": "input_audio"}]}]},
        "input[0]: content[0]: unknown content type: input_audio",
    ),
    (
        {"input": [{"type": "function_call_output", "call_id": "c", "output": [{"type": "x"}]}]},
        "input[0]: output[0]: unknown content type: x",
    ),
    (
        {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
        "file inputs are not currently supported",
    ),
    (
        {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
        "file_id is not supported",
    ),
    (
        {
            "input": [
                {
                    "role": "user",
                    "content": [{"type": "input_image", "image_url": "https://x/y.png"}],
                }
            ]
        },
        "image URLs are not currently supported",
    ),
    (
        {"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{oops"}]},
        "failed to parse function call arguments",
    ),
    (
        {"input": "hi", "tools": [{"type": "file_search"}]},
        'tool type "file_search" is not supported',
    ),
    ({"input": "hi", "reasoning": {"effort": "huge"}}, 'invalid reasoning value: "huge"'),
    ({"input": "hi", "previous_response_id": "resp_1"}, "previous_response_id is not supported"),
    ({"input": "hi", "conversation": "conv_1"}, "conversation is not supported"),
    ({"input": "hi", "background": True}, "background responses are not supported"),
]


@pytest.mark.parametrize(("fields", "message"), INVALID)
def test_invalid_requests(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(BadRequest) as e:
        native(**fields)
    assert message in e.value.message


# ---- native chunks -> events -------------------------------------------------------------------


def chunk(
    content: str = "", thinking: str = "", calls: list[dict[str, Any]] | None = None
) -> ChatResponse:
    msg = ChatMessageOut(content=content, thinking=thinking or None, tool_calls=calls)
    return ChatResponse(model="m", created_at="2026-01-01T00:00:00Z", message=msg)


def done(reason: str = "stop", prompt: int = 5, evals: int = 3) -> ChatResponse:
    return ChatResponse(
        model="m",
        created_at="2026-01-01T00:00:00Z",
        done=True,
        done_reason=reason,
        prompt_eval_count=prompt,
        eval_count=evals,
    )


def ids() -> Any:
    n = iter(range(1, 1000))
    return lambda prefix: f"{prefix}{next(n)}"


def run(chunks: list[ChatResponse], **fields: Any) -> list[dict[str, Any]]:
    req = ResponsesRequest.model_validate({"model": "m", "input": "hi", **fields})
    stream = ResponseStream(req, rid="resp_x", created=7, ids=ids(), call_ids=lambda: "call_x")
    events = [e.wire() for c in chunks for e in stream.feed(c)]
    for event in events:
        EVENTS.validate_python(event)  # what the openai SDK parses, strictly
    return events


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"].removeprefix("response.") for e in events]


def test_stream_of_thinking_text_and_a_call() -> None:
    calls = [call("get_weather", {"city": "Paris"})]
    events = run(
        [
            chunk(thinking="Hm, "),
            chunk(thinking="ok."),
            chunk("Hel"),
            chunk("lo", calls=calls),
            done(),
        ]
    )
    assert kinds(events) == [
        "created",
        "in_progress",
        "output_item.added",
        "reasoning_summary_part.added",
        "reasoning_summary_text.delta",
        "reasoning_summary_text.delta",
        "reasoning_summary_text.done",
        "reasoning_summary_part.done",
        "output_item.done",
        "output_item.added",
        "content_part.added",
        "output_text.delta",
        "output_text.delta",
        "output_text.done",
        "content_part.done",
        "output_item.done",
        "output_item.added",
        "function_call_arguments.delta",
        "function_call_arguments.done",
        "output_item.done",
        "completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert {e["response"]["id"] for e in events if "response" in e} == {"resp_x"}
    # output indexes: the reasoning item, the message, the call
    assert [e["output_index"] for e in events if e["type"].endswith("output_item.added")] == [
        0,
        1,
        2,
    ]
    reasoning, message, fc = events[-1]["response"]["output"]
    assert reasoning["summary"] == [{"type": "summary_text", "text": "Hm, ok."}]
    assert reasoning["encrypted_content"] == "Hm, ok."
    assert message["content"][0]["text"] == "Hello" and message["status"] == "completed"
    assert fc == {
        "id": fc["id"],
        "type": "function_call",
        "status": "completed",
        "call_id": "call_x",
        "name": "get_weather",
        "arguments": '{"city": "Paris"}',
    }
    final = events[-1]["response"]
    assert final["status"] == "completed" and final["incomplete_details"] is None
    assert final["usage"] == {
        "input_tokens": 5,
        "output_tokens": 3,
        "total_tokens": 8,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens_details": {"reasoning_tokens": 0},
    }
    SDKResponse.model_validate(final)
    # every added item is done with the same id, and the final output holds those items
    added = {
        e["output_index"]: e["item"]["id"]
        for e in events
        if e["type"].endswith("added") and "item" in e
    }
    finished = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert [i["id"] for i in finished] == [added[0], added[1], added[2]]
    assert final["output"] == finished


def test_lifecycle_responses_echo_the_request() -> None:
    events = run(
        [chunk("x"), done()],
        instructions="be brief",
        temperature=0.2,
        top_p=0.9,
        max_output_tokens=50,
        tools=[WEATHER],
        tool_choice="auto",
        reasoning={"effort": "low"},
        metadata={"k": "v"},
        text={"format": {"type": "json_schema", "name": "p", "schema": PERSON, "strict": True}},
    )
    created = events[0]["response"]
    assert created["status"] == "in_progress" and created["output"] == []
    assert created["usage"] is None and created["completed_at"] is None
    for resp in (created, events[-1]["response"]):
        assert resp["instructions"] == "be brief"
        assert (resp["temperature"], resp["top_p"], resp["max_output_tokens"]) == (0.2, 0.9, 50)
        assert resp["tools"] == [{**WEATHER, "strict": None}]
        assert resp["reasoning"] == {"effort": "low", "summary": None}
        assert resp["metadata"] == {"k": "v"}
        assert resp["text"] == {
            "format": {"type": "json_schema", "name": "p", "schema": PERSON, "strict": True}
        }
        assert resp["store"] is False and resp["previous_response_id"] is None
    assert events[-1]["response"]["completed_at"] is not None


def test_text_after_a_call_and_thinking_after_text_open_new_items() -> None:
    events = run(
        [chunk("a"), chunk(calls=[call("f", {})]), chunk("b"), chunk(thinking="t"), done()]
    )
    types = [item["type"] for item in events[-1]["response"]["output"]]
    assert types == ["message", "function_call", "message", "reasoning"]
    texts = [
        i["content"][0]["text"] for i in events[-1]["response"]["output"] if i["type"] == "message"
    ]
    assert texts == ["a", "b"]
    ids_ = [i["id"] for i in events[-1]["response"]["output"]]
    assert len(set(ids_)) == 4


def test_max_output_tokens_makes_the_response_incomplete() -> None:
    events = run([chunk("la la"), done("length")], max_output_tokens=2)
    assert events[-1]["type"] == "response.incomplete"
    final = events[-1]["response"]
    assert final["status"] == "incomplete"
    assert final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["output"][0]["status"] == "incomplete"


def test_an_empty_answer_is_one_empty_message() -> None:
    events = run([done()])
    (message,) = events[-1]["response"]["output"]
    assert message["type"] == "message" and message["content"][0]["text"] == ""
    assert kinds(events)[2:] == [
        "output_item.added",
        "content_part.added",
        "output_text.done",
        "content_part.done",
        "output_item.done",
        "completed",
    ]


def test_a_failure_after_the_start_ends_with_error_and_failed() -> None:
    req = ResponsesRequest.model_validate({"model": "m", "input": "hi"})
    stream = ResponseStream(req)
    events = [e.wire() for e in [*stream.feed(chunk("x")), *stream.fail(500, "runner died")]]
    for event in events:
        EVENTS.validate_python(event)
    assert kinds(events)[-2:] == ["error", "failed"]
    assert events[-2]["message"] == "runner died" and events[-2]["code"] == "server_error"
    failed = events[-1]["response"]
    assert failed["status"] == "failed"
    assert failed["error"] == {"code": "server_error", "message": "runner died"}
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


def test_build_response_is_the_stream_s_last_response() -> None:
    chunks = [chunk(thinking="t"), chunk("a"), chunk(calls=[call("f", {"x": 1})]), done()]
    req = ResponsesRequest.model_validate({"model": "m", "input": "hi"})
    whole = build_response(req, chunks, rid="r", created=1, ids=ids(), call_ids=lambda: "c")
    stream = ResponseStream(req, rid="r", created=1, ids=ids(), call_ids=lambda: "c")
    last = [e for c in chunks for e in stream.feed(c)][-1].wire()["response"]
    got = whole.wire()
    assert got.pop("completed_at") is not None and last.pop("completed_at") is not None
    assert got == last
