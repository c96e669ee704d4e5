"""The table of the operations corral serves, for its OpenAPI document
(:mod:`corral.server.openapi`): one row per route and method, with its request model, its answers
per status (JSON models, stream chunk models, text) and the error statuses it really returns
beyond the 401, 403 and 500 that any route may answer. A new route is one more row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from corral.anthropic import protocol as anthropic
from corral.api import types as native
from corral.openai import protocol, responses, responses_out, wire
from corral.server.body import MAX_JSON_BODY
from corral.server.routes.transfer import TransferRequest

NDJSON = "application/x-ndjson"
SSE = "text/event-stream"
JSON = "application/json"


@dataclass(frozen=True)
class Family:
    """A group of routes sharing an error shape and a stream format."""

    tag: str
    description: str
    prefix: str  # of its component schemas' names (a family's names are unique in it)
    error: type[BaseModel]  # the body of its 4xx/5xx answers
    stream: str  # its streams' media type, NDJSON or SSE


SERVER = Family("server", "health check and this document", "", native.ErrorResponse, NDJSON)
NATIVE = Family(
    "native", "Ollama's API; errors are {'error': '...'}", "", native.ErrorResponse, NDJSON
)
OPENAI = Family(
    "openai", "OpenAI-compatible; errors are OpenAI's error object", "OpenAI", wire.ErrorResponse,
    SSE,
)  # fmt: skip
ANTHROPIC = Family(
    "anthropic", "Anthropic's Messages API; errors are Anthropic's error object", "Anthropic",
    anthropic.ErrorOut, SSE,
)  # fmt: skip


@dataclass(frozen=True)
class Reply:
    """One successful answer: a JSON object, a stream of chunks, plain text, or nothing."""

    description: str
    json: type[BaseModel] | None = None
    stream: tuple[type[BaseModel], ...] = ()  # the chunk models (a stream may end with an error)
    end: str | None = None  # the last SSE event's data (OpenAI's ``[DONE]``)
    text: str | None = None  # a text/plain answer (its example)
    schema: Mapping[str, Any] | None = None  # a literal JSON schema, for JSON that no model holds


@dataclass(frozen=True)
class Operation:
    """One route and method corral serves."""

    method: str
    path: str
    name: str  # the operationId
    summary: str
    replies: Mapping[int, Reply]
    errors: tuple[int, ...] = ()  # beyond the 401, 403 and 500 that every route may answer
    request: type[BaseModel] | None = None  # a JSON body
    binary_body: bool = False  # an application/octet-stream body
    params: Mapping[str, tuple[str, Mapping[str, Any]]] = field(default_factory=dict)
    family: Family = NATIVE

    @property
    def keyed(self) -> bool:
        """Whether ``CORRAL_API_KEY`` applies (everything but the health check)."""
        return self.path != "/"


ERROR_TEXT = {
    400: "bad request: malformed JSON, a value of the wrong type, an invalid name or option",
    401: "missing or wrong API key (only when CORRAL_API_KEY is set)",
    403: "a foreign Host header while listening on loopback (DNS-rebinding protection)",
    404: "the model (or blob) does not exist",
    413: f"the JSON body is larger than {MAX_JSON_BODY >> 20} MiB",
    500: "an internal error (for pull and push also: the registry failed or is unreachable)",
    503: "server busy: more requests waiting than OLLAMA_MAX_QUEUE",
}

_BODY = (400, 404, 413)  # what every route that parses a body about a model may answer
_INFERENCE = (*_BODY, 503)
_PROGRESS = (native.ProgressResponse,)
_STREAM_NOTE = " (`stream: false`: one JSON object; else a stream, which may end with an error)"


def _progress(what: str) -> Reply:
    return Reply(
        f"{what} progress{_STREAM_NOTE}; the last line is {{'status': 'success'}}",
        json=native.ProgressResponse,
        stream=_PROGRESS,
    )


_DIGEST = {
    "digest": (
        "a blob digest, `sha256:<64 hex>` (or `sha256-<64 hex>`)",
        {"type": "string", "pattern": "^sha256[:-][0-9a-fA-F]{64}$"},
    )
}
_MODEL_PATH = {
    "model": (
        "a model name, `[host/][namespace/]model[:tag]` (it may contain `/`)",
        {"type": "string"},
    )
}
_EMPTY = Reply("done; no body")

OPERATIONS: tuple[Operation, ...] = (
    # ---- server ----
    Operation(
        "get", "/", "root", "health check",
        {200: Reply("the server runs", text="Ollama is running")},
        family=SERVER,
    ),
    Operation(
        "head", "/", "rootHead", "health check", {200: Reply("the server runs", text="")},
        family=SERVER,
    ),
    Operation(
        "get", "/openapi.json", "openapi", "this document",
        {200: Reply("corral's OpenAPI 3.1 document", schema={"type": "object"})},
        family=SERVER,
    ),
    Operation(
        "get", "/metrics", "metrics", "Prometheus metrics (text exposition format 0.0.4)",
        {200: Reply("the metrics", text="# HELP corral_http_requests_total ...")},
        family=SERVER,
    ),
    # ---- native: models ----
    Operation(
        "get", "/api/version", "version", "corral's version",
        {200: Reply("the version", json=native.VersionResponse)},
    ),
    Operation("head", "/api/version", "versionHead", "corral's version", {200: Reply("ok")}),
    Operation(
        "get", "/api/status", "status", "Ollama's cloud status (always disabled in corral)",
        {200: Reply("the status", json=native.StatusResponse)},
    ),
    Operation(
        "get", "/api/tags", "tags", "stored models, most recently modified first",
        {200: Reply("the stored models", json=native.ListResponse)},
    ),
    Operation(
        "post", "/api/show", "show", "describe a model",
        {200: Reply("the model", json=native.ShowResponse)},
        _BODY, native.ModelRequest,
    ),
    Operation(
        "post", "/api/copy", "copy", "copy a model",
        {200: _EMPTY}, _BODY, native.CopyRequest,
    ),
    Operation(
        "delete", "/api/delete", "delete", "delete a model (and blobs no other model uses)",
        {200: _EMPTY}, _BODY, native.ModelRequest,
    ),
    Operation(
        "post", "/api/create", "create", "create a model",
        {200: _progress("create")}, _BODY, native.CreateRequest,
    ),
    Operation(
        "head", "/api/blobs/{digest}", "blobExists", "whether a blob is stored",
        {200: Reply("the blob is stored")}, (400, 404), params=_DIGEST,
    ),
    Operation(
        "post", "/api/blobs/{digest}", "blobUpload", "upload a blob (verified against its digest)",
        {200: Reply("the blob was already stored"), 201: Reply("the blob was stored")},
        (400,), binary_body=True, params=_DIGEST,
    ),
    Operation(
        "post", "/api/pull", "pull", "pull a model from a registry",
        {200: _progress("pull")}, (400, 413), TransferRequest,
    ),
    Operation(
        "post", "/api/push", "push", "push a model to a registry",
        {200: _progress("push")}, _BODY, TransferRequest,
    ),
    # ---- native: inference ----
    Operation(
        "post", "/api/generate", "generate", "generate a completion",
        {
            200: Reply(
                "the answer" + _STREAM_NOTE,
                json=native.GenerateResponse,
                stream=(native.GenerateResponse,),
            )
        },
        _INFERENCE, native.GenerateRequest,
    ),
    Operation(
        "post", "/api/chat", "chat", "answer a chat",
        {
            200: Reply(
                "the answer" + _STREAM_NOTE, json=native.ChatResponse, stream=(native.ChatResponse,)
            )
        },
        _INFERENCE, native.ChatRequest,
    ),
    Operation(
        "post", "/api/embed", "embed", "embeddings of one or more inputs (L2-normalised)",
        {200: Reply("the embeddings", json=native.EmbedResponse)},
        _INFERENCE, native.EmbedRequest,
    ),
    Operation(
        "post", "/api/embeddings", "embeddings", "the embedding of one prompt (legacy)",
        {200: Reply("the embedding", json=native.EmbeddingResponse)},
        _INFERENCE, native.EmbeddingsRequest,
    ),
    Operation(
        "get", "/api/ps", "ps", "loaded models",
        {200: Reply("the loaded models", json=native.ProcessResponse)},
    ),
    # ---- OpenAI ----
    Operation(
        "post", "/v1/chat/completions", "chatCompletions", "OpenAI chat completions",
        {
            200: Reply(
                "a chat.completion, or with `stream: true` chat.completion.chunk events",
                json=wire.ChatCompletion,
                stream=(wire.ChatCompletionChunk,),
                end="[DONE]",
            )
        },
        _INFERENCE, protocol.ChatCompletionRequest,
        family=OPENAI,
    ),
    Operation(
        "post", "/v1/completions", "completions", "OpenAI (legacy) completions",
        {
            200: Reply(
                "a text_completion, or with `stream: true` text_completion events",
                json=wire.Completion,
                stream=(wire.CompletionChunk,),
                end="[DONE]",
            )
        },
        _INFERENCE, protocol.CompletionRequest,
        family=OPENAI,
    ),
    Operation(
        "post", "/v1/embeddings", "createEmbeddings", "OpenAI embeddings",
        {200: Reply("the embeddings", json=wire.EmbeddingList)},
        _INFERENCE, protocol.EmbeddingRequest,
        family=OPENAI,
    ),
    Operation(
        "get", "/v1/models", "listModels", "OpenAI model list",
        {200: Reply("the stored models", json=wire.ModelList)},
        family=OPENAI,
    ),
    Operation(
        "get", "/v1/models/{model}", "retrieveModel", "one OpenAI model",
        {200: Reply("the model", json=wire.Model)},
        (400, 404), params=_MODEL_PATH,
        family=OPENAI,
    ),
    Operation(
        "post", "/v1/responses", "createResponse", "OpenAI Responses API (stateless)",
        {
            200: Reply(
                "a response, or with `stream: true` its events (`event: <type>` lines; a "
                "failure after the start is an `error` event and `response.failed`)",
                json=responses_out.Response,
                stream=responses_out.EVENT_MODELS,
            )
        },
        _INFERENCE, responses.ResponsesRequest,
        family=OPENAI,
    ),
    # ---- Anthropic ----
    Operation(
        "post", "/v1/messages", "createMessage", "Anthropic Messages API",
        {
            200: Reply(
                "a message, or with `stream: true` its events (`event: <type>` lines: "
                "message_start, ping, content_block_start/delta/stop, message_delta, "
                "message_stop; a failure after the start is an `error` event)",
                json=anthropic.MessageOut,
                stream=anthropic.EVENT_MODELS,
            )
        },
        _INFERENCE, anthropic.MessagesRequest,
        family=ANTHROPIC,
    ),
    Operation(
        "post", "/v1/messages/count_tokens", "countMessageTokens",
        "the tokens of a messages request's prompt (as its usage.input_tokens counts them)",
        {200: Reply("the count", json=anthropic.CountTokensOut)},
        _INFERENCE, anthropic.CountTokensRequest,
        family=ANTHROPIC,
    ),
)  # fmt: skip
