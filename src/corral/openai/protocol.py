"""Pydantic wire models of the OpenAI requests corral accepts on ``/v1``.

Only the edge is typed here: chat completions, (legacy) completions and embeddings. Values are
validated strictly (a string is not a number, as in Go's JSON decoding) and unknown fields are
kept in ``model_extra`` so the routes can log and ignore them instead of rejecting the request.

Two fields are corral extensions that OpenAI clients send through ``extra_body``: ``num_ctx``
(the context size to load the model with) and ``keep_alive`` (how long the model stays loaded,
seconds or a Go duration string), both of which Ollama's own OpenAI layer drops.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class OpenAIWire(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow", populate_by_name=True)

    def unknown_fields(self) -> list[str]:
        """Names of the fields this model does not know (ignored, worth a debug line)."""
        return sorted(self.model_extra or {})


class StreamOptions(OpenAIWire):
    include_usage: bool = False


class JsonSchemaFormat(OpenAIWire):
    name: str | None = None
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(OpenAIWire):
    type: str = "text"
    json_schema: JsonSchemaFormat | None = None


class ChatMessageIn(OpenAIWire):
    """One message of a chat request; ``content`` is a string or a list of content parts."""

    # any other role is refused with Ollama's message; the schema lists them
    role: str = Field(
        json_schema_extra={"enum": ["system", "developer", "user", "assistant", "tool"]}
    )
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    reasoning: str | None = None
    reasoning_content: str | None = None


class Reasoning(OpenAIWire):
    effort: str | None = None


class Sampling(OpenAIWire):
    """The fields chat and text completions share."""

    model: str = ""
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    temperature: float | None = None
    top_p: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    response_format: ResponseFormat | None = None
    n: int | None = None
    user: str | None = None
    # corral extensions (``extra_body`` in the openai SDK)
    num_ctx: int | None = None
    keep_alive: float | int | str | None = None


def _messages_required(schema: dict[str, Any]) -> None:
    schema["required"] = [*schema.get("required", []), "messages"]


class ChatCompletionRequest(Sampling):
    # ``messages`` missing or empty is refused with Ollama's message (not pydantic's), so the
    # model accepts both and only the schema says they are required and not empty
    model_config = ConfigDict(json_schema_extra=_messages_required)

    messages: list[ChatMessageIn] = Field(default_factory=list, json_schema_extra={"minItems": 1})
    max_completion_tokens: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    reasoning_effort: str | None = None
    reasoning: Reasoning | None = None


class CompletionRequest(Sampling):
    prompt: str | list[str] = ""
    suffix: str | None = None
    echo: bool = False
    logprobs: int | None = None
    best_of: int | None = None


class EmbeddingRequest(OpenAIWire):
    model: str = ""
    input: str | list[str] | None = None
    encoding_format: str | None = None
    dimensions: int | None = None
    user: str | None = None
    # corral extensions
    num_ctx: int | None = None
    keep_alive: float | int | str | None = None
    truncate: bool | None = None
