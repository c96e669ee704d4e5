"""Cancel a request's work when its client goes away, on every route and any bind address.

Once the app has read the whole request body, a watcher task keeps reading the ASGI receive
channel; ``http.disconnect`` there means the client closed the connection, and the task running
the request is cancelled (unless its response was already complete: the server reports
``http.disconnect`` then too).

Every ``await`` in the service is a cancellation point that gives back
what it took (runner reference, slot, queue place), and closing a generation's event stream
cancels it in the runner, so a client that gives up frees its slot within one engine step, for
streamed and ``stream: false`` answers alike. After the body, the app's own ``receive`` calls
wait for the same disconnect instead of competing with the watcher for messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)


class DisconnectMiddleware:
    """Pure ASGI: it never wraps response bodies, so streams pass through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_read = asyncio.Event()
        gone = asyncio.Event()

        async def app_receive() -> Message:
            if body_read.is_set():
                await gone.wait()
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.disconnect":
                gone.set()
            elif not message.get("more_body", False):
                body_read.set()
            return message

        answered = False  # the whole response has been sent: nothing left to cancel

        async def app_send(message: Message) -> None:
            nonlocal answered
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                answered = True

        work: asyncio.Future[None] = asyncio.ensure_future(self.app(scope, app_receive, app_send))

        async def watch() -> None:
            await body_read.wait()
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    break
            gone.set()
            if not work.done() and not answered:
                log.debug("client left %s %s: cancelling", scope.get("method"), scope.get("path"))
                work.cancel()

        watcher = asyncio.create_task(watch())
        try:
            await asyncio.shield(work)
        except asyncio.CancelledError:
            if not work.done():  # this task itself was cancelled (server shutdown)
                work.cancel()
                with contextlib.suppress(BaseException):
                    await work
                raise
            if not gone.is_set():
                raise
        finally:
            watcher.cancel()
            with contextlib.suppress(BaseException):
                await watcher
