"""Pydantic models of the OpenAI objects corral answers on ``/v1`` (responses and stream chunks).

:mod:`corral.openai.objects` builds these from native answers; the routes send ``.wire()``, the
JSON object as a dict, and :mod:`corral.server.openapi` documents them from their serialization
JSON schemas. Fields declared with :func:`omitted` are left out of the JSON when unset (``None``)
and documented as optional but never null; every other field is always sent, ``None`` as null
(``logprobs``, ``param``, a chunk's ``finish_reason`` before the last one).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


def _is_none(value: object) -> bool:
    return value is None


def _not_null(schema: dict[str, Any]) -> None:
    """The JSON schema of an :func:`omitted` field: its type without ``null``, no default."""
    schema.pop("default", None)
    any_of = schema.get("anyOf")
    if isinstance(any_of, list):
        kept = [s for s in any_of if s != {"type": "null"}]
        del schema["anyOf"]
        if len(kept) == 1:
            schema.update(kept[0])
        else:
            schema["anyOf"] = kept


def omitted() -> Any:
    """A field that is absent from the JSON when it is ``None``."""
    return Field(default=None, exclude_if=_is_none, json_schema_extra=_not_null)


def _optional_when_omitted(schema: dict[str, Any], cls: type[BaseModel]) -> None:
    """Fields with a default are always sent, hence required, except :func:`omitted` ones."""
    required = schema.get("required")
    if not isinstance(required, list):
        return
    gone = {
        field.serialization_alias or name
        for name, field in cls.model_fields.items()
        if field.exclude_if is not None
    }
    schema["required"] = [name for name in required if name not in gone]
    if not schema["required"]:
        del schema["required"]


class OpenAIObject(BaseModel):
    """Base of the objects corral sends on ``/v1``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_serialization_defaults_required=True,
        json_schema_extra=_optional_when_omitted,
    )

    def wire(self) -> dict[str, Any]:
        """The JSON object sent to the client."""
        return self.model_dump(mode="json", by_alias=True)


# ---- errors -------------------------------------------------------------------------------------


class ErrorDetail(OpenAIObject):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(OpenAIObject):
    """OpenAI's error object, with the native status code."""

    error: ErrorDetail


# ---- shared parts -------------------------------------------------------------------------------


class Usage(OpenAIObject):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class FunctionCall(OpenAIObject):
    name: str
    arguments: str  # a JSON object, as a string


class ToolCall(OpenAIObject):
    index: int
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


# ---- log probabilities --------------------------------------------------------------------------


class TopLogprob(OpenAIObject):
    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class ChoiceLogprobs(OpenAIObject):
    """A choice's log probabilities, one entry per token (chat and, as Ollama, completions)."""

    content: list[TokenLogprob]


# ---- chat completions -----------------------------------------------------------------------


class ChatMessage(OpenAIObject):
    role: Literal["assistant"] = "assistant"
    content: str
    reasoning: str | None = omitted()
    tool_calls: list[ToolCall] | None = omitted()


class ChatChoice(OpenAIObject):
    index: int
    message: ChatMessage
    finish_reason: str
    logprobs: ChoiceLogprobs | None = None


class ChatCompletion(OpenAIObject):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    system_fingerprint: str
    choices: list[ChatChoice]
    usage: Usage


class ChatDelta(OpenAIObject):
    role: Literal["assistant"] | None = omitted()
    content: str | None = omitted()
    reasoning: str | None = omitted()
    tool_calls: list[ToolCall] | None = omitted()


class ChatChunkChoice(OpenAIObject):
    index: int
    delta: ChatDelta
    finish_reason: str | None = None
    logprobs: ChoiceLogprobs | None = None


class ChatCompletionChunk(OpenAIObject):
    """One event of a chat stream; the usage chunk has no choices and a ``usage``."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    system_fingerprint: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = omitted()


# ---- (legacy) completions -------------------------------------------------------------------


class CompletionChoice(OpenAIObject):
    text: str
    index: int
    finish_reason: str
    logprobs: ChoiceLogprobs | None = None


class Completion(OpenAIObject):
    """A ``text_completion``: one choice per prompt."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    system_fingerprint: str
    choices: list[CompletionChoice]
    usage: Usage


class CompletionChunkChoice(OpenAIObject):
    text: str
    index: int  # the prompt's
    finish_reason: str | None = None  # set on the prompt's last chunk
    logprobs: ChoiceLogprobs | None = None


class CompletionChunk(OpenAIObject):
    """One event of a completion stream (``object`` is ``text_completion`` too); the usage chunk
    has no choices and a ``usage``."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    system_fingerprint: str
    choices: list[CompletionChunkChoice]
    usage: Usage | None = omitted()


# ---- embeddings -----------------------------------------------------------------------------


class Embedding(OpenAIObject):
    object: Literal["embedding"] = "embedding"
    embedding: list[float] | str  # floats, or base64 of little-endian float32
    index: int


class EmbeddingUsage(OpenAIObject):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(OpenAIObject):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


# ---- models ---------------------------------------------------------------------------------


class Model(OpenAIObject):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(OpenAIObject):
    object: Literal["list"] = "list"
    data: list[Model]
