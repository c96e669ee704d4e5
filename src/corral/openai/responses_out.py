"""Pydantic models of what ``POST /v1/responses`` answers: the ``response`` object, its output
items (``message``, ``function_call``, ``reasoning``) and the server-sent stream events.

:mod:`corral.openai.responses_stream` builds them from native chat chunks; the route sends their
``.wire()`` JSON, and :mod:`corral.server.openapi` documents them from these models. Fields are
those the ``openai`` SDK reads (``openai.types.responses``); the request's settings are echoed in
every ``response`` as Ollama and OpenAI do, ``store`` is false and ``previous_response_id`` null.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from corral.openai.wire import OpenAIObject, omitted

Status = Literal["in_progress", "completed", "incomplete"]


# ---- output items -------------------------------------------------------------------------------


class OutputText(OpenAIObject):
    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[Any] = Field(default_factory=list)
    logprobs: list[Any] = Field(default_factory=list)


class MessageItem(OpenAIObject):
    id: str
    type: Literal["message"] = "message"
    status: Status
    role: Literal["assistant"] = "assistant"
    content: list[OutputText]


class FunctionCallItem(OpenAIObject):
    id: str
    type: Literal["function_call"] = "function_call"
    status: Status
    call_id: str
    name: str
    arguments: str  # a JSON object, as a string


class SummaryText(OpenAIObject):
    type: Literal["summary_text"] = "summary_text"
    text: str


class ReasoningItem(OpenAIObject):
    id: str
    type: Literal["reasoning"] = "reasoning"
    summary: list[SummaryText]
    encrypted_content: str | None = omitted()  # the thinking, in plain text (as Ollama)


OutputItem = Annotated[MessageItem | FunctionCallItem | ReasoningItem, Field(discriminator="type")]


# ---- the response -------------------------------------------------------------------------------


class InputTokensDetails(OpenAIObject):
    cached_tokens: int = 0
    cache_write_tokens: int = 0


class OutputTokensDetails(OpenAIObject):
    reasoning_tokens: int = 0


class ResponseUsage(OpenAIObject):
    input_tokens: int
    output_tokens: int
    total_tokens: int
    input_tokens_details: InputTokensDetails = Field(default_factory=InputTokensDetails)
    output_tokens_details: OutputTokensDetails = Field(default_factory=OutputTokensDetails)


class IncompleteDetails(OpenAIObject):
    reason: Literal["max_output_tokens"]


class ResponseError(OpenAIObject):
    code: str
    message: str


class TextFormat(OpenAIObject):
    type: str = "text"
    name: str | None = omitted()
    description: str | None = omitted()
    schema_: dict[str, Any] | None = Field(
        default=None, serialization_alias="schema", exclude_if=lambda v: v is None
    )
    strict: bool | None = omitted()


class TextConfig(OpenAIObject):
    format: TextFormat = Field(default_factory=TextFormat)


class ReasoningConfig(OpenAIObject):
    effort: str | None = None
    summary: str | None = None


class Response(OpenAIObject):
    """The ``response`` object: what ``stream: false`` answers and lifecycle events carry."""

    id: str
    object: Literal["response"] = "response"
    created_at: int
    completed_at: int | None = None
    status: Literal["in_progress", "completed", "incomplete", "failed"]
    incomplete_details: IncompleteDetails | None = None
    error: ResponseError | None = None
    model: str
    previous_response_id: None = None
    instructions: str | None = None
    output: list[OutputItem]
    tools: list[dict[str, Any]]  # the request's, echoed
    tool_choice: str | dict[str, Any] = "auto"
    truncation: str = "disabled"
    parallel_tool_calls: bool = True
    text: TextConfig = Field(default_factory=TextConfig)
    temperature: float = 1.0
    top_p: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    top_logprobs: int = 0
    reasoning: ReasoningConfig | None = None
    usage: ResponseUsage | None = None
    max_output_tokens: int | None = None
    max_tool_calls: int | None = None
    store: bool = False
    background: bool = False
    service_tier: str = "default"
    metadata: dict[str, str] = Field(default_factory=dict)
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None


# ---- stream events ------------------------------------------------------------------------------


class LifecycleEvent(OpenAIObject):
    type: Literal[
        "response.created",
        "response.in_progress",
        "response.completed",
        "response.incomplete",
        "response.failed",
    ]
    sequence_number: int
    response: Response


class OutputItemEvent(OpenAIObject):
    type: Literal["response.output_item.added", "response.output_item.done"]
    sequence_number: int
    output_index: int
    item: OutputItem


class ContentPartEvent(OpenAIObject):
    type: Literal["response.content_part.added", "response.content_part.done"]
    sequence_number: int
    item_id: str
    output_index: int
    content_index: int
    part: OutputText


class OutputTextDeltaEvent(OpenAIObject):
    type: Literal["response.output_text.delta"] = "response.output_text.delta"
    sequence_number: int
    item_id: str
    output_index: int
    content_index: int
    delta: str
    logprobs: list[Any] = Field(default_factory=list)


class OutputTextDoneEvent(OpenAIObject):
    type: Literal["response.output_text.done"] = "response.output_text.done"
    sequence_number: int
    item_id: str
    output_index: int
    content_index: int
    text: str
    logprobs: list[Any] = Field(default_factory=list)


class SummaryPartEvent(OpenAIObject):
    type: Literal["response.reasoning_summary_part.added", "response.reasoning_summary_part.done"]
    sequence_number: int
    item_id: str
    output_index: int
    summary_index: int
    part: SummaryText


class SummaryTextDeltaEvent(OpenAIObject):
    type: Literal["response.reasoning_summary_text.delta"] = "response.reasoning_summary_text.delta"
    sequence_number: int
    item_id: str
    output_index: int
    summary_index: int
    delta: str


class SummaryTextDoneEvent(OpenAIObject):
    type: Literal["response.reasoning_summary_text.done"] = "response.reasoning_summary_text.done"
    sequence_number: int
    item_id: str
    output_index: int
    summary_index: int
    text: str


class ArgumentsDeltaEvent(OpenAIObject):
    type: Literal["response.function_call_arguments.delta"] = (
        "response.function_call_arguments.delta"
    )
    sequence_number: int
    item_id: str
    output_index: int
    delta: str


class ArgumentsDoneEvent(OpenAIObject):
    type: Literal["response.function_call_arguments.done"] = "response.function_call_arguments.done"
    sequence_number: int
    item_id: str
    output_index: int
    arguments: str


class ErrorEvent(OpenAIObject):
    type: Literal["error"] = "error"
    sequence_number: int
    code: str | None = None
    message: str
    param: str | None = None


StreamEvent = Annotated[
    LifecycleEvent
    | OutputItemEvent
    | ContentPartEvent
    | OutputTextDeltaEvent
    | OutputTextDoneEvent
    | SummaryPartEvent
    | SummaryTextDeltaEvent
    | SummaryTextDoneEvent
    | ArgumentsDeltaEvent
    | ArgumentsDoneEvent
    | ErrorEvent,
    Field(discriminator="type"),
]

EVENT_MODELS: tuple[type[OpenAIObject], ...] = (
    LifecycleEvent,
    OutputItemEvent,
    ContentPartEvent,
    OutputTextDeltaEvent,
    OutputTextDoneEvent,
    SummaryPartEvent,
    SummaryTextDeltaEvent,
    SummaryTextDoneEvent,
    ArgumentsDeltaEvent,
    ArgumentsDoneEvent,
    ErrorEvent,
)
