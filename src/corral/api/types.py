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
    function: ToolCallFunction


class Message(Wire):
    role: str
    content: str = ""
    thinking: str | None = None
    images: list[str] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_name: str | None = None


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


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")
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
