"""The optional API key (``CORRAL_API_KEY``): bearer-token checks on ``/api/*`` and ``/v1/*``.

Without a key configured nothing is checked and ``Authorization`` headers are ignored, as Ollama
ignores them. With a key, every request needs ``Authorization: Bearer <key>`` except the health
check (``GET``/``HEAD /``) and CORS preflight (``OPTIONS``) requests; others get a 401, with
``{"error": "unauthorized"}`` on native routes and OpenAI's error object on ``/v1`` routes.
Anthropic's routes (``/v1/messages*``) also take the key as ``x-api-key`` and answer a 401 with
Anthropic's ``authentication_error`` object.
"""

from __future__ import annotations

import hmac
import json

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from corral.anthropic.convert import error_body as anthropic_error_body
from corral.config import Settings
from corral.openai.objects import error_body

OPEN_METHODS_AT_ROOT = frozenset({"GET", "HEAD"})


_OWS = " \t"  # HTTP's optional white space (str.strip() would also eat bytes of UTF-8 text)


def bearer_token(header: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (the scheme in any case)."""
    scheme, _, token = header.strip(_OWS).partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip(_OWS) or None


def _wire(text: str) -> bytes:
    """A header value's bytes (headers are decoded as latin-1, one char per byte)."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape")


def key_matches(header: str | None, key: str) -> bool:
    """Whether ``header`` carries ``key`` (its UTF-8 bytes), compared in constant time: one
    ``hmac.compare_digest`` whatever the lengths, so timing tells nothing about the key."""
    token = bearer_token(header or "")
    expected = key.encode("utf-8", "surrogateescape")
    return token is not None and hmac.compare_digest(_wire(token), expected)


def needs_key(method: str, path: str) -> bool:
    if method == "OPTIONS":
        return False
    return not (path == "/" and method in OPEN_METHODS_AT_ROOT)


def is_anthropic(path: str) -> bool:
    """Anthropic's Messages API: its clients send the key as ``x-api-key`` (or a bearer token)
    and read errors in Anthropic's shape."""
    return path == "/v1/messages" or path.startswith("/v1/messages/")


def unauthorized_body(path: str) -> dict[str, object]:
    if is_anthropic(path):
        return anthropic_error_body(401, "invalid x-api-key").wire()
    if path == "/v1" or path.startswith("/v1/"):
        return error_body(
            401, "invalid or missing API key", kind="invalid_request_error", code="invalid_api_key"
        )
    return {"error": "unauthorized"}


class ApiKeyMiddleware:
    """Pure ASGI middleware (it never wraps response bodies, so streams are untouched)."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app = app
        self.key = key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = str(scope.get("method", "GET")).upper()
        path = str(scope.get("path", "/"))
        if not needs_key(method, path):
            await self.app(scope, receive, send)
            return
        offered: list[str] = []
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                offered.append(value.decode("latin-1"))
            elif name == b"x-api-key" and is_anthropic(path):
                offered.append("Bearer " + value.decode("latin-1"))
        if any(key_matches(header, self.key) for header in offered):
            await self.app(scope, receive, send)
            return
        body = json.dumps(unauthorized_body(path)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b"Bearer"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def install_api_key(app: FastAPI, settings: Settings) -> None:
    """Require ``settings.api_key`` on every route but the health check, if one is set.

    Call it before the CORS middleware is added, so that CORS stays the outer layer: preflight
    requests are answered without a key and 401 answers carry the CORS headers.
    """
    if settings.api_key:
        app.add_middleware(ApiKeyMiddleware, key=settings.api_key)
