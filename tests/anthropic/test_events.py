"""The stream state machine (:mod:`corral.anthropic.events`): native chat chunks in, Anthropic's
event sequence out, checked event by event; and the SDK's own accumulator, fed those events,
rebuilds the message the unstreamed answer gives."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from anthropic._models import construct_type
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import RawMessageStreamEvent

from corral.anthropic import convert
from corral.anthropic.events import MessageStream, error_event, sse
from corral.api.types import ChatMessageOut, ChatResponse
from corral.service.native import merge_chat

CALL = {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}


def chunk(
    content: str = "",
    thinking: str | None = None,
    calls: list[dict[str, Any]] | None = None,
    *,
    done: str | None = None,
) -> ChatResponse:
    extra: dict[str, Any] = {}
    if done is not None:
        extra = {"done": True, "done_reason": done, "prompt_eval_count": 9, "eval_count": 4}
    message = ChatMessageOut(content=content, thinking=thinking, tool_calls=calls)
    return ChatResponse(model="m", created_at="now", message=message, **extra)


def ids() -> Any:
    n = iter(range(1, 100))
    return lambda: f"toolu_{next(n)}"


def sdk_event(event: dict[str, Any]) -> RawMessageStreamEvent:
    """An event as the SDK parses it off the wire."""
    return cast(
        RawMessageStreamEvent, construct_type(type_=cast(Any, RawMessageStreamEvent), value=event)
    )


def run(chunks: list[ChatResponse]) -> list[dict[str, Any]]:
    stream = MessageStream("msg_1", "m", new_tool_id=ids())
    return [e.wire() for c in chunks for e in stream.feed(c)]


def brief(events: list[dict[str, Any]]) -> list[str]:
    """Each event as ``type[:index][:delta or block type]``."""
    out = []
    for e in events:
        name = e["type"]
        if "index" in e:
            name += f":{e['index']}"
        if "delta" in e and "type" in e["delta"]:
            name += ":" + e["delta"]["type"]
        if "content_block" in e:
            name += ":" + e["content_block"]["type"]
        out.append(name)
    return out


START = ["message_start", "ping"]
END = ["message_delta", "message_stop"]

SEQUENCES: dict[str, tuple[list[ChatResponse], list[str]]] = {
    "text": (
        [chunk("Hel"), chunk("lo"), chunk(done="stop")],
        [
            *START,
            "content_block_start:0:text",
            "content_block_delta:0:text_delta",
            "content_block_delta:0:text_delta",
            "content_block_stop:0",
            *END,
        ],
    ),
    "text-in-the-last-chunk": (
        [chunk("Hi", done="stop")],
        [
            *START,
            "content_block_start:0:text",
            "content_block_delta:0:text_delta",
            "content_block_stop:0",
            *END,
        ],
    ),
    "nothing": ([chunk(done="length")], [*START, *END]),
    "thinking-then-text": (
        [chunk(thinking="Hmm"), chunk(thinking=", sure"), chunk("Yes"), chunk(done="stop")],
        [
            *START,
            "content_block_start:0:thinking",
            "content_block_delta:0:thinking_delta",
            "content_block_delta:0:thinking_delta",
            "content_block_delta:0:signature_delta",
            "content_block_stop:0",
            "content_block_start:1:text",
            "content_block_delta:1:text_delta",
            "content_block_stop:1",
            *END,
        ],
    ),
    "thinking-and-text-in-one-chunk": (
        [chunk("Yes", thinking="Hmm"), chunk(done="stop")],
        [
            *START,
            "content_block_start:0:thinking",
            "content_block_delta:0:thinking_delta",
            "content_block_delta:0:signature_delta",
            "content_block_stop:0",
            "content_block_start:1:text",
            "content_block_delta:1:text_delta",
            "content_block_stop:1",
            *END,
        ],
    ),
    "thinking-only": (
        [chunk(thinking="Hmm"), chunk(done="length")],
        [
            *START,
            "content_block_start:0:thinking",
            "content_block_delta:0:thinking_delta",
            "content_block_delta:0:signature_delta",
            "content_block_stop:0",
            *END,
        ],
    ),
    "text-then-two-tool-calls": (
        [chunk("Checking."), chunk(calls=[CALL, CALL]), chunk(done="stop")],
        [
            *START,
            "content_block_start:0:text",
            "content_block_delta:0:text_delta",
            "content_block_stop:0",
            "content_block_start:1:tool_use",
            "content_block_delta:1:input_json_delta",
            "content_block_stop:1",
            "content_block_start:2:tool_use",
            "content_block_delta:2:input_json_delta",
            "content_block_stop:2",
            *END,
        ],
    ),
    "thinking-then-tool-call-then-text": (
        [chunk(thinking="plan"), chunk(calls=[CALL]), chunk("done"), chunk(done="stop")],
        [
            *START,
            "content_block_start:0:thinking",
            "content_block_delta:0:thinking_delta",
            "content_block_delta:0:signature_delta",
            "content_block_stop:0",
            "content_block_start:1:tool_use",
            "content_block_delta:1:input_json_delta",
            "content_block_stop:1",
            "content_block_start:2:text",
            "content_block_delta:2:text_delta",
            "content_block_stop:2",
            *END,
        ],
    ),
}


@pytest.mark.parametrize("case", list(SEQUENCES))
def test_event_sequence(case: str) -> None:
    chunks, expected = SEQUENCES[case]
    assert brief(run(chunks)) == expected


def test_event_contents() -> None:
    events = run([chunk(thinking="Hmm"), chunk("Yes"), chunk(calls=[CALL]), chunk(done="stop")])
    start = events[0]["message"]
    assert start == {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 0, "output_tokens": 0},
    }
    assert events[2]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    assert events[3]["delta"] == {"type": "thinking_delta", "thinking": "Hmm"}
    assert events[4]["delta"] == {"type": "signature_delta", "signature": convert.signature("Hmm")}
    assert events[6]["content_block"] == {"type": "text", "text": ""}
    assert events[7]["delta"] == {"type": "text_delta", "text": "Yes"}
    tool_start, tool_delta = events[9], events[10]
    assert tool_start["content_block"] == {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "get_weather",
        "input": {},
    }
    assert json.loads(tool_delta["delta"]["partial_json"]) == {"city": "Paris"}
    assert events[-2] == {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {"input_tokens": 9, "output_tokens": 4},
    }
    assert events[-1] == {"type": "message_stop"}


@pytest.mark.parametrize(("reason", "stop"), [("stop", "end_turn"), ("length", "max_tokens")])
def test_stop_reason_of_the_stream(reason: str, stop: str) -> None:
    events = run([chunk("x"), chunk(done=reason)])
    assert events[-2]["delta"]["stop_reason"] == stop


def test_chunks_after_the_end_make_no_second_end() -> None:
    stream = MessageStream("msg_1", "m")
    stream.feed(chunk("x", done="stop"))
    assert stream.feed(chunk(done="stop")) == []


def test_sse_framing() -> None:
    (start, ping) = MessageStream("msg_1", "m").feed(chunk())
    assert sse(ping) == b'event: ping\ndata: {"type":"ping"}\n\n'
    name, data = sse(start).decode().removesuffix("\n\n").split("\n")
    assert name == "event: message_start"
    assert json.loads(data.removeprefix("data: "))["message"]["id"] == "msg_1"
    assert error_event(503, "busy").wire() == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "busy"},
    }


@pytest.mark.parametrize("case", list(SEQUENCES))
def test_the_sdk_rebuilds_the_unstreamed_message(case: str) -> None:
    """The official SDK's accumulator over the events gives the blocks the unstreamed answer has
    (the order of an unstreamed answer is thinking, text, tool calls; tool ids differ)."""
    chunks, _ = SEQUENCES[case]
    snapshot: Any = None
    buffers: dict[int, bytes] = {}
    for event in run(chunks):
        snapshot = accumulate_event(
            event=sdk_event(event), current_snapshot=snapshot, json_bufs=buffers
        )
    whole = convert.message(merge_chat(chunks), msg_id="msg_1", model="m").wire()
    streamed = snapshot.to_dict()

    def normal(blocks: list[dict[str, Any]]) -> list[tuple[str, Any]]:
        out = []
        for b in blocks:
            body = {k: v for k, v in b.items() if k not in ("id", "type", "citations")}
            out.append((b["type"], body))
        return sorted(out, key=lambda x: ("thinking", "text", "tool_use").index(x[0]))

    merged: list[dict[str, Any]] = []
    for b in streamed["content"]:  # one text block per run of text: join them as the answer does
        if merged and b["type"] == merged[-1]["type"] == "text":
            merged[-1]["text"] += b["text"]
        else:
            merged.append(dict(b))
    assert normal(merged) == normal(whole["content"])
    assert streamed["stop_reason"] == whole["stop_reason"]
    assert streamed["usage"]["input_tokens"] == whole["usage"]["input_tokens"]
    assert streamed["usage"]["output_tokens"] == whole["usage"]["output_tokens"]
