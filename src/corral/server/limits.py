"""The request body limit (``CORRAL_MAX_BODY``, 64 MiB by default): a larger body is answered
413 without being read into memory.

A body whose ``Content-Length`` declares more than the limit is refused before a byte of it is
read. A body without one (chunked) is counted as it arrives, and the read that crosses the limit
raises :class:`~corral.errors.PayloadTooLarge` inside the route, which answers it in the route's
own error shape (``{"error": ...}`` natively, OpenAI's or Anthropic's object on ``/v1``).

What the client sends after the 413 is discarded as it arrives (uvicorn drops the body of an
answered request), never buffered, and the connection stays usable. Closing it instead would make
the kernel reset a connection with unread data, and a client that writes its whole body before
reading (httpx, so the ``ollama`` library) could then lose the 413 and see a connection error.
Only a client that waits for ``100 Continue`` gets ``Connection: close``: it will not send the
body, and the server must not take its next request for one.

Blob uploads (``/api/blobs/:digest``) are exempt: they stream to disk, where multi-GB GGUF files
are expected, and are verified against their digest instead.

Ollama has no such limit on its JSON routes (it decodes as the body streams in); corral keeps
one so that one request cannot take the server's memory.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from corral.errors import PayloadTooLarge

EXEMPT_PREFIX = "/api/blobs/"


def too_large(limit: int) -> str:
    return f"request body too large: more than {limit} bytes (CORRAL_MAX_BODY)"


def declared_length(scope: Scope) -> int | None:
    """The ``Content-Length`` of a request, or None if it has none (or not a number)."""
    text = _header(scope, b"content-length")
    return int(text) if text.isdigit() else None


class BodyLimitMiddleware:
    """Pure ASGI: refuses, or stops reading, a request body larger than ``limit`` bytes."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or path.startswith(EXEMPT_PREFIX):
            await self.app(scope, receive, send)
            return
        declared = declared_length(scope)
        if declared is not None and declared > self.limit:
            await self._refuse(scope, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise PayloadTooLarge(too_large(self.limit))
            return message

        await self.app(scope, counted, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        from corral.server.app import error_json  # the error shape of the path's API

        error = error_json(str(scope.get("path", "")), 413, too_large(self.limit))
        body = json.dumps(error).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        if _header(scope, b"expect").lower() == "100-continue":
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value).decode("latin-1").strip()
    return ""
