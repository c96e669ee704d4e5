"""The stream of a messages request: native chat chunks in, Anthropic's events out.

The first chunk opens the message (``message_start``, then a ``ping``). Thinking and text each
stream into a content block of their own (``content_block_start``, ``thinking_delta`` or
``text_delta`` deltas, ``content_block_stop``); a new block opens whenever the kind of output
changes, and a thinking block is closed with a ``signature_delta``. Each tool call is a
``tool_use`` block of its own whose input arrives as one ``input_json_delta``. The last chunk
closes the open block and the message: ``message_delta`` (stop reason and usage), then
``message_stop``. Indexes count the blocks from 0, in the order they were opened.

``message_start`` reports ``input_tokens: 0``: the prompt's count is known when the generation
ends, and ``message_delta`` carries it (clients take the later value). An error after the
stream has started is an ``error`` event (:func:`error_event`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal

from corral.anthropic import convert
from corral.anthropic.protocol import (
    ContentBlockDelta,
    ContentBlockStart,
    ContentBlockStop,
    ErrorDetail,
    ErrorEvent,
    InputJsonDelta,
    MessageDelta,
    MessageDeltaBody,
    MessageOut,
    MessageStart,
    MessageStop,
    Ping,
    SignatureDelta,
    StreamEvent,
    TextDelta,
    TextOut,
    ThinkingDelta,
    ThinkingOut,
    ToolUseOut,
    Usage,
)
from corral.api.types import ChatResponse

Kind = Literal["text", "thinking"]


def sse(event: StreamEvent) -> bytes:
    """One server-sent event: its type as the event name, its JSON as the data."""
    data = json.dumps(event.wire(), ensure_ascii=False, separators=(",", ":"))
    return f"event: {event.type}\ndata: {data}\n\n".encode()


def error_event(status: int, message: str) -> ErrorEvent:
    return ErrorEvent(error=ErrorDetail(type=convert.error_type(status), message=message))


class MessageStream:
    """Feed a request's native chunks in order; each call gives the events they make."""

    def __init__(
        self, msg_id: str, model: str, new_tool_id: Callable[[], str] = convert.tool_use_id
    ) -> None:
        self.msg_id = msg_id
        self.model = model
        self.new_tool_id = new_tool_id
        self.started = False
        self.finished = False
        self.index = -1  # the last block opened
        self.open: Kind | None = None
        self.thinking: list[str] = []  # the open thinking block's text, for its signature
        self.tool_calls = 0

    def feed(self, chunk: ChatResponse) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        if not self.started:
            self.started = True
            out += self._start()
        msg = chunk.message
        if msg.thinking:
            out += self._text("thinking", msg.thinking)
        if msg.content:
            out += self._text("text", msg.content)
        for call in msg.tool_calls or []:
            out += self._tool(call)
        if chunk.done:
            out += self._finish(chunk)
        return out

    def _start(self) -> list[StreamEvent]:
        message = MessageOut(
            id=self.msg_id,
            model=self.model,
            content=[],
            stop_reason=None,
            usage=Usage(input_tokens=0, output_tokens=0),
        )
        return [MessageStart(message=message), Ping()]

    def _close(self) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        if self.open == "thinking":
            sig = convert.signature("".join(self.thinking))
            out.append(ContentBlockDelta(index=self.index, delta=SignatureDelta(signature=sig)))
            self.thinking = []
        if self.open is not None:
            out.append(ContentBlockStop(index=self.index))
        self.open = None
        return out

    def _text(self, kind: Kind, text: str) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        if self.open != kind:
            out += self._close()
            self.index += 1
            self.open = kind
            block = TextOut(text="") if kind == "text" else ThinkingOut(thinking="", signature="")
            out.append(ContentBlockStart(index=self.index, content_block=block))
        if kind == "thinking":
            self.thinking.append(text)
            delta: TextDelta | ThinkingDelta = ThinkingDelta(thinking=text)
        else:
            delta = TextDelta(text=text)
        out.append(ContentBlockDelta(index=self.index, delta=delta))
        return out

    def _tool(self, call: dict[str, Any]) -> list[StreamEvent]:
        out = self._close()
        self.index += 1
        self.tool_calls += 1
        block = convert.tool_use(call, self.new_tool_id())
        arguments = json.dumps(block.input, ensure_ascii=False, separators=(",", ":"))
        start = ToolUseOut(id=block.id, name=block.name, input={})
        out.append(ContentBlockStart(index=self.index, content_block=start))
        out.append(
            ContentBlockDelta(index=self.index, delta=InputJsonDelta(partial_json=arguments))
        )
        out.append(ContentBlockStop(index=self.index))
        return out

    def _finish(self, chunk: ChatResponse) -> list[StreamEvent]:
        if self.finished:
            return []
        self.finished = True
        out = self._close()
        reason = convert.stop_reason(chunk.done_reason, self.tool_calls > 0)
        out.append(
            MessageDelta(delta=MessageDeltaBody(stop_reason=reason), usage=convert.usage(chunk))
        )
        out.append(MessageStop())
        return out
