"""Pure mapping between Anthropic's Messages API and corral's native chat.

A messages (or count_tokens) request becomes a native :class:`~corral.api.types.ChatRequest`;
a native answer becomes Anthropic's ``message`` object. Facts kept from Ollama's Anthropic layer:

* ``system`` (a string or text blocks) is a first ``system`` message; text blocks of one message
  are joined (corral joins them with a newline, as its OpenAI layer joins text parts);
* ``max_tokens`` is ``num_predict``; ``temperature``, ``top_p``, ``top_k`` and
  ``stop_sequences`` (``stop``) are passed on only when given, so the Modelfile's values stay the
  defaults;
* ``image`` blocks carry base64 data (``url`` and ``file`` sources are refused);
* ``tool_use`` blocks are the assistant's native ``tool_calls``; each ``tool_result`` block is a
  native ``tool`` message, placed before the rest of its user turn; ``thinking`` blocks are the
  message's ``thinking``;
* ``thinking: enabled`` is ``think: true``, ``disabled`` is ``false`` (``budget_tokens`` is
  accepted, not enforced); without it, ``output_config.effort`` sets the think level
  (``xhigh`` is ``high``);
* ``stop_reason`` is ``max_tokens`` for ``length``, ``tool_use`` when calls were made, otherwise
  ``end_turn``; ``usage`` is ``prompt_eval_count`` and ``eval_count``; ids are ``msg_...`` and
  ``toolu_...``; errors are ``{"type": "error", "error": {"type", "message"}}``.

corral's differences: ``tool_choice: none`` leaves the tools out (``any``/``tool`` cannot force a
call and act as ``auto``); a ``tool_result`` must answer a ``tool_use`` of an earlier turn (its
name is the native ``tool_name``) and ``is_error`` marks its text ``Error: ``;
``output_config.format`` (a JSON schema) constrains the answer as the native ``format`` does; a
thinking block's ``signature`` is a digest of its text (not a proof: corral does not check
signatures that come back); ``redacted_thinking`` blocks are dropped.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import string
from collections.abc import Mapping, Sequence
from typing import Any

from corral.anthropic.protocol import (
    Base64Source,
    Conversation,
    ErrorDetail,
    ErrorOut,
    ImageBlock,
    MessageOut,
    MessageParam,
    MessagesRequest,
    RedactedThinkingBlock,
    StopReason,
    TextBlock,
    TextOut,
    ThinkingAdaptive,
    ThinkingBlock,
    ThinkingDisabled,
    ThinkingEnabled,
    ThinkingOut,
    ToolResultBlock,
    ToolUseBlock,
    ToolUseOut,
    Usage,
)
from corral.api.types import ChatRequest, ChatResponse, Message, Tool, ToolCall, ToolCallFunction
from corral.api.types import Metrics as WireMetrics
from corral.errors import BadRequest

_ID_CHARS = string.ascii_letters + string.digits

# Anthropic's error type for each status (others: 4xx invalid_request_error, 5xx api_error)
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}

# ---- ids and errors ----------------------------------------------------------------------------


def random_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ID_CHARS) for _ in range(length))


def message_id() -> str:
    return random_id("msg_")


def tool_use_id() -> str:
    return random_id("toolu_")


def request_id() -> str:
    return random_id("req_")


def error_type(status: int) -> str:
    known = ERROR_TYPES.get(status)
    if known is not None:
        return known
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def error_body(status: int, message: str, rid: str | None = None) -> ErrorOut:
    return ErrorOut(error=ErrorDetail(type=error_type(status), message=message), request_id=rid)


# ---- requests ----------------------------------------------------------------------------------


def _joined(blocks: Sequence[TextBlock]) -> str:
    return "\n".join(b.text for b in blocks)


def image_data(block: ImageBlock, where: str) -> str:
    """The base64 payload of an image block (decoded and checked later, with the others)."""
    source = block.source
    if not isinstance(source, Base64Source):
        raise BadRequest(
            f"{where}.source: image source type '{source.type}' is not supported; "
            "send the image as base64 data"
        )
    if not source.data:
        raise BadRequest(f"{where}.source.data: the image data is empty")
    return source.data


def _tool_result(block: ToolResultBlock, where: str, names: Mapping[str, str]) -> Message:
    name = names.get(block.tool_use_id)
    if name is None:
        raise BadRequest(
            f"{where}.tool_use_id: no tool_use block with id '{block.tool_use_id}' comes "
            "before this tool_result"
        )
    texts = [p.text for p in block.content if isinstance(p, TextBlock)]
    images = [
        image_data(p, f"{where}.content.{k}")
        for k, p in enumerate(block.content)
        if isinstance(p, ImageBlock)
    ]
    text = "\n".join(texts)
    if block.is_error:
        text = f"Error: {text}" if text else "Error"
    return Message(role="tool", content=text, images=images or None, tool_name=name)


def _message(msg: MessageParam, i: int, names: dict[str, str]) -> list[Message]:
    """One Anthropic turn as native messages: its tool results, then the rest of it.
    ``names``: the tool calls of the earlier turns (id to name), to which this turn's are added.
    """
    texts: list[str] = []
    images: list[str] = []
    calls: list[ToolCall] = []
    thinking: list[str] = []
    results: list[Message] = []
    for j, block in enumerate(msg.content):
        where = f"messages.{i}.content.{j}"
        if isinstance(block, TextBlock):
            texts.append(block.text)
        elif isinstance(block, ImageBlock):
            images.append(image_data(block, where))
        elif isinstance(block, ToolUseBlock):
            if msg.role != "assistant":
                raise BadRequest(f"{where}: tool_use blocks belong in assistant messages")
            if not block.name:
                raise BadRequest(f"{where}.name: the tool name is empty")
            calls.append(
                ToolCall(function=ToolCallFunction(name=block.name, arguments=block.input))
            )
            names[block.id] = block.name
        elif isinstance(block, ToolResultBlock):
            if msg.role != "user":
                raise BadRequest(f"{where}: tool_result blocks belong in user messages")
            results.append(_tool_result(block, where, names))
        elif isinstance(block, ThinkingBlock):
            thinking.append(block.thinking)
        else:
            assert isinstance(block, RedactedThinkingBlock)  # nothing to show the model
    text = "\n".join(texts)
    if results and not (text or images or calls or thinking):
        return results
    main = Message(
        role=msg.role,
        content=text,
        images=images or None,
        tool_calls=calls or None,
        thinking="".join(thinking) or None,
    )
    return [*results, main]


def native_messages(req: Conversation) -> list[Message]:
    out: list[Message] = []
    names: dict[str, str] = {}
    if req.system:
        system = _joined(req.system)
        if system:
            out.append(Message(role="system", content=system))
    for i, msg in enumerate(req.messages):
        out += _message(msg, i, names)
    return out


def native_tools(req: Conversation) -> list[Tool] | None:
    if not req.tools or (req.tool_choice is not None and req.tool_choice.type == "none"):
        return None
    tools = []
    for i, t in enumerate(req.tools):
        if t.type not in (None, "custom"):
            raise BadRequest(
                f"tools.{i}.type: tool type '{t.type}' is not supported (only custom tools, "
                "with an input_schema)"
            )
        if t.input_schema is None:
            raise BadRequest(f"tools.{i}.input_schema: Field required")
        function: dict[str, Any] = {"name": t.name, "parameters": t.input_schema}
        if t.description:
            function["description"] = t.description
        tools.append(Tool(type="function", function=function))
    choice = req.tool_choice
    if choice is not None and choice.type == "tool":
        if not choice.name:
            raise BadRequest("tool_choice.name: Field required")
        if choice.name not in {t.name for t in req.tools}:
            raise BadRequest(f"tool_choice.name: no tool is named '{choice.name}'")
    return tools


def native_think(req: Conversation) -> bool | str | None:
    """``thinking`` (or, without it, ``output_config.effort``) as the native ``think``."""
    thinking = req.thinking
    if isinstance(thinking, ThinkingEnabled):
        return True
    if isinstance(thinking, ThinkingDisabled):
        return False
    if isinstance(thinking, ThinkingAdaptive):
        return None  # the model decides: its own default
    if thinking is not None:  # between_tools: thinking is allowed
        return True
    effort = req.output_config.effort if req.output_config else None
    return "high" if effort == "xhigh" else effort


def chat_request(req: Conversation) -> ChatRequest:
    """The native chat request of a messages request (or of a count_tokens request, which has
    no sampling fields)."""
    options: dict[str, Any] = {}
    stream = False
    if isinstance(req, MessagesRequest):
        stream = req.stream
        options["num_predict"] = req.max_tokens
        for key in ("temperature", "top_p", "top_k"):
            value = getattr(req, key)
            if value is not None:
                options[key] = value
        if req.stop_sequences:
            options["stop"] = list(req.stop_sequences)
    if req.num_ctx is not None:
        options["num_ctx"] = req.num_ctx
    fmt = None
    if req.output_config is not None and req.output_config.format is not None:
        fmt = req.output_config.format.schema_
    return ChatRequest(
        model=req.model,
        messages=native_messages(req),
        tools=native_tools(req),
        format=fmt,
        options=options,
        stream=stream,
        keep_alive=req.keep_alive,
        think=native_think(req),
    )


# ---- answers -----------------------------------------------------------------------------------


def stop_reason(done_reason: str | None, tool_calls: bool) -> StopReason:
    if done_reason == "length":
        return "max_tokens"
    return "tool_use" if tool_calls else "end_turn"


def signature(thinking: str) -> str:
    """An opaque value for a thinking block's ``signature``: a digest of its text."""
    digest = hashlib.sha256(thinking.encode()).digest()
    return base64.b64encode(digest).decode()


def usage(metrics: WireMetrics) -> Usage:
    return Usage(input_tokens=metrics.prompt_eval_count or 0, output_tokens=metrics.eval_count or 0)


def tool_use(call: Mapping[str, Any], new_id: str) -> ToolUseOut:
    fn = call.get("function") or {}
    args = fn.get("arguments")
    return ToolUseOut(
        id=new_id,
        name=str(fn.get("name") or ""),
        input=dict(args) if isinstance(args, Mapping) else {},
    )


def message(final: ChatResponse, *, msg_id: str, model: str) -> MessageOut:
    """A whole native answer (all chunks merged) as Anthropic's ``message``."""
    content: list[TextOut | ThinkingOut | ToolUseOut] = []
    thinking = final.message.thinking or ""
    if thinking:
        content.append(ThinkingOut(thinking=thinking, signature=signature(thinking)))
    if final.message.content:
        content.append(TextOut(text=final.message.content))
    calls = final.message.tool_calls or []
    content += [tool_use(c, tool_use_id()) for c in calls]
    return MessageOut(
        id=msg_id,
        model=model,
        content=content,
        stop_reason=stop_reason(final.done_reason, bool(calls)),
        usage=usage(final),
    )
