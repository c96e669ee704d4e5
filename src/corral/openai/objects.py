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

Chunk = dict[str, Any]  # an OpenAI object
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


def error_body(
    status: int, message: str, *, kind: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """OpenAI's error object for a status and a message."""
    return {
        "error": {
            "message": message,
            "type": kind or error_type(status),
            "param": None,
            "code": code,
        }
    }


# ---- answers -------------------------------------------------------------------------------------


def usage(final: Metrics) -> dict[str, int]:
    prompt = final.prompt_eval_count or 0
    completion = final.eval_count or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _sum_usage(items: Sequence[dict[str, int]]) -> dict[str, int]:
    keys = ("prompt_tokens", "completion_tokens", "total_tokens")
    return {k: sum(u[k] for u in items) for k in keys}


def finish_reason(done_reason: str | None, tool_calls: bool) -> str:
    if done_reason == "length":
        return "length"
    return "tool_calls" if tool_calls else "stop"


def tool_calls_out(
    calls: Sequence[dict[str, Any]], new_id: Callable[[], str], start: int = 0
) -> list[dict[str, Any]]:
    """Native tool calls as OpenAI's: an id, ``type: function`` and JSON-string arguments."""
    out = []
    for i, call in enumerate(calls):
        fn = call.get("function") or {}
        index = fn.get("index")
        out.append(
            {
                "index": index if isinstance(index, int) else start + i,
                "id": call.get("id") or new_id(),
                "type": "function",
                "function": {
                    "name": str(fn.get("name") or ""),
                    "arguments": json.dumps(fn.get("arguments") or {}, ensure_ascii=False),
                },
            }
        )
    return out


def _envelope(kind: str, rid: str, created: int, model: str) -> dict[str, Any]:
    return {
        "id": rid,
        "object": kind,
        "created": created,
        "model": model,
        "system_fingerprint": FINGERPRINT,
    }


def chat_completion(
    chunks: Sequence[ChatResponse],
    *,
    rid: str,
    created: int,
    new_id: Callable[[], str] = tool_call_id,
) -> dict[str, Any]:
    """The ``chat.completion`` object of a whole native chat stream (its last chunk is done)."""
    final = chunks[-1]
    msgs = [c.message for c in chunks]
    calls = tool_calls_out([t for m in msgs for t in m.tool_calls or []], new_id)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(m.content for m in msgs),
    }
    thinking = "".join(m.thinking or "" for m in msgs)
    if thinking:
        message["reasoning"] = thinking
    if calls:
        message["tool_calls"] = calls
    return {
        **_envelope("chat.completion", rid, created, final.model),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish_reason(final.done_reason, bool(calls)),
                "logprobs": None,
            }
        ],
        "usage": usage(final),
    }


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

    def _chunk(self, model: str, delta: dict[str, Any], reason: str | None) -> Chunk:
        return {
            **_envelope("chat.completion.chunk", self.rid, self.created, model),
            "choices": [{"index": 0, "delta": delta, "finish_reason": reason, "logprobs": None}],
        }

    def feed(self, native: ChatResponse) -> list[Chunk]:
        model = native.model
        msg = native.message
        content = msg.content
        thinking = msg.thinking or ""
        calls = list(msg.tool_calls or [])
        out: list[Chunk] = []
        if not self._started:
            self._started = True
            out.append(self._chunk(model, {"role": "assistant", "content": ""}, None))
        if thinking:
            out.append(self._chunk(model, {"reasoning": thinking}, None))
        if content or calls:
            delta: dict[str, Any] = {"content": content} if content else {}
            if calls:
                delta["tool_calls"] = tool_calls_out(calls, self.new_id, self._tool_calls)
                self._tool_calls += len(calls)
            out.append(self._chunk(model, delta, None))
        if native.done:
            reason = finish_reason(native.done_reason, self._tool_calls > 0)
            out.append(self._chunk(model, {}, reason))
            if self.include_usage:
                out.append(
                    {
                        **_envelope("chat.completion.chunk", self.rid, self.created, model),
                        "choices": [],
                        "usage": usage(native),
                    }
                )
        return out


def text_completion(
    results: Sequence[Sequence[GenerateResponse]],
    *,
    rid: str,
    created: int,
    echo_prompts: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The ``text_completion`` object: one choice per prompt's native generate stream."""
    choices = []
    for i, chunks in enumerate(results):
        text = "".join(c.response for c in chunks)
        if echo_prompts is not None:
            text = echo_prompts[i] + text
        choices.append(
            {
                "text": text,
                "index": i,
                "finish_reason": finish_reason(chunks[-1].done_reason, False),
                "logprobs": None,
            }
        )
    model = results[0][-1].model if results else ""
    return {
        **_envelope("text_completion", rid, created, model),
        "choices": choices,
        "usage": _sum_usage([usage(r[-1]) for r in results]),
    }


def completion_chunk(
    native: GenerateResponse, index: int, *, rid: str, created: int, prefix: str = ""
) -> Chunk:
    """One streamed ``text_completion`` chunk for a native generate chunk of prompt ``index``."""
    reason = finish_reason(native.done_reason, False) if native.done else None
    return {
        **_envelope("text_completion", rid, created, native.model),
        "choices": [
            {
                "text": prefix + native.response,
                "index": index,
                "finish_reason": reason,
                "logprobs": None,
            }
        ],
    }


def completion_usage_chunk(
    finals: Sequence[GenerateResponse], *, rid: str, created: int, model: str
) -> Chunk:
    return {
        **_envelope("text_completion", rid, created, model),
        "choices": [],
        "usage": _sum_usage([usage(f) for f in finals]),
    }


def floats_to_base64(values: Sequence[float]) -> str:
    """Little-endian float32 bytes, base64-encoded (what the openai SDK decodes)."""
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode("ascii")


def embedding_list(model: str, native: EmbedResponse, encoding: str) -> dict[str, Any]:
    """OpenAI's embedding list for a native ``/api/embed`` response."""
    data = []
    for i, vector in enumerate(native.embeddings):
        value: Any = floats_to_base64(vector) if encoding == "base64" else list(vector)
        data.append({"object": "embedding", "embedding": value, "index": i})
    tokens = native.prompt_eval_count or 0
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


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


def model_object(model: str, created: int) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": created, "owned_by": owner(model)}


def model_list(entries: Sequence[ListModel]) -> dict[str, Any]:
    """``GET /v1/models`` from the ``/api/tags`` entries."""
    data = []
    for e in entries:
        data.append(model_object(e.model or e.name, unix_time(e.modified_at)))
    return {"object": "list", "data": data}
