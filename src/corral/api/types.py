"""Pydantic wire models of the native API (requests and the responses corral builds).

Requests are validated strictly (a string is not a bool, as in Go's JSON decoding) and unknown
fields are ignored, as Ollama ignores them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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
    think: bool | str | None = None
    truncate: bool | None = None
    shift: bool | None = None
    debug_render_only: bool = Field(default=False, alias="_debug_render_only")


class ChatRequest(Wire):
    model: str | None = None
    messages: list[Message] | None = None
    tools: list[Tool] | None = None
    format: str | dict[str, Any] | None = None
    options: dict[str, Any] | None = None
    stream: bool | None = None
    keep_alive: float | int | str | None = None
    think: bool | str | None = None
    truncate: bool | None = None
    shift: bool | None = None
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
