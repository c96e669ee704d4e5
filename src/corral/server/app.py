"""The FastAPI application: ``create_app(settings, services)``, middleware and error mapping."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import re
import socket
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from corral.config import Settings
from corral.engine.process import RunnerProcess
from corral.engine.types import LoadSpec
from corral.errors import CorralError
from corral.scheduler import Runner, RunnerFactory, Scheduler
from corral.server.disconnect import DisconnectMiddleware
from corral.service import Service
from corral.store import Store

log = logging.getLogger(__name__)


def runner_factory(settings: Settings, engine: str) -> RunnerFactory:
    async def start(spec: LoadSpec) -> Runner:
        runner = RunnerProcess(spec, engine=engine, call_timeout=settings.load_timeout)
        await runner.start(timeout=settings.load_timeout)
        return runner

    return start


def default_service(settings: Settings) -> Service:
    store = Store(settings.models)
    engine = os.environ.get("CORRAL_ENGINE", "llamacpp")
    scheduler = Scheduler(settings, runner_factory(settings, engine))
    return Service.build(settings, store, scheduler)


def create_app(settings: Settings, service: Service | None = None) -> FastAPI:
    svc = service or default_service(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await svc.scheduler.close()

    app = FastAPI(
        title="corral", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.state.services = svc

    from corral.server.auth import install_api_key
    from corral.server.metrics import MetricsMiddleware
    from corral.server.metrics import router as metrics_router
    from corral.server.routes import inference as inference_routes
    from corral.server.routes import models as model_routes
    from corral.server.routes import openai as openai_routes
    from corral.server.routes import transfer as transfer_routes

    app.include_router(model_routes.router)
    app.include_router(transfer_routes.router)
    app.include_router(inference_routes.router)
    app.include_router(openai_routes.router)
    app.include_router(metrics_router)

    app.add_middleware(DisconnectMiddleware)  # innermost: it sees the route's own receive
    install_api_key(app, settings)  # inside CORS: preflights pass, 401s get CORS headers
    app.add_middleware(
        CORSMiddleware,
        allow_origin_regex=_origins_regex(settings.origins),
        allow_methods=["*"],
        allow_headers=["*"],
    )
    _install_host_check(app, settings)
    # outermost: every answer counts, refusals of the host check and the API key included
    app.add_middleware(MetricsMiddleware, metrics=svc.scheduler.metrics)
    _install_error_handlers(app)
    return app


def _origins_regex(origins: tuple[str, ...]) -> str:
    if "*" in origins:
        return ".*"
    parts = [re.escape(o).replace(r"\*", "[^/]*") for o in origins]
    return "^(" + "|".join(parts) + ")$"


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CorralError)
    async def corral_error(_req: Request, exc: CorralError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_req: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        msg = "invalid request"
        if errors:
            first = errors[0]
            loc = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
            msg = f'invalid value for "{loc}": {first.get("msg", "invalid")}'
        return JSONResponse({"error": msg}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        text = "404 page not found" if exc.status_code == 404 else str(exc.detail)
        if exc.status_code == 405:
            text = "405 method not allowed"
        return JSONResponse({"error": text}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(_req: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse({"error": f"internal error: {exc}"}, status_code=500)

    del corral_error, validation_error, http_error, unexpected


def _install_host_check(app: FastAPI, settings: Settings) -> None:
    """Refuse foreign Host headers when listening on loopback (DNS-rebinding protection)."""
    try:
        bound = ipaddress.ip_address(settings.host.host)
        loopback_only = bound.is_loopback
    except ValueError:
        loopback_only = settings.host.host == "localhost"
    if not loopback_only:
        return

    app.add_middleware(HostCheckMiddleware)


class HostCheckMiddleware:
    """Pure ASGI: answers 403 to a foreign ``Host`` header, passes everything else through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = ""
            for name, value in scope.get("headers", []):
                if name == b"host":
                    host = value.decode("latin-1")
                    break
            if not allowed_host(host):
                body = json.dumps({"error": "forbidden"}).encode()
                headers = [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ]
                await send({"type": "http.response.start", "status": 403, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def allowed_host(header: str) -> bool:
    host = header.strip()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    host = host.lower()
    if host in ("", "localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if host == socket.gethostname().lower():
            return True
        return host.endswith((".localhost", ".local", ".internal"))
    return ip.is_loopback or ip.is_private or ip.is_unspecified or ip.is_link_local
