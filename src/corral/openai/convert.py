"""Pure mapping of OpenAI requests to corral's native (Ollama) requests.

An OpenAI chat completion, completion or embedding request becomes the dict of the native
``/api/chat``, ``/api/generate`` or ``/api/embed`` request, which the native flow then validates
and serves; :mod:`corral.openai.objects` maps the answers back.

Facts kept from Ollama's OpenAI layer:

* ``temperature`` and ``top_p`` default to 1.0 (OpenAI's defaults), overriding the Modelfile;
* ``max_tokens`` is ``num_predict``; ``stop`` (a string or a list), ``seed``,
  ``frequency_penalty`` and ``presence_penalty`` are the options of the same names;
* ``response_format`` ``json_object`` is the native ``"json"`` format, ``json_schema`` its schema;
* content parts: ``text`` and ``image_url`` with a base64 ``data:`` URI (jpeg, png, webp or a
  blank MIME type); plain http(s) image URLs are refused;
* a tool message names its tool by ``name`` or through the ``tool_call_id`` of an earlier call;
* ``reasoning_effort`` / ``reasoning.effort`` set ``think``.

corral's differences: the parts of one multi-part message stay one message (texts joined by a
newline, images attached) instead of one message per part; ``developer`` is read as ``system``;
``tool_choice: "none"`` drops the tools; ``max_completion_tokens`` is honoured; ``num_ctx`` and
``keep_alive`` may be sent as extra body fields; a completion's ``prompt`` may be a list (one
native request per prompt). ``logprobs``, ``top_logprobs``, ``n``, ``logit_bias`` and ``user``
are ignored: the engine does not report log-probabilities and answers one choice.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any

from corral.errors import BadRequest
from corral.openai.protocol import (
    ChatCompletionRequest,
    ChatMessageIn,
    CompletionRequest,
    EmbeddingRequest,
    ResponseFormat,
    Sampling,
)

_IMAGE_PREFIXES = (
    "data:image/jpeg;base64,",
    "data:image/jpg;base64,",
    "data:image/png;base64,",
    "data:image/webp;base64,",
    "data:;base64,",  # a blank MIME type, as /api/chat takes bare base64
)


def _options(req: Sampling, max_tokens: int | None) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    if isinstance(req.stop, str):
        opts["stop"] = [req.stop]
    elif req.stop:
        opts["stop"] = list(req.stop)
    if max_tokens is not None:
        opts["num_predict"] = max_tokens
    opts["temperature"] = 1.0 if req.temperature is None else req.temperature
    opts["top_p"] = 1.0 if req.top_p is None else req.top_p
    if req.seed is not None:
        opts["seed"] = req.seed
    if req.frequency_penalty is not None:
        opts["frequency_penalty"] = req.frequency_penalty
    if req.presence_penalty is not None:
        opts["presence_penalty"] = req.presence_penalty
    if req.num_ctx is not None:
        opts["num_ctx"] = req.num_ctx
    return opts


def native_format(rf: ResponseFormat | None) -> str | dict[str, Any] | None:
    """``response_format`` as the native ``format``: ``"json"``, a JSON schema, or nothing."""
    if rf is None:
        return None
    kind = rf.type.strip().lower()
    if kind == "json_object":
        return "json"
    if kind == "json_schema" and rf.json_schema is not None:
        return rf.json_schema.schema_
    return None


def native_think(effort: str | None) -> bool | str | None:
    """A reasoning effort as the native ``think`` value (clamped to Ollama's low..max)."""
    if not effort:
        return None
    if effort == "none":
        return False
    if effort == "minimal":
        return "low"
    if effort in ("low", "medium", "high", "max"):
        return effort
    if effort in ("xhigh", "ultra"):
        return "max"
    raise BadRequest(
        f'invalid reasoning value: "{effort}" (must be "minimal", "low", "medium", "high", '
        '"xhigh", "ultra", "max", or "none")'
    )


def decode_image_url(url: str) -> str:
    """The base64 payload of a ``data:`` image URI (validated), as the native API carries it."""
    if url.startswith(("http://", "https://")):
        raise BadRequest(
            "image URLs are not currently supported, please use base64 encoded data instead"
        )
    for prefix in _IMAGE_PREFIXES:
        if url.startswith(prefix):
            data = url[len(prefix) :]
            try:
                base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError) as e:
                raise BadRequest("invalid image input") from e
            return data
    raise BadRequest("invalid image input")


def _content_parts(parts: Sequence[Any]) -> tuple[str, list[str]]:
    texts: list[str] = []
    images: list[str] = []
    for part in parts:
        if not isinstance(part, dict):
            raise BadRequest("invalid message format")
        kind = part.get("type")
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise BadRequest("invalid message format")
            texts.append(text)
        elif kind == "image_url":
            ref = part.get("image_url")
            url = ref.get("url") if isinstance(ref, dict) else ref
            if not isinstance(url, str):
                raise BadRequest("invalid message format")
            images.append(decode_image_url(url))
        else:
            raise BadRequest("invalid message format")
    return "\n".join(texts), images


def _tool_calls_in(calls: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for call in calls:
        fn = call.get("function")
        if not isinstance(fn, dict):
            raise BadRequest("invalid tool call")
        args: Any = fn.get("arguments")
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except json.JSONDecodeError as e:
                raise BadRequest("invalid tool call arguments") from e
        elif args is None:
            args = {}
        if not isinstance(args, dict):
            raise BadRequest("invalid tool call arguments")
        name = str(fn.get("name") or "")
        native: dict[str, Any] = {"function": {"name": name, "arguments": args}}
        if isinstance(call.get("id"), str) and call["id"]:
            native["id"] = call["id"]
        out.append(native)
    return out


def _tool_name(messages: Sequence[ChatMessageIn], call_id: str) -> str:
    for m in reversed(messages):  # the last call with that id wins, as in Ollama
        for call in m.tool_calls or []:
            fn = call.get("function")
            if call.get("id") == call_id and isinstance(fn, dict):
                return str(fn.get("name") or "")
    return ""


def native_messages(messages: Sequence[ChatMessageIn]) -> list[dict[str, Any]]:
    out = []
    for m in messages:
        role = "system" if m.role == "developer" else m.role
        msg: dict[str, Any] = {"role": role}
        if isinstance(m.content, str):
            msg["content"] = m.content
        elif isinstance(m.content, list):
            msg["content"], images = _content_parts(m.content)
            if images:
                msg["images"] = images
        elif not m.tool_calls:
            raise BadRequest("invalid message content type: <nil>")
        if m.tool_calls:
            msg["tool_calls"] = _tool_calls_in(m.tool_calls)
        thinking = m.reasoning or m.reasoning_content
        if thinking:
            msg["thinking"] = thinking
        if role == "tool":
            name = m.name or (_tool_name(messages, m.tool_call_id) if m.tool_call_id else "")
            if name:
                msg["tool_name"] = name
            if m.tool_call_id:
                msg["tool_call_id"] = m.tool_call_id
        out.append(msg)
    return out


def chat_request(req: ChatCompletionRequest) -> dict[str, Any]:
    """The native ``/api/chat`` request for an OpenAI chat completion request."""
    if not req.messages:
        raise BadRequest("[] is too short - 'messages'")
    max_tokens = req.max_completion_tokens
    if max_tokens is None:
        max_tokens = req.max_tokens
    native: dict[str, Any] = {
        "model": req.model,
        "messages": native_messages(req.messages),
        "options": _options(req, max_tokens),
        "stream": req.stream,
    }
    if req.tools and req.tool_choice != "none":
        native["tools"] = req.tools
    fmt = native_format(req.response_format)
    if fmt is not None:
        native["format"] = fmt
    think = native_think(req.reasoning.effort if req.reasoning else req.reasoning_effort)
    if think is not None:
        native["think"] = think
    if req.logprobs:
        native["logprobs"] = True
        native["top_logprobs"] = req.top_logprobs or 0
    if req.keep_alive is not None:
        native["keep_alive"] = req.keep_alive
    return native


def prompts(req: CompletionRequest) -> list[str]:
    """The prompts of a completion request: one, or the list's (which may not be empty)."""
    if isinstance(req.prompt, str):
        return [req.prompt]
    if not req.prompt:
        raise BadRequest("invalid prompt: the list of prompts is empty")
    return list(req.prompt)


def completion_request(req: CompletionRequest, prompt: str) -> dict[str, Any]:
    """The native ``/api/generate`` request for one prompt of an OpenAI completion request."""
    native: dict[str, Any] = {
        "model": req.model,
        "prompt": prompt,
        "options": _options(req, req.max_tokens),
        "stream": req.stream,
    }
    if req.suffix:
        native["suffix"] = req.suffix
    if req.logprobs is not None and req.logprobs > 0:  # legacy: the number of alternatives
        native["logprobs"] = True
        native["top_logprobs"] = req.logprobs
    fmt = native_format(req.response_format)
    if fmt is not None:
        native["format"] = fmt
    if req.keep_alive is not None:
        native["keep_alive"] = req.keep_alive
    return native


def encoding_format(req: EmbeddingRequest) -> str:
    fmt = (req.encoding_format or "float").lower()
    if fmt not in ("float", "base64"):
        raise BadRequest(
            f"Invalid value for 'encoding_format' = {req.encoding_format}. "
            "Supported values: ['float', 'base64']."
        )
    return fmt


def embed_request(req: EmbeddingRequest) -> dict[str, Any]:
    """The native ``/api/embed`` request for an OpenAI embeddings request."""
    encoding_format(req)
    value: str | list[str] | None = req.input
    if value == "":
        value = [""]
    if not value:
        raise BadRequest("invalid input")
    native: dict[str, Any] = {"model": req.model, "input": value}
    if req.dimensions:
        native["dimensions"] = req.dimensions
    if req.num_ctx is not None:
        native["options"] = {"num_ctx": req.num_ctx}
    if req.keep_alive is not None:
        native["keep_alive"] = req.keep_alive
    if req.truncate is not None:
        native["truncate"] = req.truncate
    return native
