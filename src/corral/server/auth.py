"""The optional API key (``CORRAL_API_KEY``): bearer-token checks on ``/api/*`` and ``/v1/*``.

Without a key configured nothing is checked and ``Authorization`` headers are ignored, as Ollama
ignores them. With a key, every request needs ``Authorization: Bearer <key>`` except the health
check (``GET``/``HEAD /``) and CORS preflight (``OPTIONS``) requests; others get a 401, with
``{"error": "unauthorized"}`` on native routes and OpenAI's error object on ``/v1`` routes.
"""

from __future__ import annotations

import hmac
import json

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from corral.config import Settings
from corral.openai.objects import error_body

OPEN_METHODS_AT_ROOT = frozenset({"GET", "HEAD"})


def bearer_token(header: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (the scheme in any case)."""
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def key_matches(header: str | None, key: str) -> bool:
    token = bearer_token(header or "")
    return token is not None and hmac.compare_digest(token.encode(), key.encode())


def needs_key(method: str, path: str) -> bool:
    if method == "OPTIONS":
        return False
    return not (path == "/" and method in OPEN_METHODS_AT_ROOT)


def unauthorized_body(path: str) -> dict[str, object]:
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
        header = None
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        if key_matches(header, self.key):
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
