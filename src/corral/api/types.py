"""Pydantic wire models of the native API (requests and the responses corral builds).

Requests are validated strictly (a string is not a bool, as in Go's JSON decoding) and unknown
fields are ignored, as Ollama ignores them.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

THINK_LEVELS = ("high", "medium", "low", "max")
_THINK_CHOICES = '("high", "medium", "low", "max", true, or false)'


def _think_value(value: Any) -> Any:
    """Ollama's ``ThinkValue``: a bool or one of the levels, with its decoding errors."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if value in THINK_LEVELS:
            return value
        raise PydanticCustomError(
            "ollama",
            "invalid think value: {value} (must be " + _THINK_CHOICES[1:-1] + ")",
            {"value": f'"{value}"'},
        )
    raise PydanticCustomError("ollama", "think must be a boolean or string " + _THINK_CHOICES)


Think = Annotated[bool | str | None, BeforeValidator(_think_value)]


class Wire(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", populate_by_name=True)


class ToolCallFunction(Wire):
    name: str = ""
    arguments: dict[str, Any] = Field(default_factory=dict)
    index: int | None = None


class ToolCall(Wire):
    id: str | None = None
    function: ToolCallFunction


class Message(Wire):
    # any other role is refused with Ollama's message (the schema lists them; create's
    # ``messages`` take the first three only)
    role: str = Field(json_schema_extra={"enum": ["system", "user", "assistant", "tool"]})
    content: str = ""
    thinking: str | None = None
    images: list[str] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_name: str | None = None
    tool_call_id: str | None = None


class CreateRequest(Wire):
    model: str | None = None
    name: str | None = None
    modelfile: str | None = None
    path: str | None = None
    stream: bool | None = None
    quantize: str | None = None
    quantization: str | None = None
    from_: str | None = Field(default=None, alias="from")
    files: dict[str, str] | None = None
    adapters: dict[str, str] | None = None
    template: str | None = None
    system: str | None = None
    license: str | list[str] | None = None
    parameters: dict[str, Any] | None = None
    messages: list[Message] | None = None


class ModelRequest(Wire):
    """Requests that name one model (show, delete)."""

    model: str | None = None
    name: str | None = None
    verbose: bool | None = None


class CopyRequest(Wire):
    source: str
    destination: str


class Tool(Wire):
    model_config = ConfigDict(strict=True, extra="allow")
    type: str = "function"
    function: dict[str, Any]


class GenerateRequest(Wire):
    model: str | None = None
    prompt: str = ""
    suffix: str = ""
    images: list[str] | None = None
    format: str | dict[str, Any] | None = None
    options: dict[str, Any] | None = None
    system: str = ""
    template: str = ""
    context: list[int] | None = None
    stream: bool | None = None
    raw: bool = False
    keep_alive: float | int | str | None = None
    think: Think = None
    truncate: bool | None = None
    shift: bool | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    debug_render_only: bool = Field(default=False, alias="_debug_render_only")


class ChatRequest(Wire):
    model: str | None = None
    messages: list[Message] | None = None
    tools: list[Tool] | None = None
    format: str | dict[str, Any] | None = None
    options: dict[str, Any] | None = None
    stream: bool | None = None
    keep_alive: float | int | str | None = None
    think: Think = None
    truncate: bool | None = None
    shift: bool | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    debug_render_only: bool = Field(default=False, alias="_debug_render_only")


class EmbedRequest(Wire):
    model: str | None = None
    input: str | list[str] | None = None
    truncate: bool | None = None
    dimensions: int | None = None
    options: dict[str, Any] | None = None
    keep_alive: float | int | str | None = None


class EmbeddingsRequest(Wire):
    model: str | None = None
    prompt: str = ""
    options: dict[str, Any] | None = None
    keep_alive: float | int | str | None = None


# ---- responses ---------------------------------------------------------------------------------
# Built by the server, never parsed from clients. Stream chunks leave out their unset (None)
# fields, as Ollama's ``omitempty`` fields; listings keep every field (``families`` is null).


def _document_omitted(schema: dict[str, Any], cls: type[BaseModel]) -> None:
    """The serialization JSON schema of an :class:`Out` whose ``None`` fields are left out:
    those are optional and never null; every other field is always sent, hence required."""
    if not getattr(cls, "omit_none", False):
        return
    properties = schema.get("properties", {})
    omitted = set()
    for name, field in cls.model_fields.items():
        if field.is_required() or field.default is not None:
            continue
        key = field.serialization_alias or name
        omitted.add(key)
        prop = properties.get(key, {})
        prop.pop("default", None)
        any_of = prop.pop("anyOf", None)
        if isinstance(any_of, list):
            kept = [s for s in any_of if s != {"type": "null"}]
            prop.update(kept[0] if len(kept) == 1 else {"anyOf": kept})
    required = [k for k in schema.get("required", []) if k not in omitted]
    if required:
        schema["required"] = required
    else:
        schema.pop("required", None)


class Out(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_serialization_defaults_required=True,
        json_schema_extra=_document_omitted,
    )
    omit_none: ClassVar[bool] = True

    def wire(self) -> dict[str, Any]:
        """The JSON object sent to the client."""
        return self.model_dump(mode="json", exclude_none=self.omit_none, by_alias=True)

    def wire_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=self.omit_none, by_alias=True).encode()


class DebugInfo(Out):
    rendered_template: str
    image_count: int


class Metrics(Out):
    """Ollama's statistics on the last chunk of a generation, in nanoseconds."""

    done_reason: str | None = None
    total_duration: int | None = None
    load_duration: int | None = None
    prompt_eval_count: int | None = None
    prompt_eval_duration: int | None = None
    eval_count: int | None = None
    eval_duration: int | None = None


class TokenLogprob(Out):
    """A token and its log probability; ``bytes`` are the token's raw bytes."""

    token: str
    logprob: float
    bytes: list[int] | None = None


class Logprob(TokenLogprob):
    """A generated token's log probability, with the most likely tokens at its position."""

    top_logprobs: list[TokenLogprob] | None = None


class GenerateResponse(Metrics):
    model: str
    created_at: str
    response: str = ""
    thinking: str | None = None
    logprobs: list[Logprob] | None = None
    done: bool = False
    context: list[int] | None = None
    debug_info: DebugInfo | None = Field(default=None, serialization_alias="_debug_info")


class ChatMessageOut(Out):
    role: str = "assistant"
    content: str = ""
    thinking: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class ChatResponse(Metrics):
    model: str
    created_at: str
    message: ChatMessageOut = Field(default_factory=ChatMessageOut)
    logprobs: list[Logprob] | None = None
    done: bool = False
    debug_info: DebugInfo | None = Field(default=None, serialization_alias="_debug_info")


class EmbedResponse(Out):
    model: str
    embeddings: list[list[float]]
    total_duration: int | None = None
    load_duration: int | None = None
    prompt_eval_count: int | None = None


class EmbeddingResponse(Out):
    embedding: list[float]


class ModelDetails(Out):
    omit_none: ClassVar[bool] = False  # always sent whole (``families`` may be null)
    parent_model: str = ""
    format: str = ""
    family: str = ""
    families: list[str] | None = None
    parameter_size: str = ""
    quantization_level: str = ""


class ListModel(Out):
    name: str
    model: str
    modified_at: str
    size: int
    digest: str
    details: ModelDetails
    capabilities: list[str] = Field(default_factory=list)


class ListResponse(Out):
    omit_none: ClassVar[bool] = False
    models: list[ListModel]


class ProcessModel(Out):
    name: str
    model: str
    size: int
    digest: str
    details: ModelDetails
    expires_at: str
    size_vram: int
    context_length: int


class ProcessResponse(Out):
    omit_none: ClassVar[bool] = False
    models: list[ProcessModel]


class ErrorResponse(Out):
    """Every native error answer (and the last line of a stream that failed)."""

    error: str


class VersionResponse(Out):
    version: str


class CloudStatus(Out):
    omit_none: ClassVar[bool] = False
    disabled: bool
    source: str


class StatusResponse(Out):
    """``GET /api/status``: corral never reaches Ollama's cloud, so it is always disabled."""

    omit_none: ClassVar[bool] = False
    cloud: CloudStatus


class ProgressResponse(Out):
    """A line of ``/api/pull``, ``/api/push`` and ``/api/create`` progress (the last one is
    ``{"status": "success"}``); empty fields are left out."""

    status: str
    digest: str | None = None
    total: int | None = None
    completed: int | None = None


class ShowMessage(Out):
    role: str
    content: str


class ShowResponse(Out):
    """``/api/show``'s answer (``license``, ``projector_info`` and ``messages`` only when the
    model has them; ``model_info`` holds null for arrays elided without ``verbose``)."""

    license: str | None = None
    modelfile: str
    parameters: str
    template: str
    system: str
    details: ModelDetails
    model_info: dict[str, Any]
    projector_info: dict[str, Any] | None = None
    capabilities: list[str]
    modified_at: str
    messages: list[ShowMessage] | None = None
