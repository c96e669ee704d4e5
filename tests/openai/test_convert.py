"""Table-driven tests of the pure OpenAI <-> native mapping (:mod:`corral.openai.convert`,
:mod:`corral.openai.objects`)."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import pytest

from corral.api.types import (
    ChatMessageOut,
    ChatResponse,
    EmbedResponse,
    GenerateResponse,
    ListModel,
    ModelDetails,
)
from corral.errors import BadRequest
from corral.openai import convert, objects
from corral.openai.protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
)

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
USER = [{"role": "user", "content": "hi"}]


def chat(**fields: Any) -> dict[str, Any]:
    body = {"model": "m", "messages": USER, **fields}
    return convert.chat_request(ChatCompletionRequest.model_validate(body))


def ids() -> Any:
    n = iter(range(1, 100))
    return lambda: f"call_{next(n)}"


# ---- requests ---------------------------------------------------------------------------------

OPTION_CASES: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({}, {"temperature": 1.0, "top_p": 1.0}),
    ({"temperature": 0, "top_p": 0.5}, {"temperature": 0, "top_p": 0.5}),
    ({"max_tokens": 7}, {"num_predict": 7}),
    ({"max_completion_tokens": 9, "max_tokens": 7}, {"num_predict": 9}),
    ({"seed": 42}, {"seed": 42}),
    ({"stop": "END"}, {"stop": ["END"]}),
    ({"stop": ["a", "b"]}, {"stop": ["a", "b"]}),
    ({"stop": []}, {}),
    ({"frequency_penalty": 0.5, "presence_penalty": -0.5}, {"frequency_penalty": 0.5}),
    ({"presence_penalty": 1.5}, {"presence_penalty": 1.5}),
    ({"num_ctx": 1024}, {"num_ctx": 1024}),
]


@pytest.mark.parametrize(("fields", "expected"), OPTION_CASES)
def test_chat_options(fields: dict[str, Any], expected: dict[str, Any]) -> None:
    opts = chat(**fields)["options"]
    for key, value in expected.items():
        assert opts[key] == value
    if fields.get("stop") == []:
        assert "stop" not in opts


FORMAT_CASES: list[tuple[Any, Any]] = [
    (None, None),
    ({"type": "text"}, None),
    ({"type": "json_object"}, "json"),
    ({"type": " JSON_Object "}, "json"),
    ({"type": "json_schema"}, None),
    (
        {"type": "json_schema", "json_schema": {"name": "p", "schema": {"type": "object"}}},
        {"type": "object"},
    ),
    ({"type": "something_else"}, None),
]


@pytest.mark.parametrize(("response_format", "expected"), FORMAT_CASES)
def test_response_format(response_format: Any, expected: Any) -> None:
    native = chat(response_format=response_format)
    assert native.get("format") == expected


THINK_CASES: list[tuple[dict[str, Any], Any]] = [
    ({}, None),
    ({"reasoning_effort": "none"}, False),
    ({"reasoning_effort": "minimal"}, "low"),
    ({"reasoning_effort": "medium"}, "medium"),
    ({"reasoning_effort": "xhigh"}, "max"),
    ({"reasoning_effort": "ultra"}, "max"),
    ({"reasoning_effort": "max"}, "max"),
    ({"reasoning": {"effort": "low"}, "reasoning_effort": "high"}, "low"),
]


@pytest.mark.parametrize(("fields", "expected"), THINK_CASES)
def test_reasoning_effort(fields: dict[str, Any], expected: Any) -> None:
    assert chat(**fields).get("think") == expected


def test_bad_reasoning_effort() -> None:
    with pytest.raises(BadRequest, match="invalid reasoning value"):
        chat(reasoning_effort="lots")


def test_chat_request_fields() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    native = chat(stream=True, tools=tools, keep_alive="10m", logprobs=True, top_logprobs=3)
    assert native["model"] == "m" and native["stream"] is True
    assert native["tools"] == tools
    assert native["keep_alive"] == "10m"
    assert native["logprobs"] is True and native["top_logprobs"] == 3
    assert "tools" not in chat(tools=tools, tool_choice="none")
    assert chat(tools=tools, tool_choice="required")["tools"] == tools


MESSAGE_CASES: list[tuple[list[dict[str, Any]], list[dict[str, Any]]]] = [
    (USER, [{"role": "user", "content": "hi"}]),
    (
        [{"role": "developer", "content": "be brief"}],
        [{"role": "system", "content": "be brief"}],
    ),
    (
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                    {"type": "text", "text": "this?"},
                    {"type": "image_url", "image_url": f"data:;base64,{PNG}"},
                ],
            }
        ],
        [{"role": "user", "content": "what is\nthis?", "images": [PNG, PNG]}],
    ),
    (
        [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "tool", "name": "explicit", "content": "x"},
        ],
        [
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
                        "id": "call_1",
                    }
                ],
            },
            {
                "role": "tool",
                "content": "sunny",
                "tool_name": "get_weather",
                "tool_call_id": "call_1",
            },
            {"role": "tool", "content": "x", "tool_name": "explicit"},
        ],
    ),
    (
        [{"role": "assistant", "content": "ok", "reasoning": "hmm"}],
        [{"role": "assistant", "content": "ok", "thinking": "hmm"}],
    ),
    (
        [
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": ""}}],
            }
        ],
        [
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"function": {"name": "f", "arguments": {}}, "id": "c"}],
            }
        ],
    ),
]


@pytest.mark.parametrize(("messages", "expected"), MESSAGE_CASES)
def test_messages(messages: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert chat(messages=messages)["messages"] == expected


BAD_MESSAGES: list[tuple[list[dict[str, Any]], str]] = [
    ([], "too short"),
    ([{"role": "user"}], "invalid message content type"),
    ([{"role": "user", "content": [{"type": "audio"}]}], "invalid message format"),
    ([{"role": "user", "content": [{"type": "text", "text": 5}]}], "invalid message format"),
    (
        [{"role": "user", "content": [{"type": "image_url", "image_url": "https://x/y.png"}]}],
        "image URLs are not currently supported",
    ),
    (
        [{"role": "user", "content": [{"type": "image_url", "image_url": "data:text/x;base64,"}]}],
        "invalid image input",
    ),
    (
        [{"role": "user", "content": [{"type": "image_url", "image_url": "data:;base64,%%%"}]}],
        "invalid image input",
    ),
    (
        [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{"}}]}],
        "invalid tool call arguments",
    ),
    (
        [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "[1]"}}]}],
        "invalid tool call arguments",
    ),
]


@pytest.mark.parametrize(("messages", "message"), BAD_MESSAGES)
def test_bad_messages(messages: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        chat(messages=messages)


COMPLETION_CASES: list[tuple[dict[str, Any], list[str], dict[str, Any]]] = [
    ({"prompt": "once"}, ["once"], {}),
    ({"prompt": ["a", "b"]}, ["a", "b"], {}),
    ({"prompt": "x", "suffix": "y"}, ["x"], {"suffix": "y"}),
    ({"prompt": "x", "suffix": ""}, ["x"], {}),
    ({"prompt": "x", "response_format": {"type": "json_object"}}, ["x"], {"format": "json"}),
    ({"prompt": "x", "keep_alive": 0}, ["x"], {"keep_alive": 0}),
]


@pytest.mark.parametrize(("fields", "prompts", "extra"), COMPLETION_CASES)
def test_completion_request(
    fields: dict[str, Any], prompts: list[str], extra: dict[str, Any]
) -> None:
    req = CompletionRequest.model_validate({"model": "m", "max_tokens": 3, **fields})
    assert convert.prompts(req) == prompts
    native = convert.completion_request(req, prompts[0])
    assert native["prompt"] == prompts[0] and native["model"] == "m"
    assert native["options"]["num_predict"] == 3
    for key, value in extra.items():
        assert native[key] == value
    assert "suffix" in native if "suffix" in extra else "suffix" not in native


def test_empty_prompt_list() -> None:
    with pytest.raises(BadRequest, match="empty"):
        convert.prompts(CompletionRequest.model_validate({"model": "m", "prompt": []}))


EMBED_CASES: list[tuple[dict[str, Any], dict[str, Any] | str]] = [
    ({"input": "hi"}, {"model": "m", "input": "hi"}),
    ({"input": ""}, {"model": "m", "input": [""]}),
    ({"input": ["a", "b"], "dimensions": 4}, {"model": "m", "input": ["a", "b"], "dimensions": 4}),
    (
        {"input": "x", "num_ctx": 256, "keep_alive": "1m"},
        {"model": "m", "input": "x", "options": {"num_ctx": 256}, "keep_alive": "1m"},
    ),
    ({"input": []}, "invalid input"),
    ({}, "invalid input"),
    ({"input": "x", "encoding_format": "int8"}, "Invalid value for 'encoding_format' = int8"),
]


@pytest.mark.parametrize(("fields", "expected"), EMBED_CASES)
def test_embed_request(fields: dict[str, Any], expected: dict[str, Any] | str) -> None:
    req = EmbeddingRequest.model_validate({"model": "m", **fields})
    if isinstance(expected, str):
        with pytest.raises(BadRequest, match=expected.replace("'", ".")):
            convert.embed_request(req)
    else:
        assert convert.embed_request(req) == expected


@pytest.mark.parametrize(
    ("value", "expected"), [(None, "float"), ("float", "float"), ("BASE64", "base64")]
)
def test_encoding_format(value: str | None, expected: str) -> None:
    req = EmbeddingRequest.model_validate({"model": "m", "encoding_format": value})
    assert convert.encoding_format(req) == expected


# ---- responses --------------------------------------------------------------------------------


def native_chat(
    content: str = "",
    calls: list[dict[str, Any]] | None = None,
    done: str | None = None,
    thinking: str | None = None,
) -> ChatResponse:
    msg = ChatMessageOut(content=content, tool_calls=calls, thinking=thinking)
    if done is None:
        return ChatResponse(model="m:1", created_at="t", message=msg)
    return ChatResponse(
        model="m:1",
        created_at="t",
        message=msg,
        done=True,
        done_reason=done,
        prompt_eval_count=5,
        eval_count=3,
    )


CALL = {"function": {"name": "get_weather", "arguments": {"city": "Paris"}, "index": 0}}


@pytest.mark.parametrize(
    ("done_reason", "tools", "expected"),
    [
        ("stop", False, "stop"),
        ("length", False, "length"),
        ("stop", True, "tool_calls"),
        ("length", True, "length"),
        (None, False, "stop"),
        ("load", False, "stop"),
    ],
)
def test_finish_reason(done_reason: str | None, tools: bool, expected: str) -> None:
    assert objects.finish_reason(done_reason, tools) == expected


def test_chat_completion_object() -> None:
    chunks = [native_chat("Hel"), native_chat("lo"), native_chat(done="stop")]
    obj = objects.chat_completion(chunks, rid="chatcmpl-1", created=7).wire()
    assert obj == {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 7,
        "model": "m:1",
        "system_fingerprint": "fp_ollama",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello"},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
    }


def test_chat_completion_tool_calls() -> None:
    chunks = [native_chat(calls=[CALL]), native_chat(done="stop")]
    obj = objects.chat_completion(chunks, rid="r", created=0, new_id=ids()).wire()
    choice = obj["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"] == [
        {
            "index": 0,
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }
    ]


def test_tool_call_ids_look_like_ollamas() -> None:
    a, b = objects.tool_call_id(), objects.tool_call_id()
    assert a != b
    assert a.startswith("call_") and len(a) == 13 and a[5:].isalnum() and a[5:].islower()


def test_chat_stream_chunks() -> None:
    conv = objects.ChatStream("r", 1, include_usage=True, new_id=ids())
    natives = [native_chat("Hi"), native_chat(" there"), native_chat(done="length")]
    out = [c.wire() for n in natives for c in conv.feed(n)]
    deltas = [c["choices"][0]["delta"] if c["choices"] else None for c in out]
    assert deltas == [
        {"role": "assistant", "content": ""},
        {"content": "Hi"},
        {"content": " there"},
        {},
        None,
    ]
    assert [c["choices"][0]["finish_reason"] for c in out[:4]] == [None, None, None, "length"]
    assert out[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    assert {c["object"] for c in out} == {"chat.completion.chunk"}
    assert {c["id"] for c in out} == {"r"}


def test_chat_stream_tool_calls_and_no_usage() -> None:
    conv = objects.ChatStream("r", 1, new_id=ids())
    natives = [native_chat(calls=[CALL]), native_chat(done="stop")]
    out = [c.wire() for n in natives for c in conv.feed(n)]
    assert len(out) == 3
    call_delta = out[1]["choices"][0]["delta"]
    assert "content" not in call_delta
    assert call_delta["tool_calls"][0]["function"]["arguments"] == '{"city": "Paris"}'
    assert out[2]["choices"][0]["finish_reason"] == "tool_calls"


def test_chat_stream_empty_answer_still_opens_with_role() -> None:
    out = [c.wire() for c in objects.ChatStream("r", 1).feed(native_chat(done="stop"))]
    assert [c["choices"][0]["delta"] for c in out] == [{"role": "assistant", "content": ""}, {}]


def test_chat_stream_reasoning() -> None:
    conv = objects.ChatStream("r", 1)
    chunk = native_chat("answer", thinking="hmm")
    deltas = [c.wire()["choices"][0]["delta"] for c in conv.feed(chunk)]
    assert deltas == [
        {"role": "assistant", "content": ""},
        {"reasoning": "hmm"},
        {"content": "answer"},
    ]


def native_gen(text: str, done: str | None = None) -> GenerateResponse:
    if not done:
        return GenerateResponse(model="m", created_at="t", response=text)
    return GenerateResponse(
        model="m",
        created_at="t",
        response=text,
        done=True,
        done_reason=done,
        prompt_eval_count=2,
        eval_count=4,
    )


def test_text_completion() -> None:
    results = [
        [native_gen("one"), native_gen("", "stop")],
        [native_gen("two"), native_gen("", "length")],
    ]
    obj = objects.text_completion(
        results, rid="cmpl-1", created=3, echo_prompts=["A: ", "B: "]
    ).wire()
    assert obj["object"] == "text_completion"
    assert [(c["index"], c["text"], c["finish_reason"]) for c in obj["choices"]] == [
        (0, "A: one", "stop"),
        (1, "B: two", "length"),
    ]
    assert obj["usage"] == {"prompt_tokens": 4, "completion_tokens": 8, "total_tokens": 12}


def test_completion_chunks() -> None:
    a = objects.completion_chunk(native_gen("x"), 1, rid="c", created=0, prefix="P").wire()
    assert a["choices"] == [{"text": "Px", "index": 1, "finish_reason": None, "logprobs": None}]
    b = objects.completion_chunk(native_gen("", "length"), 0, rid="c", created=0).wire()
    assert b["choices"][0]["finish_reason"] == "length"
    finals = [native_gen("", "stop")] * 2
    u = objects.completion_usage_chunk(finals, rid="c", created=0, model="m").wire()
    assert u["choices"] == [] and u["usage"]["total_tokens"] == 12


@pytest.mark.parametrize("values", [[], [0.0], [1.0, -2.5, 0.125], [3.4e38, -1e-30]])
def test_floats_to_base64_roundtrip(values: list[float]) -> None:
    raw = base64.b64decode(objects.floats_to_base64(values))
    assert len(raw) == 4 * len(values)
    back = struct.unpack(f"<{len(values)}f", raw)
    assert back == pytest.approx(values, rel=1e-6)


def test_floats_to_base64_known_bytes() -> None:
    assert objects.floats_to_base64([1.0]) == base64.b64encode(b"\x00\x00\x80\x3f").decode()


@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_embedding_list(encoding: str) -> None:
    native = EmbedResponse(model="e", embeddings=[[0.5, 0.25], [1.0, 0.0]], prompt_eval_count=6)
    obj = objects.embedding_list("e", native, encoding).wire()
    assert obj["object"] == "list" and obj["model"] == "e"
    assert obj["usage"] == {"prompt_tokens": 6, "total_tokens": 6}
    assert [d["index"] for d in obj["data"]] == [0, 1]
    assert {d["object"] for d in obj["data"]} == {"embedding"}
    first = obj["data"][0]["embedding"]
    if encoding == "float":
        assert first == [0.5, 0.25]
    else:
        assert struct.unpack("<2f", base64.b64decode(first)) == (0.5, 0.25)


@pytest.mark.parametrize(
    ("name", "owner"),
    [
        ("smollm2:135m", "library"),
        ("jane/tiny:latest", "jane"),
        ("example.com:5000/team/m:v1", "team"),
        ("not a name!", "library"),
    ],
)
def test_owner(name: str, owner: str) -> None:
    assert objects.owner(name) == owner


def listed(name: str, modified_at: str) -> ListModel:
    return ListModel(
        name=name,
        model=name,
        modified_at=modified_at,
        size=1,
        digest="d",
        details=ModelDetails(),
    )


def test_model_list() -> None:
    entries = [
        listed("a:latest", "2024-05-01T10:00:00.5+02:00"),
        listed("x/b:1", "1970-01-01T00:00:10Z"),
    ]
    assert objects.model_list(entries).wire() == {
        "object": "list",
        "data": [
            {"id": "a:latest", "object": "model", "created": 1714550400, "owned_by": "library"},
            {"id": "x/b:1", "object": "model", "created": 10, "owned_by": "x"},
        ],
    }
    assert objects.model_list([]).wire() == {"object": "list", "data": []}


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (404, "not_found_error"),
        (500, "api_error"),
        (503, "api_error"),
    ],
)
def test_error_body(status: int, kind: str) -> None:
    assert objects.error_body(status, "boom") == {
        "error": {"message": "boom", "type": kind, "param": None, "code": None}
    }


def test_unknown_fields_are_kept_aside() -> None:
    req = ChatCompletionRequest.model_validate(
        {"model": "m", "messages": USER, "frobnicate": 1, "user": "u", "n": 1}
    )
    assert req.unknown_fields() == ["frobnicate"]
    assert "frobnicate" not in json.dumps(convert.chat_request(req))
