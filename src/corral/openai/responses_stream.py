"""Native chat chunks as OpenAI Responses API events, and the ``response`` they end with.

:class:`ResponseStream` turns native ``/api/chat`` chunks into the Responses event sequence; a
``stream: false`` request gets the ``response`` of the same events' last one, so both forms hold
the same items. The sequence, each event with the next ``sequence_number`` (from 0):

* ``response.created`` and ``response.in_progress`` (status ``in_progress``, no output yet);
* per output item, in the order the model produced them: ``response.output_item.added``, then

  - a ``reasoning`` item (the native ``message.thinking``):
    ``response.reasoning_summary_part.added``, ``response.reasoning_summary_text.delta``...,
    ``response.reasoning_summary_text.done``, ``response.reasoning_summary_part.done``;
  - a ``message`` item (the content): ``response.content_part.added``,
    ``response.output_text.delta``..., ``response.output_text.done``,
    ``response.content_part.done``;
  - a ``function_call`` item (one per native tool call, whole):
    ``response.function_call_arguments.delta`` and ``.done``;

  and ``response.output_item.done``;
* ``response.completed`` with the whole response and its ``usage``; or, when the generation
  stopped at ``max_output_tokens`` (or the context's end), ``response.incomplete`` with status
  ``incomplete`` and ``incomplete_details.reason`` ``max_output_tokens``, as OpenAI answers
  (Ollama reports such a response as completed);
* an error after the stream started: an ``error`` event, then ``response.failed``.

Facts kept from Ollama: a reasoning item's summary text is the model's whole thinking, also sent
as ``encrypted_content`` (plain text), so a client that sends the item back restores the
thinking; ``usage`` counts ``prompt_eval_count`` and ``eval_count`` (cached and reasoning
details are 0); a response without text or calls still holds one empty message. Unlike Ollama,
text and function calls of one answer are both kept, each in its own item.
"""

from __future__ import annotations

import json
import secrets
import string
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

from corral.api.types import ChatResponse
from corral.openai.responses import ResponsesRequest, ToolIn
from corral.openai.responses_out import (
    ArgumentsDeltaEvent,
    ArgumentsDoneEvent,
    ContentPartEvent,
    ErrorEvent,
    FunctionCallItem,
    IncompleteDetails,
    LifecycleEvent,
    MessageItem,
    OutputItemEvent,
    OutputText,
    OutputTextDeltaEvent,
    OutputTextDoneEvent,
    ReasoningConfig,
    ReasoningItem,
    Response,
    ResponseError,
    ResponseUsage,
    Status,
    StreamEvent,
    SummaryPartEvent,
    SummaryText,
    SummaryTextDeltaEvent,
    SummaryTextDoneEvent,
    TextConfig,
    TextFormat,
)

Item = MessageItem | FunctionCallItem | ReasoningItem
Open = Literal["reasoning", "message"]
_CALL_CHARS = string.ascii_lowercase + string.digits


def new_id(prefix: str) -> str:
    """A response or item id: ``resp_``, ``msg_``, ``rs_`` or ``fc_`` and 24 hex digits."""
    return prefix + secrets.token_hex(12)


def call_id() -> str:
    """A tool call id, shaped as Ollama makes them: ``call_`` and 8 characters."""
    return "call_" + "".join(secrets.choice(_CALL_CHARS) for _ in range(8))


def _tool_echo(tool: ToolIn) -> dict[str, Any]:
    """A declared tool as OpenAI echoes it (every field present, ``null`` when not given)."""
    if tool.type == "namespace":
        members = [_tool_echo(t) for t in tool.tools or []]
        return {
            "type": "namespace",
            "name": tool.name,
            "description": tool.description or "",
            "tools": members,
        }
    return {
        "type": tool.type,
        "name": tool.name,
        "description": tool.description,
        "parameters": tool.parameters,
        "strict": tool.strict,
    }


def _echo(req: ResponsesRequest) -> dict[str, Any]:
    """The request's settings, as every ``response`` object repeats them."""
    echo: dict[str, Any] = {
        "instructions": req.instructions or None,
        "tools": [_tool_echo(t) for t in req.tools or []],
        "tool_choice": req.tool_choice or "auto",
        "truncation": req.truncation or "disabled",
        "temperature": 1.0 if req.temperature is None else req.temperature,
        "top_p": 1.0 if req.top_p is None else req.top_p,
        "max_output_tokens": req.max_output_tokens,
        "metadata": dict(req.metadata or {}),
    }
    if req.parallel_tool_calls is not None:
        echo["parallel_tool_calls"] = req.parallel_tool_calls
    fmt = req.text.format if req.text is not None else None
    if fmt is not None:
        echo["text"] = TextConfig(
            format=TextFormat(
                type=fmt.type,
                name=fmt.name,
                description=fmt.description,
                schema_=fmt.schema_,
                strict=fmt.strict,
            )
        )
    r = req.reasoning
    if r is not None and (r.effort or r.summary):
        echo["reasoning"] = ReasoningConfig(effort=r.effort, summary=r.summary)
    return echo


class ResponseStream:
    """Turns one request's native chat chunks into Responses events (see the module doc)."""

    def __init__(
        self,
        req: ResponsesRequest,
        *,
        rid: str | None = None,
        created: int | None = None,
        ids: Callable[[str], str] = new_id,
        call_ids: Callable[[], str] = call_id,
    ) -> None:
        self.rid = rid or ids("resp_")
        self.created = int(time.time()) if created is None else created
        self.model = req.model
        self.final: Response | None = None  # set by the last chunk
        self._echo = _echo(req)
        self._ids = ids
        self._call_ids = call_ids
        self._seq = 0
        self._started = False
        self._items: list[Item] = []  # the finished items, in output order
        self._open: Open | None = None  # the reasoning or message item being streamed
        self._open_id = ""
        self._open_text = ""

    def _next(self) -> int:
        n = self._seq
        self._seq += 1
        return n

    def response(self, status: str, **fields: Any) -> Response:
        """The response object as it stands (``output``: the items finished so far)."""
        return Response.model_validate(
            {
                "id": self.rid,
                "created_at": self.created,
                "status": status,
                "model": self.model,
                "output": list(self._items),
                **self._echo,
                **fields,
            }
        )

    def _lifecycle(self, kind: Any, resp: Response) -> LifecycleEvent:
        return LifecycleEvent(type=kind, sequence_number=self._next(), response=resp)

    def _item_event(self, kind: Any, item: Item, index: int) -> OutputItemEvent:
        return OutputItemEvent(
            type=kind, sequence_number=self._next(), output_index=index, item=item
        )

    def _start(self) -> list[StreamEvent]:
        if self._started:
            return []
        self._started = True
        snapshot = self.response("in_progress")
        return [
            self._lifecycle("response.created", snapshot),
            self._lifecycle("response.in_progress", snapshot),
        ]

    # ---- items

    def _begin(self, kind: Open) -> list[StreamEvent]:
        self._open, self._open_text = kind, ""
        index = len(self._items)
        if kind == "reasoning":
            self._open_id = item_id = self._ids("rs_")
            reasoning = ReasoningItem(id=item_id, summary=[])
            return [
                self._item_event("response.output_item.added", reasoning, index),
                SummaryPartEvent(
                    type="response.reasoning_summary_part.added",
                    sequence_number=self._next(),
                    item_id=item_id,
                    output_index=index,
                    summary_index=0,
                    part=SummaryText(text=""),
                ),
            ]
        self._open_id = item_id = self._ids("msg_")
        message = MessageItem(id=item_id, status="in_progress", content=[])
        return [
            self._item_event("response.output_item.added", message, index),
            ContentPartEvent(
                type="response.content_part.added",
                sequence_number=self._next(),
                item_id=item_id,
                output_index=index,
                content_index=0,
                part=OutputText(text=""),
            ),
        ]

    def _delta(self, kind: Open, text: str) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        if self._open != kind:
            out += self._end()
            out += self._begin(kind)
        self._open_text += text
        item_id, index = self._open_id, len(self._items)
        if kind == "reasoning":
            out.append(
                SummaryTextDeltaEvent(
                    sequence_number=self._next(),
                    item_id=item_id,
                    output_index=index,
                    summary_index=0,
                    delta=text,
                )
            )
        else:
            out.append(
                OutputTextDeltaEvent(
                    sequence_number=self._next(),
                    item_id=item_id,
                    output_index=index,
                    content_index=0,
                    delta=text,
                )
            )
        return out

    def _end(self, status: Status = "completed") -> list[StreamEvent]:
        """Close the reasoning or message item being streamed, if any."""
        kind, item_id, text, index = self._open, self._open_id, self._open_text, len(self._items)
        if kind is None:
            return []
        self._open = None
        out: list[StreamEvent] = []
        item: Item
        if kind == "reasoning":
            summary = SummaryText(text=text)
            item = ReasoningItem(id=item_id, summary=[summary], encrypted_content=text)
            out.append(
                SummaryTextDoneEvent(
                    sequence_number=self._next(),
                    item_id=item_id,
                    output_index=index,
                    summary_index=0,
                    text=text,
                )
            )
            out.append(
                SummaryPartEvent(
                    type="response.reasoning_summary_part.done",
                    sequence_number=self._next(),
                    item_id=item_id,
                    output_index=index,
                    summary_index=0,
                    part=summary,
                )
            )
        else:
            part = OutputText(text=text)
            item = MessageItem(id=item_id, status=status, content=[part])
            out.append(
                OutputTextDoneEvent(
                    sequence_number=self._next(),
                    item_id=item_id,
                    output_index=index,
                    content_index=0,
                    text=text,
                )
            )
            out.append(
                ContentPartEvent(
                    type="response.content_part.done",
                    sequence_number=self._next(),
                    item_id=item_id,
                    output_index=index,
                    content_index=0,
                    part=part,
                )
            )
        out.append(self._item_event("response.output_item.done", item, index))
        self._items.append(item)
        return out

    def _call(self, call: dict[str, Any]) -> list[StreamEvent]:
        fn = call.get("function") or {}
        arguments = json.dumps(fn.get("arguments") or {}, ensure_ascii=False)
        cid = str(call.get("id") or self._call_ids())
        item_id, index, name = self._ids("fc_"), len(self._items), str(fn.get("name") or "")
        added = FunctionCallItem(
            id=item_id, status="in_progress", call_id=cid, name=name, arguments=""
        )
        done = added.model_copy(update={"status": "completed", "arguments": arguments})
        out: list[StreamEvent] = [
            self._item_event("response.output_item.added", added, index),
            ArgumentsDeltaEvent(
                sequence_number=self._next(), item_id=item_id, output_index=index, delta=arguments
            ),
            ArgumentsDoneEvent(
                sequence_number=self._next(),
                item_id=item_id,
                output_index=index,
                arguments=arguments,
            ),
            self._item_event("response.output_item.done", done, index),
        ]
        self._items.append(done)
        return out

    # ---- the public side

    def feed(self, chunk: ChatResponse) -> list[StreamEvent]:
        """The events of one native chunk (the first one also opens the response)."""
        out = self._start()
        msg = chunk.message
        if msg.thinking:
            out += self._delta("reasoning", msg.thinking)
        if msg.content:
            out += self._delta("message", msg.content)
        for call in msg.tool_calls or []:
            out += self._end()
            out += self._call(call)
        if chunk.done:
            out += self._finish(chunk)
        return out

    def _finish(self, chunk: ChatResponse) -> list[StreamEvent]:
        incomplete = chunk.done_reason == "length"
        status: Status = "incomplete" if incomplete else "completed"
        out = self._end(status)
        if not self._items:  # nothing said: one empty message, as Ollama answers
            out += self._begin("message")
            out += self._end(status)
        prompt, completion = chunk.prompt_eval_count or 0, chunk.eval_count or 0
        usage = ResponseUsage(
            input_tokens=prompt, output_tokens=completion, total_tokens=prompt + completion
        )
        fields: dict[str, Any] = {"usage": usage, "completed_at": int(time.time())}
        if incomplete:
            fields["incomplete_details"] = IncompleteDetails(reason="max_output_tokens")
        self.final = self.response(status, **fields)
        kind = "response.incomplete" if incomplete else "response.completed"
        out.append(self._lifecycle(kind, self.final))
        return out

    def fail(self, status: int, message: str) -> list[StreamEvent]:
        """The events that end a stream whose generation failed after it started."""
        out = self._start()
        code = "server_error" if status >= 500 else "invalid_request_error"
        out.append(ErrorEvent(sequence_number=self._next(), code=code, message=message))
        failed = self.response("failed", error=ResponseError(code=code, message=message))
        out.append(self._lifecycle("response.failed", failed))
        return out


def build_response(req: ResponsesRequest, chunks: Sequence[ChatResponse], **kw: Any) -> Response:
    """The ``response`` of a whole native chat stream (its last chunk is done)."""
    stream = ResponseStream(req, **kw)
    for chunk in chunks:
        stream.feed(chunk)
    if stream.final is None:
        raise ValueError("the native stream did not finish")
    return stream.final


def sse_event(event: StreamEvent) -> bytes:
    """One server-sent event: ``event: <type>`` and its JSON ``data``."""
    data = json.dumps(event.wire(), ensure_ascii=False, separators=(",", ":"))
    return f"event: {event.type}\ndata: {data}\n\n".encode()
