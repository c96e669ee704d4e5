"""The OpenAI Responses API request (``POST /v1/responses``) and its mapping to a native chat.

A Responses request becomes the dict of a native ``/api/chat`` request, which the native flow
validates and serves; :mod:`corral.openai.responses_stream` turns the native chunks back into the
``response`` object or its stream of events.

As in Ollama, the API is stateless: the whole conversation comes in ``input``, a string (one user
message) or a list of items:

* ``message`` (``type`` may be left out when ``role`` is set) with string content or a list of
  ``input_text``, ``output_text`` and ``input_image`` parts (a base64 ``data:`` URL); the texts of
  one message are concatenated; ``developer`` is read as ``system``;
* ``function_call`` (a call the model made: it joins the preceding assistant message) and
  ``function_call_output`` (a ``tool`` message naming the function of the call it answers);
* ``reasoning``: its ``encrypted_content`` (where corral and Ollama put the plain thinking), or
  else its summary texts, becomes the ``thinking`` of the next assistant message.

``instructions`` is a first system message; ``max_output_tokens`` is ``num_predict``;
``temperature`` defaults to 1.0 (OpenAI's default), ``top_p`` to the model's own; ``tools`` are
flat function declarations (``namespace`` groups expand to ``<namespace>.<name>``);
``text.format`` ``json_schema`` and ``json_object`` constrain the output; ``reasoning.effort`` is
``think``. Bad input is refused with Ollama's texts (``input[1]: unknown input item type: "x"``).

corral's differences: ``previous_response_id``, ``conversation`` and ``background: true`` are
refused with a 400 instead of being silently ignored (the answer would miss the context the
client thinks it sent); ``tool_choice: "none"`` drops the tools; tool types other than
``function`` and ``namespace`` are refused; an ``input_image`` given by ``file_id`` is refused
instead of skipped; ``num_ctx`` and ``keep_alive`` may be sent as extra body fields.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag

from corral.errors import BadRequest
from corral.openai.convert import decode_image_url, native_think
from corral.openai.protocol import OpenAIWire

# ---- request models ------------------------------------------------------------------------------


class InputText(OpenAIWire):
    type: Literal["input_text"]
    text: str


class OutputTextIn(OpenAIWire):
    """Text of an earlier answer, sent back as history."""

    type: Literal["output_text"]
    text: str


class InputImage(OpenAIWire):
    type: Literal["input_image"]
    image_url: str | None = None
    file_id: str | None = None
    detail: str | None = None


class InputFile(OpenAIWire):
    """Accepted by the schema and refused by corral, as by Ollama."""

    type: Literal["input_file"]
    file_data: str | None = None
    file_id: str | None = None
    file_url: str | None = None
    filename: str | None = None


ContentPart = Annotated[
    InputText | OutputTextIn | InputImage | InputFile, Field(discriminator="type")
]
CONTENT_MODELS: dict[str, type[OpenAIWire]] = {
    "input_text": InputText,
    "output_text": OutputTextIn,
    "input_image": InputImage,
    "input_file": InputFile,
}
CONTENT_TYPES = tuple(CONTENT_MODELS)


class MessageIn(OpenAIWire):
    type: Literal["message"] = "message"
    role: str
    content: str | list[ContentPart] = ""


class FunctionCallIn(OpenAIWire):
    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str = ""
    id: str | None = None


class FunctionCallOutputIn(OpenAIWire):
    type: Literal["function_call_output"]
    call_id: str
    output: str | list[ContentPart] = ""


class SummaryTextIn(OpenAIWire):
    type: str = "summary_text"
    text: str


class ReasoningTextIn(OpenAIWire):
    type: str = "reasoning_text"
    text: str


class ReasoningIn(OpenAIWire):
    type: Literal["reasoning"]
    id: str | None = None
    summary: list[SummaryTextIn] = Field(default_factory=list)
    content: list[ReasoningTextIn] | None = None
    encrypted_content: str | None = None


def item_kind(value: Any) -> str | None:
    """The item's type; a bare ``{"role", "content"}`` is a message."""
    if isinstance(value, dict):
        kind = value.get("type")
        if not kind and value.get("role"):
            return "message"
        return kind if isinstance(kind, str) else None
    kind = getattr(value, "type", None)
    return kind if isinstance(kind, str) else None


InputItem = Annotated[
    Annotated[MessageIn, Tag("message")]
    | Annotated[FunctionCallIn, Tag("function_call")]
    | Annotated[FunctionCallOutputIn, Tag("function_call_output")]
    | Annotated[ReasoningIn, Tag("reasoning")],
    Discriminator(item_kind),
]
ITEM_MODELS: dict[str, type[OpenAIWire]] = {
    "message": MessageIn,
    "function_call": FunctionCallIn,
    "function_call_output": FunctionCallOutputIn,
    "reasoning": ReasoningIn,
}
ITEM_TYPES = tuple(ITEM_MODELS)


class ToolIn(OpenAIWire):
    """A function declaration (flat: no ``function`` wrapper), or a ``namespace`` of them."""

    type: str = "function"
    name: str = ""
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None
    tools: list[ToolIn] | None = None


class TextFormatIn(OpenAIWire):
    type: str = "text"
    name: str | None = None
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class TextConfigIn(OpenAIWire):
    format: TextFormatIn | None = None
    verbosity: str | None = None


class ReasoningConfigIn(OpenAIWire):
    effort: str | None = None
    summary: str | None = None
    generate_summary: str | None = None


class ResponsesRequest(OpenAIWire):
    """The body of ``POST /v1/responses``; unknown fields are ignored (and logged)."""

    model: str = ""
    input: str | list[InputItem] | None = None
    instructions: str | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stream: bool = False
    tools: list[ToolIn] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfigIn | None = None
    reasoning: ReasoningConfigIn | None = None
    truncation: str | None = None
    metadata: dict[str, str] | None = None
    # accepted and ignored (the response says ``store: false``)
    store: bool | None = None
    include: list[str] | None = None
    user: str | None = None
    # refused: corral keeps no state
    background: bool | None = None
    previous_response_id: str | None = None
    conversation: str | dict[str, Any] | None = None
    # corral extensions (``extra_body`` in the openai SDK)
    num_ctx: int | None = None
    keep_alive: float | int | str | None = None


# ---- the shape of ``input``, checked before validation for Ollama's error texts ----------------


def _check_parts(parts: Any, where: str, what: str) -> None:
    if isinstance(parts, str) or parts is None:
        return
    if not isinstance(parts, list):
        raise BadRequest(f"{where}{what} must be a string or array")
    for j, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in CONTENT_TYPES:
            shown = kind if isinstance(kind, str) else ""
            raise BadRequest(f"{where}{what}[{j}]: unknown content type: {shown}")


def check_input(body: Any) -> None:
    """Refuse a malformed ``input`` with the texts Ollama uses (``input[2]: ...``)."""
    if not isinstance(body, dict):
        return  # the validation says it
    value = body.get("input")
    if value is None or isinstance(value, str):
        return
    if not isinstance(value, list):
        raise BadRequest("input must be a string or array")
    for i, item in enumerate(value):
        where = f"input[{i}]: "
        if not isinstance(item, dict):
            raise BadRequest(f"{where}input item must be an object")
        kind = item_kind(item)
        if not kind:
            raise BadRequest(f"{where}input item missing required 'type' field")
        if kind not in ITEM_TYPES:
            raise BadRequest(f"{where}unknown input item type: {json.dumps(kind)}")
        if kind == "message":
            _check_parts(item.get("content"), where, "content")
        elif kind == "function_call_output":
            _check_parts(item.get("output"), where, "output")


def refuse_stateful(req: ResponsesRequest) -> None:
    """corral keeps no responses: a request that relies on stored state is refused."""
    if req.previous_response_id:
        raise BadRequest(
            "previous_response_id is not supported: /v1/responses is stateless, "
            'send the whole conversation in "input"'
        )
    if req.conversation:
        raise BadRequest(
            "conversation is not supported: /v1/responses is stateless, "
            'send the whole conversation in "input"'
        )
    if req.background:
        raise BadRequest("background responses are not supported")


# ---- conversion ----------------------------------------------------------------------------------


def _content(parts: str | Sequence[ContentPart]) -> tuple[str, list[str]]:
    """The text (concatenated, as Ollama does) and base64 images of a content list."""
    if isinstance(parts, str):
        return parts, []
    text: list[str] = []
    images: list[str] = []
    for part in parts:
        if isinstance(part, InputText | OutputTextIn):
            text.append(part.text)
        elif isinstance(part, InputImage):
            if not part.image_url:
                raise BadRequest(
                    "input_image needs an image_url (a base64 data: URL); file_id is not supported"
                )
            images.append(decode_image_url(part.image_url))
        else:
            raise BadRequest("file inputs are not currently supported")
    return "".join(text), images


def _thinking(item: ReasoningIn) -> str:
    if item.encrypted_content:
        return item.encrypted_content
    texts = [s.text for s in item.summary] or [c.text for c in item.content or []]
    return "\n".join(texts)


def _arguments(text: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise BadRequest(f"failed to parse function call arguments: {e}") from e
    if not isinstance(value, dict):
        raise BadRequest("failed to parse function call arguments: not a JSON object")
    return value


class _History:
    """Input items -> native messages, merging what the model said in one turn."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.call_ids: list[set[str]] = []  # the call ids of each message's tool calls
        self.names: dict[str, str] = {}  # call id -> function name
        self.thinking = ""  # from a reasoning item, for the next assistant message

    def _take_thinking(self, msg: dict[str, Any]) -> None:
        if self.thinking:
            msg["thinking"] = self.thinking
            self.thinking = ""

    def _last_assistant(self) -> dict[str, Any] | None:
        if self.messages and self.messages[-1]["role"] == "assistant":
            return self.messages[-1]
        return None

    def message(self, item: MessageIn, next_item: object) -> None:
        role = "system" if item.role == "developer" else item.role
        text, images = _content(item.content)
        msg: dict[str, Any] = {"role": role, "content": text}
        if images:
            msg["images"] = images
        if role == "assistant":
            self._take_thinking(msg)
            # a message replayed between a call and its output stays in the call's message, so
            # the tool's answer follows the call it answers
            last = self._last_assistant()
            if (
                last is not None
                and isinstance(next_item, FunctionCallOutputIn)
                and next_item.call_id in self.call_ids[-1]
            ):
                if last["content"] and text:
                    last["content"] += "\n"
                last["content"] += text
                if images:
                    last.setdefault("images", []).extend(images)
                if "thinking" in msg:
                    last["thinking"] = msg["thinking"]
                return
        self._append(msg)

    def function_call(self, item: FunctionCallIn) -> None:
        call = {"function": {"name": item.name, "arguments": _arguments(item.arguments)}}
        self.names[item.call_id] = item.name
        last = self._last_assistant()
        if last is None:
            last = {"role": "assistant", "content": ""}
            self._append(last)
        last.setdefault("tool_calls", []).append(call)
        self.call_ids[-1].add(item.call_id)
        self._take_thinking(last)

    def function_call_output(self, item: FunctionCallOutputIn) -> None:
        text, images = _content(item.output)
        msg: dict[str, Any] = {"role": "tool", "content": text}
        if images:
            msg["images"] = images
        name = self.names.get(item.call_id)
        if name:
            msg["tool_name"] = name
        self._append(msg)

    def _append(self, msg: dict[str, Any]) -> None:
        self.messages.append(msg)
        self.call_ids.append(set())

    def finish(self) -> list[dict[str, Any]]:
        if self.thinking:  # reasoning that no message followed
            self._append({"role": "assistant", "content": "", "thinking": self.thinking})
            self.thinking = ""
        return self.messages


def native_messages(items: Sequence[object]) -> list[dict[str, Any]]:
    """The native chat messages of a list of input items."""
    history = _History()
    for i, item in enumerate(items):
        following = items[i + 1] if i + 1 < len(items) else None
        if isinstance(item, MessageIn):
            history.message(item, following)
        elif isinstance(item, FunctionCallIn):
            history.function_call(item)
        elif isinstance(item, FunctionCallOutputIn):
            history.function_call_output(item)
        elif isinstance(item, ReasoningIn):
            history.thinking = _thinking(item)
    return history.finish()


def native_tools(tools: Sequence[ToolIn], prefix: str = "") -> list[dict[str, Any]]:
    """Flat Responses tool declarations as native ``{"type": "function", "function": ...}``."""
    out: list[dict[str, Any]] = []
    for tool in tools:
        if tool.type == "namespace":
            inner = f"{prefix}{tool.name}." if tool.name else prefix
            out.extend(native_tools(tool.tools or [], inner))
            continue
        if tool.type != "function":
            raise BadRequest(
                f'tool type "{tool.type}" is not supported (only "function" tools are)'
            )
        name = tool.name if tool.name.startswith(prefix) else prefix + tool.name
        function: dict[str, Any] = {
            "name": name,
            "description": tool.description or "",
            "parameters": tool.parameters or {"type": "object", "properties": {}},
        }
        out.append({"type": "function", "function": function})
    return out


def native_format(text: TextConfigIn | None) -> str | dict[str, Any] | None:
    fmt = text.format if text is not None else None
    if fmt is None:
        return None
    kind = fmt.type.strip().lower()
    if kind == "json_object":
        return "json"
    if kind == "json_schema" and fmt.schema_ is not None:
        return fmt.schema_
    return None


def chat_request(req: ResponsesRequest) -> dict[str, Any]:
    """The native ``/api/chat`` request for a Responses request."""
    refuse_stateful(req)
    messages: list[dict[str, Any]] = []
    if req.instructions:
        messages.append({"role": "system", "content": req.instructions})
    if isinstance(req.input, str):
        if req.input:
            messages.append({"role": "user", "content": req.input})
    elif req.input:
        messages.extend(native_messages(req.input))
    options: dict[str, Any] = {"temperature": 1.0 if req.temperature is None else req.temperature}
    if req.top_p is not None:
        options["top_p"] = req.top_p
    if req.max_output_tokens is not None:
        options["num_predict"] = req.max_output_tokens
    if req.num_ctx is not None:
        options["num_ctx"] = req.num_ctx
    native: dict[str, Any] = {
        "model": req.model,
        "messages": messages,
        "options": options,
        "stream": req.stream,
    }
    if req.tools and req.tool_choice != "none":
        tools = native_tools(req.tools)
        if tools:
            native["tools"] = tools
    fmt = native_format(req.text)
    if fmt is not None:
        native["format"] = fmt
    think = native_think(req.reasoning.effort if req.reasoning else None)
    if think is not None:
        native["think"] = think
    if req.keep_alive is not None:
        native["keep_alive"] = req.keep_alive
    return native
