"""Pydantic wire models of Anthropic's Messages API as corral serves it.

Requests are validated as Anthropic types them: content blocks are a union discriminated by
``type`` (``text``, ``image``, ``tool_use``, ``tool_result``, ``thinking``,
``redacted_thinking``); a string ``content`` or ``system`` is shorthand for one text block; values
are strict (a string is not a number). A malformed request is a 400 whose message names the
field the way Anthropic's own errors do (``max_tokens: Field required``,
``messages.0.content.1.image.source.base64.data: Field required``). Unknown top-level fields are
kept in ``model_extra`` for the route to log and ignore; unknown fields inside a block (such as
``cache_control`` or ``citations``) are ignored.

The answer models (:class:`MessageOut`, the stream events, :class:`CountTokensOut`,
:class:`ErrorOut`) are what corral sends; they also describe the routes in the OpenAPI document.

``num_ctx`` and ``keep_alive`` are corral extensions (``extra_body`` in the ``anthropic`` SDK),
as on the OpenAI-compatible routes.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from corral.errors import BadRequest

# ---- requests ----------------------------------------------------------------------------------


class Block(BaseModel):
    """A part of a request: strict values, unknown fields ignored."""

    model_config = ConfigDict(strict=True, extra="ignore", populate_by_name=True)


def _as_blocks(value: Any) -> Any:
    """A string ``content`` (or ``system``) is one text block."""
    if isinstance(value, str):
        return [{"type": "text", "text": value}]
    return value


class TextBlock(Block):
    type: Literal["text"]
    text: str


class Base64Source(Block):
    type: Literal["base64"]
    media_type: Literal["image/jpeg", "image/png", "image/gif", "image/webp"]
    data: str


class UrlSource(Block):
    type: Literal["url"]
    url: str


class FileSource(Block):
    type: Literal["file"]
    file_id: str


ImageSource = Annotated[Base64Source | UrlSource | FileSource, Field(discriminator="type")]


class ImageBlock(Block):
    type: Literal["image"]
    source: ImageSource


ToolResultPart = Annotated[TextBlock | ImageBlock, Field(discriminator="type")]


class ToolUseBlock(Block):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]


class ToolResultBlock(Block):
    type: Literal["tool_result"]
    tool_use_id: str
    content: Annotated[
        list[ToolResultPart],
        BeforeValidator(_as_blocks, json_schema_input_type=str | list[ToolResultPart]),
    ] = Field(default_factory=list)
    is_error: bool | None = None


class ThinkingBlock(Block):
    type: Literal["thinking"]
    thinking: str
    signature: str | None = None


class RedactedThinkingBlock(Block):
    type: Literal["redacted_thinking"]
    data: str


InputBlock = Annotated[
    TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock | RedactedThinkingBlock,
    Field(discriminator="type"),
]


class MessageParam(Block):
    role: Literal["user", "assistant"]
    content: Annotated[
        list[InputBlock],
        BeforeValidator(_as_blocks, json_schema_input_type=str | list[InputBlock]),
    ]


class ToolParam(Block):
    """A tool the model may call: ``custom`` (the default type) with an ``input_schema``;
    Anthropic's server tools (``web_search_...``, ``bash_...``) are refused by the conversion."""

    name: str
    type: str | None = None
    description: str | None = None
    input_schema: dict[str, Any] | None = None


class ToolChoice(Block):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class ThinkingEnabled(Block):
    type: Literal["enabled"]
    budget_tokens: int
    display: str | None = None


class ThinkingDisabled(Block):
    type: Literal["disabled"]


class ThinkingAdaptive(Block):
    type: Literal["adaptive"]
    display: str | None = None


class ThinkingBetweenTools(Block):
    type: Literal["between_tools"]


ThinkingConfig = Annotated[
    ThinkingEnabled | ThinkingDisabled | ThinkingAdaptive | ThinkingBetweenTools,
    Field(discriminator="type"),
]


class JsonOutputFormat(Block):
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema")


class OutputConfig(Block):
    effort: Literal["low", "medium", "high", "xhigh", "max"] | None = None
    format: JsonOutputFormat | None = None


class Conversation(Block):
    """What a messages request and a token count share: the model and the prompt."""

    model_config = ConfigDict(strict=True, extra="allow", populate_by_name=True)

    model: str
    messages: Annotated[list[MessageParam], Field(min_length=1)]
    system: (
        Annotated[
            list[TextBlock],
            BeforeValidator(_as_blocks, json_schema_input_type=str | list[TextBlock]),
        ]
        | None
    ) = None
    tools: list[ToolParam] | None = None
    tool_choice: ToolChoice | None = None
    thinking: ThinkingConfig | None = None
    output_config: OutputConfig | None = None
    # corral extensions
    num_ctx: int | None = None
    keep_alive: float | int | str | None = None

    def unknown_fields(self) -> list[str]:
        """Names of the top-level fields this model does not know (ignored, worth a log line)."""
        return sorted(self.model_extra or {})


class MessagesRequest(Conversation):
    max_tokens: Annotated[int, Field(ge=1)]
    stream: bool = False
    stop_sequences: list[str] | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    metadata: dict[str, Any] | None = None
    service_tier: str | None = None


class CountTokensRequest(Conversation):
    pass


def parse(model: type[Conversation], value: Any) -> Any:
    """``value`` (decoded JSON) validated as ``model``; a 400 in Anthropic's words if it is not."""
    if not isinstance(value, dict):
        raise BadRequest("request body must be a JSON object")
    try:
        return model.model_validate(value)
    except ValidationError as e:
        raise BadRequest(describe(e)) from e


def describe(e: ValidationError) -> str:
    """The first problem, as ``dotted.location: message``."""
    err = e.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err.get("loc", ()))
    msg = str(err.get("msg", "invalid value"))
    return f"{loc}: {msg}" if loc else msg


# ---- answers -----------------------------------------------------------------------------------


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


class TextOut(Out):
    type: Literal["text"] = "text"
    text: str


class ThinkingOut(Out):
    type: Literal["thinking"] = "thinking"
    thinking: str
    signature: str


class ToolUseOut(Out):
    type: Literal["tool_use"] = "tool_use"
    id: str
    name: str
    input: dict[str, Any]


ContentOut = Annotated[TextOut | ThinkingOut | ToolUseOut, Field(discriminator="type")]

StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use"]


class Usage(Out):
    input_tokens: int
    output_tokens: int


class MessageOut(Out):
    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    model: str
    content: list[ContentOut]
    stop_reason: StopReason | None
    stop_sequence: str | None = None
    usage: Usage


class CountTokensOut(Out):
    input_tokens: int


class ErrorDetail(Out):
    type: str
    message: str


class ErrorOut(Out):
    type: Literal["error"] = "error"
    error: ErrorDetail
    request_id: str | None = None


# ---- stream events -----------------------------------------------------------------------------


class TextDelta(Out):
    type: Literal["text_delta"] = "text_delta"
    text: str


class ThinkingDelta(Out):
    type: Literal["thinking_delta"] = "thinking_delta"
    thinking: str


class SignatureDelta(Out):
    type: Literal["signature_delta"] = "signature_delta"
    signature: str


class InputJsonDelta(Out):
    type: Literal["input_json_delta"] = "input_json_delta"
    partial_json: str


BlockDelta = Annotated[
    TextDelta | ThinkingDelta | SignatureDelta | InputJsonDelta, Field(discriminator="type")
]


class MessageStart(Out):
    type: Literal["message_start"] = "message_start"
    message: MessageOut


class Ping(Out):
    type: Literal["ping"] = "ping"


class ContentBlockStart(Out):
    type: Literal["content_block_start"] = "content_block_start"
    index: int
    content_block: ContentOut


class ContentBlockDelta(Out):
    type: Literal["content_block_delta"] = "content_block_delta"
    index: int
    delta: BlockDelta


class ContentBlockStop(Out):
    type: Literal["content_block_stop"] = "content_block_stop"
    index: int


class MessageDeltaBody(Out):
    stop_reason: StopReason | None
    stop_sequence: str | None = None


class MessageDelta(Out):
    type: Literal["message_delta"] = "message_delta"
    delta: MessageDeltaBody
    usage: Usage


class MessageStop(Out):
    type: Literal["message_stop"] = "message_stop"


class ErrorEvent(Out):
    type: Literal["error"] = "error"
    error: ErrorDetail


StreamEvent = (
    MessageStart
    | Ping
    | ContentBlockStart
    | ContentBlockDelta
    | ContentBlockStop
    | MessageDelta
    | MessageStop
    | ErrorEvent
)

# every event a stream may send, in the order they first appear (for the OpenAPI document)
EVENT_MODELS: tuple[type[Out], ...] = (
    MessageStart,
    Ping,
    ContentBlockStart,
    ContentBlockDelta,
    ContentBlockStop,
    MessageDelta,
    MessageStop,
    ErrorEvent,
)
