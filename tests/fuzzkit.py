"""What schemathesis runs against corral share (tests/server/test_fuzz.py, bench/fuzz.py): the
checks every answer must pass, a deserializer for NDJSON streams, and the steering of requests.

Checks: ``not_a_server_error`` (no 5xx), ``status_code_conformance`` (a documented status),
``content_type_conformance`` (a documented media type), ``response_schema_conformance`` (the
body is valid against the spec: NDJSON streams as the array of their lines, SSE streams event by
event) and :func:`error_shape` (an error is ``{"error": "..."}`` on native routes and OpenAI's
error object on ``/v1`` routes; Anthropic's on ``/v1/messages``).

Generated requests are sent as generated, except for a few deterministic rewrites of the body
(and the ``/v1/models/{model}`` path), keyed by a CRC of the generated value so that a run stays
reproducible:

* a model name is kept, or replaced by one of the store's models, so that requests reach the
  inference and model code instead of ending as 404s; an absent one (the field is optional in
  the schemas) is filled in three cases out of four;
* a chat completion's message without content mostly gets some (see :func:`_give_content`);
* names a request would create or delete (create, copy's destination, delete) become scratch
  names, so that the models the other operations use stay in the store;
* pull and push never reach the internet: a name that parses is sent to the local registry
  (a model it serves) with ``insecure: true``; values of the wrong type are kept, since those
  are refused before any network I/O;
* optionally (a real model), generation is bounded: ``num_predict``/``max_tokens`` and
  ``num_ctx`` are clamped, so that no request generates for minutes or allocates a huge cache.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from typing import Any

import schemathesis
from schemathesis import Case, CheckContext, Response
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from corral.errors import CorralError
from corral.names import parse_name

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

SCRATCH = ("scratch-0", "scratch-1", "scratch-2")
# routes whose body names a model in ``model`` (or ``name``), optional in their schemas
NAMED = frozenset(
    {
        "/api/generate",
        "/api/chat",
        "/api/embed",
        "/api/embeddings",
        "/api/show",
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
        "/v1/responses",
        "/v1/messages",
        "/v1/messages/count_tokens",
    }
)
OPENAI_ERROR_KEYS = {"message", "type", "param", "code"}


@schemathesis.deserializer("application/x-ndjson")
def ndjson_lines(_ctx: schemathesis.DeserializationContext, response: Response) -> list[Any]:
    """An NDJSON stream as the array of its lines (how corral's spec describes it)."""
    return [json.loads(line) for line in response.content.splitlines() if line.strip()]


def error_shape(_ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """A 4xx/5xx body is ``{"error": str}`` (native), OpenAI's error object (``/v1``) or
    Anthropic's (``/v1/messages``)."""
    if response.status_code < 400 or case.operation.method.upper() == "HEAD":
        return None
    body = response.json()
    path = case.operation.path
    assert isinstance(body, dict), f"not an error object: {body!r}"
    if path.startswith("/v1/messages"):
        assert body.get("type") == "error" and isinstance(body.get("error"), dict), body
        assert isinstance(body["error"].get("message"), str), body
        return True
    assert set(body) == {"error"}, f"not an error object: {body!r}"
    error = body["error"]
    if path.startswith("/v1/"):
        assert isinstance(error, dict), f"not OpenAI's error object: {body!r}"
        assert set(error) == OPENAI_ERROR_KEYS, body
        assert isinstance(error["message"], str) and isinstance(error["type"], str), body
    else:
        assert isinstance(error, str), f"not a native error: {body!r}"
    return True


def _pick(value: str, choices: tuple[str, ...]) -> str:
    """A deterministic choice: the value itself or one of ``choices``, by its CRC."""
    k = zlib.crc32(value.encode("utf-8", "surrogatepass")) % (len(choices) + 1)
    return value if k == len(choices) else choices[k]


@dataclass(frozen=True)
class Steer:
    """How to rewrite generated requests for one server."""

    models: tuple[str, ...]  # models in the store that requests may use (chat and embedding)
    registry: str  # host:port of a plain-http registry that serves ``remote``
    remote: str = "library/tiny:latest"
    max_predict: int | None = None  # clamp generation and context (None: leave as generated)
    max_ctx: int = 2048

    @property
    def remote_name(self) -> str:
        return f"{self.registry}/{self.remote}"

    def path_parameters(self, path: str, params: dict[str, Any] | None) -> None:
        if path == "/v1/models/{model}" and params and isinstance(params.get("model"), str):
            params["model"] = _pick(params["model"], self.models)

    def body(self, path: str, body: Any) -> Any:
        """The body to send instead of ``body`` (changed in place when it is an object)."""
        if not isinstance(body, dict):
            return body
        transfer = path in ("/api/pull", "/api/push")
        written = path in ("/api/create", "/api/delete")
        if (transfer or written or path in NAMED) and not _named(body):
            # the model field is optional in the schemas, and mostly left out: fill three in four
            k = zlib.crc32(repr(sorted(body)).encode()) % 4
            if k:
                names = (self.remote_name,) if transfer else SCRATCH if written else self.models
                body["model"] = names[k % len(names)]
        if transfer:
            self._transfer(body)
            return body
        for key in ("model", "name", "source", "from"):
            value = body.get(key)
            if not isinstance(value, str):
                continue
            if written and key in ("model", "name"):
                body[key] = self._scratch(value)
            else:
                body[key] = _pick(value, self.models)
        if isinstance(body.get("destination"), str):
            body["destination"] = self._scratch(body["destination"])
        if path == "/v1/chat/completions":
            _give_content(body.get("messages"))
        if self.max_predict is not None:
            self._bound(path, body)
        return body

    def _scratch(self, value: str) -> str:
        """A name to write or delete: never one of ``models``."""
        picked = _pick(value, SCRATCH)
        key = _key(picked)
        if key is not None and key in {_key(m) for m in self.models}:
            return SCRATCH[0]
        return picked

    def _transfer(self, body: dict[str, Any]) -> None:
        """Only the local registry: a name that parses becomes its model's, one that does not
        is kept (refused before any network I/O) or, half the time, becomes it too."""
        for key in ("model", "name"):
            value = body.get(key)
            if isinstance(value, str):
                remote = (self.remote_name,)
                body[key] = self.remote_name if _parses(value) else _pick(value, remote)
        if body.get("insecure") is None or isinstance(body.get("insecure"), bool):
            body["insecure"] = True

    def _bound(self, path: str, body: dict[str, Any]) -> None:
        if path.startswith("/v1/"):
            keys = {
                "/v1/embeddings": (),
                "/v1/messages/count_tokens": (),
                "/v1/messages": ("max_tokens",),
                "/v1/responses": ("max_output_tokens",),
                "/v1/completions": ("max_tokens",),
            }.get(path, ("max_tokens", "max_completion_tokens"))
            for key in keys:
                if key in body and body[key] is None:  # null: no bound
                    body[key] = self.max_predict
                self._clamp(body, key, self.max_predict)
            if keys and all(k not in body for k in keys):
                body[keys[0]] = self.max_predict  # none given: the route's default is no bound
            self._clamp(body, "num_ctx", self.max_ctx)
            return
        if path not in ("/api/generate", "/api/chat", "/api/embed", "/api/embeddings"):
            return
        options = body.setdefault("options", {})
        if isinstance(options, dict):
            if path in ("/api/generate", "/api/chat"):
                if options.get("num_predict") is None:  # none or null: no bound
                    options["num_predict"] = self.max_predict
                self._clamp(options, "num_predict", self.max_predict)
            self._clamp(options, "num_ctx", self.max_ctx)

    @staticmethod
    def _clamp(obj: dict[str, Any], key: str, bound: int | None) -> None:
        """At most ``bound``; an unbounded generation (a number of tokens of 0 or less: up to
        ten context windows, as in Ollama) too."""
        value = obj.get(key)
        if bound is None or not isinstance(value, int) or isinstance(value, bool):
            return
        if value > bound or (key != "num_ctx" and value <= 0):
            obj[key] = bound


def _key(name: str) -> tuple[str, str, str, str] | None:
    try:
        return parse_name(name).key()
    except CorralError:
        return None


def _give_content(messages: Any) -> None:
    """A message without content (the schema allows it: OpenAI's assistant turns with tool calls)
    mostly gets some, so that chat completions reach the model: three in four times."""
    if not isinstance(messages, list):
        return
    for i, msg in enumerate(messages):
        empty = isinstance(msg, dict) and msg.get("content") is None and not msg.get("tool_calls")
        if empty and zlib.crc32(repr(sorted(msg)).encode()) % 4:
            messages[i] = {**msg, "content": f"message {i}"}


def _named(body: dict[str, Any]) -> bool:
    return any(isinstance(body.get(k), str) for k in ("model", "name"))


def _parses(name: str) -> bool:
    return _key(name) is not None
