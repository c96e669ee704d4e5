"""Pure mapping of native (Ollama) answers to OpenAI's response objects, ids and errors.

Native chat chunks become ``chat.completion`` or a stream of ``chat.completion.chunk``; native
generate chunks become ``text_completion`` objects or chunks; a native embed answer becomes an
embedding list; ``/api/tags`` entries become ``/v1/models`` objects.

Facts kept from Ollama's OpenAI layer:

* ``system_fingerprint`` is ``fp_ollama``; ``usage`` counts ``prompt_eval_count`` and
  ``eval_count``;
* tool calls get ids ``call_<8 random [a-z0-9]>`` and their arguments as a JSON string;
  ``finish_reason`` is ``tool_calls`` when a call was made and generation stopped normally;
* errors are ``{"error": {"message", "type", "param", "code"}}`` with type
  ``invalid_request_error`` (400), ``not_found_error`` (404) or ``api_error`` (other statuses);
* embeddings in ``base64`` are the little-endian float32 bytes, base64-encoded;
* a model's ``created`` is its modification time and ``owned_by`` its namespace (``library``).

Unlike Ollama, a stream opens with a chunk holding only ``delta.role`` (as OpenAI does), and a
completion may hold one choice per prompt, with the prompt echoed on request.

Every answer is one of the typed objects of :mod:`corral.openai.wire`; the routes send its
``.wire()`` JSON.
"""

from __future__ import annotations

import base64
import json
import secrets
import string
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from corral.api.types import (
    ChatResponse,
    EmbedResponse,
    GenerateResponse,
    ListModel,
    Metrics,
)
from corral.errors import InvalidModelName
from corral.names import parse_name
from corral.openai import wire

FINGERPRINT = "fp_ollama"
_ID_CHARS = string.ascii_lowercase + string.digits


# ---- ids and errors ---------------------------------------------------------------------------


def random_id(prefix: str, length: int = 12) -> str:
    return prefix + "".join(secrets.choice(_ID_CHARS) for _ in range(length))


def tool_call_id() -> str:
    """An id for a tool call, shaped as Ollama makes them: ``call_`` and 8 characters."""
    return random_id("call_", 8)


def error_type(status: int) -> str:
    if status == 400:
        return "invalid_request_error"
    if status == 404:
        return "not_found_error"
    return "api_error"


def error_object(
    status: int, message: str, *, kind: str | None = None, code: str | None = None
) -> wire.ErrorResponse:
    """OpenAI's error object for a status and a message."""
    detail = wire.ErrorDetail(message=message, type=kind or error_type(status), code=code)
    return wire.ErrorResponse(error=detail)


def error_body(
    status: int, message: str, *, kind: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """The JSON of :func:`error_object`."""
    return error_object(status, message, kind=kind, code=code).wire()


# ---- answers -------------------------------------------------------------------------------------


def usage(final: Metrics) -> wire.Usage:
    prompt = final.prompt_eval_count or 0
    completion = final.eval_count or 0
    return wire.Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


def _sum_usage(items: Sequence[wire.Usage]) -> wire.Usage:
    return wire.Usage(
        prompt_tokens=sum(u.prompt_tokens for u in items),
        completion_tokens=sum(u.completion_tokens for u in items),
        total_tokens=sum(u.total_tokens for u in items),
    )


def finish_reason(done_reason: str | None, tool_calls: bool) -> str:
    if done_reason == "length":
        return "length"
    return "tool_calls" if tool_calls else "stop"


def tool_calls_out(
    calls: Sequence[dict[str, Any]], new_id: Callable[[], str], start: int = 0
) -> list[wire.ToolCall]:
    """Native tool calls as OpenAI's: an id, ``type: function`` and JSON-string arguments."""
    out = []
    for i, call in enumerate(calls):
        fn = call.get("function") or {}
        index = fn.get("index")
        out.append(
            wire.ToolCall(
                index=index if isinstance(index, int) else start + i,
                id=call.get("id") or new_id(),
                function=wire.FunctionCall(
                    name=str(fn.get("name") or ""),
                    arguments=json.dumps(fn.get("arguments") or {}, ensure_ascii=False),
                ),
            )
        )
    return out


def choice_logprobs(
    chunks: Sequence[ChatResponse | GenerateResponse],
) -> wire.ChoiceLogprobs | None:
    """The native chunks' log probabilities as a choice's (None when none were asked for)."""
    entries = [e for c in chunks for e in c.logprobs or []]
    if not entries:
        return None
    content = [
        wire.TokenLogprob(
            token=e.token,
            logprob=e.logprob,
            bytes=e.bytes,
            top_logprobs=[
                wire.TopLogprob(token=t.token, logprob=t.logprob, bytes=t.bytes)
                for t in e.top_logprobs or []
            ],
        )
        for e in entries
    ]
    return wire.ChoiceLogprobs(content=content)


def chat_completion(
    chunks: Sequence[ChatResponse],
    *,
    rid: str,
    created: int,
    new_id: Callable[[], str] = tool_call_id,
) -> wire.ChatCompletion:
    """The ``chat.completion`` object of a whole native chat stream (its last chunk is done)."""
    final = chunks[-1]
    msgs = [c.message for c in chunks]
    calls = tool_calls_out([t for m in msgs for t in m.tool_calls or []], new_id)
    message = wire.ChatMessage(
        content="".join(m.content for m in msgs),
        reasoning="".join(m.thinking or "" for m in msgs) or None,
        tool_calls=calls or None,
    )
    choice = wire.ChatChoice(
        index=0,
        message=message,
        finish_reason=finish_reason(final.done_reason, bool(calls)),
        logprobs=choice_logprobs(chunks),
    )
    return wire.ChatCompletion(
        id=rid,
        created=created,
        model=final.model,
        system_fingerprint=FINGERPRINT,
        choices=[choice],
        usage=usage(final),
    )


@dataclass
class ChatStream:
    """Turns native chat chunks into ``chat.completion.chunk`` objects, one stream at a time.

    As OpenAI streams: a first chunk with ``delta.role`` and empty content, then the content
    (and reasoning, and tool calls) deltas as they come, then a chunk with an empty delta and the
    ``finish_reason``, then (with ``include_usage``) a chunk with no choices and the ``usage``.
    """

    rid: str
    created: int
    include_usage: bool = False
    new_id: Callable[[], str] = tool_call_id
    _started: bool = field(default=False, init=False)
    _tool_calls: int = field(default=0, init=False)

    def _chunk(
        self,
        model: str,
        choices: list[wire.ChatChunkChoice],
        usage: wire.Usage | None = None,
    ) -> wire.ChatCompletionChunk:
        return wire.ChatCompletionChunk(
            id=self.rid,
            created=self.created,
            model=model,
            system_fingerprint=FINGERPRINT,
            choices=choices,
            usage=usage,
        )

    def _delta(
        self,
        model: str,
        delta: wire.ChatDelta,
        reason: str | None = None,
        logprobs: wire.ChoiceLogprobs | None = None,
    ) -> wire.ChatCompletionChunk:
        choice = wire.ChatChunkChoice(index=0, delta=delta, finish_reason=reason, logprobs=logprobs)
        return self._chunk(model, [choice])

    def feed(self, native: ChatResponse) -> list[wire.ChatCompletionChunk]:
        model = native.model
        msg = native.message
        content = msg.content
        thinking = msg.thinking or ""
        calls = list(msg.tool_calls or [])
        out: list[wire.ChatCompletionChunk] = []
        # the chunk's tokens' log probabilities ride on its answer delta, else on its reasoning
        # delta, else (text held back, e.g. a possible stop word) on an empty delta
        logprobs = choice_logprobs([native])
        if not self._started:
            self._started = True
            out.append(self._delta(model, wire.ChatDelta(role="assistant", content="")))
        if thinking:
            lp = None if content or calls else logprobs
            out.append(self._delta(model, wire.ChatDelta(reasoning=thinking), logprobs=lp))
        if content or calls:
            tool_calls = None
            if calls:
                tool_calls = tool_calls_out(calls, self.new_id, self._tool_calls)
                self._tool_calls += len(calls)
            delta = wire.ChatDelta(content=content or None, tool_calls=tool_calls)
            out.append(self._delta(model, delta, logprobs=logprobs))
        elif logprobs is not None and not thinking:
            out.append(self._delta(model, wire.ChatDelta(), logprobs=logprobs))
        if native.done:
            reason = finish_reason(native.done_reason, self._tool_calls > 0)
            out.append(self._delta(model, wire.ChatDelta(), reason))
            if self.include_usage:
                out.append(self._chunk(model, [], usage(native)))
        return out


def text_completion(
    results: Sequence[Sequence[GenerateResponse]],
    *,
    rid: str,
    created: int,
    echo_prompts: Sequence[str] | None = None,
) -> wire.Completion:
    """The ``text_completion`` object: one choice per prompt's native generate stream."""
    choices = []
    for i, chunks in enumerate(results):
        text = "".join(c.response for c in chunks)
        if echo_prompts is not None:
            text = echo_prompts[i] + text
        reason = finish_reason(chunks[-1].done_reason, False)
        choices.append(
            wire.CompletionChoice(
                text=text, index=i, finish_reason=reason, logprobs=choice_logprobs(chunks)
            )
        )
    return wire.Completion(
        id=rid,
        created=created,
        model=results[0][-1].model if results else "",
        system_fingerprint=FINGERPRINT,
        choices=choices,
        usage=_sum_usage([usage(r[-1]) for r in results]),
    )


def completion_chunk(
    native: GenerateResponse, index: int, *, rid: str, created: int, prefix: str = ""
) -> wire.CompletionChunk:
    """One streamed ``text_completion`` chunk for a native generate chunk of prompt ``index``."""
    reason = finish_reason(native.done_reason, False) if native.done else None
    choice = wire.CompletionChunkChoice(
        text=prefix + native.response,
        index=index,
        finish_reason=reason,
        logprobs=choice_logprobs([native]),
    )
    return wire.CompletionChunk(
        id=rid,
        created=created,
        model=native.model,
        system_fingerprint=FINGERPRINT,
        choices=[choice],
    )


def completion_usage_chunk(
    finals: Sequence[GenerateResponse], *, rid: str, created: int, model: str
) -> wire.CompletionChunk:
    return wire.CompletionChunk(
        id=rid,
        created=created,
        model=model,
        system_fingerprint=FINGERPRINT,
        choices=[],
        usage=_sum_usage([usage(f) for f in finals]),
    )


def floats_to_base64(values: Sequence[float]) -> str:
    """Little-endian float32 bytes, base64-encoded (what the openai SDK decodes)."""
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode("ascii")


def embedding_list(model: str, native: EmbedResponse, encoding: str) -> wire.EmbeddingList:
    """OpenAI's embedding list for a native ``/api/embed`` response."""
    data = []
    for i, vector in enumerate(native.embeddings):
        value: list[float] | str = (
            floats_to_base64(vector) if encoding == "base64" else list(vector)
        )
        data.append(wire.Embedding(embedding=value, index=i))
    tokens = native.prompt_eval_count or 0
    return wire.EmbeddingList(
        data=data,
        model=model,
        usage=wire.EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
    )


def unix_time(go_time: str) -> int:
    """Seconds since the epoch of an RFC 3339 timestamp (0 if it cannot be read)."""
    try:
        return int(datetime.fromisoformat(go_time.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


def owner(model: str) -> str:
    """``owned_by``: the namespace of the model's name (``library`` by default), as Ollama."""
    try:
        return parse_name(model).namespace
    except InvalidModelName:
        return "library"


def model_object(model: str, created: int) -> wire.Model:
    return wire.Model(id=model, created=created, owned_by=owner(model))


def model_list(entries: Sequence[ListModel]) -> wire.ModelList:
    """``GET /v1/models`` from the ``/api/tags`` entries."""
    return wire.ModelList(
        data=[model_object(e.model or e.name, unix_time(e.modified_at)) for e in entries]
    )
