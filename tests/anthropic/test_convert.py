"""Table-driven tests of the pure Anthropic <-> native mapping (:mod:`corral.anthropic.protocol`,
:mod:`corral.anthropic.convert`): requests both ways, answers, and the 400s of malformed input."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from corral.anthropic import convert
from corral.anthropic.protocol import CountTokensRequest, MessagesRequest, parse
from corral.api.types import ChatMessageOut, ChatRequest, ChatResponse
from corral.errors import BadRequest

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
USER = [{"role": "user", "content": "hi"}]
WEATHER = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def request(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 64, "messages": USER, **fields}


def native(**fields: Any) -> ChatRequest:
    return convert.chat_request(parse(MessagesRequest, request(**fields)))


def wire(**fields: Any) -> dict[str, Any]:
    """The native request as the native route would receive it."""
    return native(**fields).model_dump(exclude_none=True, by_alias=True)


def image(data: str = PNG, media_type: str = "image/png") -> dict[str, Any]:
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def tool_turns(result: Any, *, is_error: bool | None = None) -> list[dict[str, Any]]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": "toolu_1", "content": result}
    if is_error is not None:
        block["is_error"] = is_error
    return [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"c": 1}},
            ],
        },
        {"role": "user", "content": [block, {"type": "text", "text": "and tomorrow?"}]},
    ]


# ---- requests ----------------------------------------------------------------------------------

OPTION_CASES: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({}, {"num_predict": 64}),
    ({"max_tokens": 1}, {"num_predict": 1}),
    ({"temperature": 0.2, "top_p": 0.9}, {"num_predict": 64, "temperature": 0.2, "top_p": 0.9}),
    ({"temperature": 1}, {"num_predict": 64, "temperature": 1}),
    ({"top_k": 5}, {"num_predict": 64, "top_k": 5}),
    ({"stop_sequences": ["END", "\n\n"]}, {"num_predict": 64, "stop": ["END", "\n\n"]}),
    ({"stop_sequences": []}, {"num_predict": 64}),
    ({"num_ctx": 1024}, {"num_predict": 64, "num_ctx": 1024}),
]


@pytest.mark.parametrize(("fields", "options"), OPTION_CASES)
def test_sampling_options(fields: dict[str, Any], options: dict[str, Any]) -> None:
    assert native(**fields).options == options


MESSAGE_CASES: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {
    "string-content": ({}, [{"role": "user", "content": "hi"}]),
    "system-string": (
        {"system": "Be brief."},
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
    ),
    "system-blocks-joined": (
        {
            "system": [
                {"type": "text", "text": "One.", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "Two."},
            ]
        },
        [{"role": "system", "content": "One.\nTwo."}, {"role": "user", "content": "hi"}],
    ),
    "empty-system-dropped": ({"system": ""}, [{"role": "user", "content": "hi"}]),
    "text-blocks-joined-image-attached": (
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What"},
                        image(),
                        {"type": "text", "text": "is this?"},
                    ],
                }
            ]
        },
        [{"role": "user", "content": "What\nis this?", "images": [PNG]}],
    ),
    "assistant-prefill-and-thinking": (
        {
            "messages": [
                *USER,
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                        {"type": "redacted_thinking", "data": "opaque"},
                        {"type": "text", "text": "Hello"},
                    ],
                },
            ]
        },
        [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "Hello", "thinking": "hmm"},
        ],
    ),
    "tool-result-before-the-rest-of-its-turn": (
        {"messages": tool_turns("sunny")},
        [
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": "Let me look.",
                "tool_calls": [{"function": {"name": "get_weather", "arguments": {"c": 1}}}],
            },
            {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
            {"role": "user", "content": "and tomorrow?"},
        ],
    ),
    "tool-result-blocks-with-an-image": (
        {
            "messages": tool_turns(
                [{"type": "text", "text": "a"}, image(), {"type": "text", "text": "b"}]
            )
        },
        [
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": "Let me look.",
                "tool_calls": [{"function": {"name": "get_weather", "arguments": {"c": 1}}}],
            },
            {"role": "tool", "content": "a\nb", "images": [PNG], "tool_name": "get_weather"},
            {"role": "user", "content": "and tomorrow?"},
        ],
    ),
}


@pytest.mark.parametrize("case", list(MESSAGE_CASES))
def test_messages(case: str) -> None:
    fields, expected = MESSAGE_CASES[case]
    assert wire(**fields)["messages"] == expected


def test_a_turn_of_only_tool_results_is_only_tool_messages() -> None:
    turns = tool_turns("sunny")
    turns[-1]["content"] = turns[-1]["content"][:1]
    (*_, last) = wire(messages=turns)["messages"]
    assert last == {"role": "tool", "content": "sunny", "tool_name": "get_weather"}


@pytest.mark.parametrize(
    ("is_error", "content", "text"),
    [(True, "boom", "Error: boom"), (True, [], "Error"), (False, "ok", "ok"), (None, None, "")],
)
def test_tool_result_errors(is_error: bool | None, content: Any, text: str) -> None:
    turns = tool_turns(content, is_error=is_error)
    if content is None:
        del turns[-1]["content"][0]["content"]
    tool = wire(messages=turns)["messages"][2]
    assert tool["role"] == "tool" and tool.get("content", "") == text


def test_tools_and_tool_choice() -> None:
    assert wire(tools=[WEATHER])["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather in a city",
                "parameters": WEATHER["input_schema"],
            },
        }
    ]
    custom = {**WEATHER, "type": "custom"}
    del custom["description"]
    assert wire(tools=[custom])["tools"][0]["function"] == {
        "name": "get_weather",
        "parameters": WEATHER["input_schema"],
    }
    for choice in ({"type": "auto"}, {"type": "any"}, {"type": "tool", "name": "get_weather"}):
        assert len(wire(tools=[WEATHER], tool_choice=choice)["tools"]) == 1
    assert "tools" not in wire(tools=[WEATHER], tool_choice={"type": "none"})


THINK_CASES: list[tuple[dict[str, Any], bool | str | None]] = [
    ({}, None),
    ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, True),
    ({"thinking": {"type": "disabled"}}, False),
    ({"thinking": {"type": "adaptive"}}, None),
    ({"thinking": {"type": "between_tools"}}, True),
    ({"output_config": {"effort": "low"}}, "low"),
    ({"output_config": {"effort": "xhigh"}}, "high"),
    ({"output_config": {"effort": "max"}}, "max"),
    ({"thinking": {"type": "disabled"}, "output_config": {"effort": "high"}}, False),
]


@pytest.mark.parametrize(("fields", "think"), THINK_CASES)
def test_thinking_config(fields: dict[str, Any], think: bool | str | None) -> None:
    assert native(**fields).think == think


def test_output_format_stream_and_extensions() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    got = native(
        output_config={"format": {"type": "json_schema", "schema": schema}},
        stream=True,
        keep_alive="10m",
    )
    assert got.format == schema and got.stream is True and got.keep_alive == "10m"
    assert native().format is None and native().stream is False


def test_count_tokens_request_has_no_sampling() -> None:
    req = parse(CountTokensRequest, {"model": "m", "messages": USER, "system": "s"})
    got = convert.chat_request(req)
    assert got.options == {} and got.stream is False
    assert [m.role for m in got.messages or []] == ["system", "user"]


def test_unknown_top_level_fields_are_kept_aside() -> None:
    req = parse(MessagesRequest, request(metadata={"user_id": "u"}, container="c", betas=["x"]))
    assert req.unknown_fields() == ["betas", "container"]


# ---- malformed requests: Anthropic's 400 ---------------------------------------------------------


def block(b: dict[str, Any]) -> dict[str, Any]:
    return request(messages=[{"role": "user", "content": [b]}])


BAD: dict[str, tuple[Any, str]] = {
    "not-an-object": ([], "request body must be a JSON object"),
    "max-tokens-missing": ({"model": "m", "messages": USER}, "max_tokens: Field required"),
    "max-tokens-zero": (request(max_tokens=0), "max_tokens: Input should be greater than"),
    "max-tokens-string": (request(max_tokens="5"), "max_tokens: Input should be a valid integer"),
    "model-missing": ({"max_tokens": 5, "messages": USER}, "model: Field required"),
    "messages-missing": ({"model": "m", "max_tokens": 5}, "messages: Field required"),
    "messages-empty": (request(messages=[]), "messages: List should have at least 1 item"),
    "role-unknown": (
        request(messages=[{"role": "system", "content": "x"}]),
        "messages.0.role: Input should be 'user' or 'assistant'",
    ),
    "content-number": (
        request(messages=[{"role": "user", "content": 5}]),
        "messages.0.content: Input should be a valid list",
    ),
    "block-without-type": (block({"text": "x"}), "messages.0.content.0: Unable to extract tag"),
    "block-type-unknown": (
        block({"type": "document", "source": {}}),
        "messages.0.content.0: Input tag 'document' found using 'type' does not match",
    ),
    "text-not-a-string": (
        block({"type": "text", "text": 5}),
        "messages.0.content.0.text.text: Input should be a valid string",
    ),
    "image-without-source": (block({"type": "image"}), "messages.0.content.0.image.source: Field"),
    "image-source-type-unknown": (
        block({"type": "image", "source": {"type": "ftp"}}),
        "messages.0.content.0.image.source: Input tag 'ftp'",
    ),
    "image-without-data": (
        block({"type": "image", "source": {"type": "base64", "media_type": "image/png"}}),
        "messages.0.content.0.image.source.base64.data: Field required",
    ),
    "image-media-type": (
        block(image(media_type="image/tiff")),
        "messages.0.content.0.image.source.base64.media_type: Input should be 'image/jpeg'",
    ),
    "image-url": (
        block({"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}),
        "messages.0.content.0.source: image source type 'url' is not supported",
    ),
    "image-file": (
        block({"type": "image", "source": {"type": "file", "file_id": "file_1"}}),
        "messages.0.content.0.source: image source type 'file' is not supported",
    ),
    "image-empty-data": (block(image(data="")), "messages.0.content.0.source.data: the image"),
    "tool-result-without-id": (
        block({"type": "tool_result", "content": "x"}),
        "messages.0.content.0.tool_result.tool_use_id: Field required",
    ),
    "tool-result-unknown-id": (
        block({"type": "tool_result", "tool_use_id": "toolu_9", "content": "x"}),
        "messages.0.content.0.tool_use_id: no tool_use block with id 'toolu_9'",
    ),
    "tool-result-bad-part": (
        block({"type": "tool_result", "tool_use_id": "t", "content": [{"type": "tool_use"}]}),
        "messages.0.content.0.tool_result.content.0: Input tag 'tool_use'",
    ),
    "tool-use-input-not-object": (
        request(
            messages=[
                *USER,
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t", "name": "f", "input": "{}"}],
                },
            ]
        ),
        "messages.1.content.0.tool_use.input: Input should be a valid dictionary",
    ),
    "tool-use-in-a-user-turn": (
        block({"type": "tool_use", "id": "t", "name": "f", "input": {}}),
        "messages.0.content.0: tool_use blocks belong in assistant messages",
    ),
    "thinking-without-text": (
        block({"type": "thinking", "signature": "s"}),
        "messages.0.content.0.thinking.thinking: Field required",
    ),
    "tool-without-schema": (
        request(tools=[{"name": "f"}]),
        "tools.0.input_schema: Field required",
    ),
    "server-tool": (
        request(tools=[{"type": "web_search_20250305", "name": "web_search"}]),
        "tools.0.type: tool type 'web_search_20250305' is not supported",
    ),
    "tool-choice-unknown-tool": (
        request(tools=[WEATHER], tool_choice={"type": "tool", "name": "nope"}),
        "tool_choice.name: no tool is named 'nope'",
    ),
    "tool-choice-type": (
        request(tool_choice={"type": "sometimes"}),
        "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'",
    ),
    "thinking-without-budget": (
        request(thinking={"type": "enabled"}),
        "thinking.enabled.budget_tokens: Field required",
    ),
    "thinking-type-unknown": (request(thinking={"type": "always"}), "thinking: Input tag 'always'"),
    "stream-not-bool": (request(stream="yes"), "stream: Input should be a valid boolean"),
    "temperature-string": (request(temperature="hot"), "temperature: Input should be a valid"),
    "stop-sequences-string": (
        request(stop_sequences="END"),
        "stop_sequences: Input should be a valid list",
    ),
    "system-number": (request(system=5), "system: Input should be a valid list"),
    "effort-unknown": (
        request(output_config={"effort": "extreme"}),
        "output_config.effort: Input should be 'low'",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_malformed_requests(case: str) -> None:
    body, message = BAD[case]
    with pytest.raises(BadRequest) as e:
        convert.chat_request(parse(MessagesRequest, body))
    assert e.value.message.startswith(message), e.value.message
    assert e.value.status == 400


# ---- answers -----------------------------------------------------------------------------------


def final(
    content: str = "",
    thinking: str | None = None,
    calls: list[dict[str, Any]] | None = None,
    reason: str = "stop",
) -> ChatResponse:
    return ChatResponse(
        model="m",
        created_at="now",
        message=ChatMessageOut(content=content, thinking=thinking, tool_calls=calls),
        done=True,
        done_reason=reason,
        prompt_eval_count=11,
        eval_count=7,
    )


CALL = {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}


def test_message_object() -> None:
    got = convert.message(final("Hello"), msg_id="msg_1", model="m").wire()
    assert got == {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": [{"type": "text", "text": "Hello"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 11, "output_tokens": 7},
    }


def test_message_blocks_in_order_with_thinking_and_tool_use() -> None:
    got = convert.message(
        final("Let me check.", thinking="The user wants weather.", calls=[CALL]),
        msg_id="msg_1",
        model="m",
    ).wire()
    thinking, text, tool = got["content"]
    assert thinking == {
        "type": "thinking",
        "thinking": "The user wants weather.",
        "signature": convert.signature("The user wants weather."),
    }
    assert thinking["signature"] and thinking["signature"] != convert.signature("other")
    assert text == {"type": "text", "text": "Let me check."}
    assert tool["type"] == "tool_use" and tool["name"] == "get_weather"
    assert tool["input"] == {"city": "Paris"} and tool["id"].startswith("toolu_")
    assert got["stop_reason"] == "tool_use"


@pytest.mark.parametrize(
    ("reason", "calls", "stop"),
    [
        ("stop", False, "end_turn"),
        ("length", False, "max_tokens"),
        ("stop", True, "tool_use"),
        ("length", True, "max_tokens"),
        (None, False, "end_turn"),
    ],
)
def test_stop_reason(reason: str | None, calls: bool, stop: str) -> None:
    assert convert.stop_reason(reason, calls) == stop


def test_empty_answer_has_no_blocks() -> None:
    got = convert.message(final(reason="length"), msg_id="msg_1", model="m")
    assert got.content == [] and got.stop_reason == "max_tokens"


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (409, "invalid_request_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (503, "overloaded_error"),
    ],
)
def test_error_shape(status: int, kind: str) -> None:
    assert convert.error_body(status, "boom", "req_1").wire() == {
        "type": "error",
        "error": {"type": kind, "message": "boom"},
        "request_id": "req_1",
    }


def test_ids() -> None:
    ids = {convert.message_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(i.startswith("msg_") and len(i) == 28 and i[4:].isalnum() for i in ids)
    assert convert.tool_use_id().startswith("toolu_")
    assert convert.request_id().startswith("req_")
