"""The FastAPI application: ``create_app(settings, services)``, middleware and error mapping."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from corral.config import Settings
from corral.engine.process import RunnerProcess
from corral.engine.types import LoadSpec
from corral.errors import CorralError
from corral.scheduler import Runner, RunnerFactory, Scheduler
from corral.server.disconnect import DisconnectMiddleware
from corral.server.limits import BodyLimitMiddleware
from corral.server.security import CorsMiddleware, HostCheckMiddleware, loopback_bind
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

    from corral.server import openapi
    from corral.server.auth import install_api_key
    from corral.server.metrics import MetricsMiddleware
    from corral.server.metrics import router as metrics_router
    from corral.server.routes import anthropic as anthropic_routes
    from corral.server.routes import inference as inference_routes
    from corral.server.routes import models as model_routes
    from corral.server.routes import openai as openai_routes
    from corral.server.routes import responses as responses_routes
    from corral.server.routes import transfer as transfer_routes

    app.include_router(model_routes.router)
    app.include_router(transfer_routes.router)
    app.include_router(inference_routes.router)
    app.include_router(openai_routes.router)
    app.include_router(responses_routes.router)
    app.include_router(metrics_router)
    app.include_router(openapi.router)
    app.include_router(anthropic_routes.router)

    app.add_middleware(DisconnectMiddleware)  # innermost: it sees the route's own receive
    # inside the API key and CORS: a 413 goes only to a client with the key, with CORS headers
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body)
    install_api_key(app, settings)  # inside CORS: preflights pass, 401s get CORS headers
    app.add_middleware(CorsMiddleware, origins=settings.origins)  # 403 to foreign origins
    _install_host_check(app, settings)
    # outermost: every answer counts, refusals of the host check and the API key included
    app.add_middleware(MetricsMiddleware, metrics=svc.scheduler.metrics)
    _install_error_handlers(app)
    return app


def error_json(path: str, status: int, message: str) -> dict[str, object]:
    """An error body in the shape of the API that ``path`` belongs to: Anthropic's on
    ``/v1/messages*``, OpenAI's on other ``/v1`` paths, Ollama's ``{"error": ...}`` elsewhere
    (also for paths no route matches, and for the host check's 403)."""
    from corral.anthropic.convert import error_body as anthropic_error_body
    from corral.openai.objects import error_body as openai_error_body
    from corral.server.auth import is_anthropic

    if is_anthropic(path):
        return anthropic_error_body(status, message).wire()
    if path == "/v1" or path.startswith("/v1/"):
        return openai_error_body(status, message)
    return {"error": message}


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CorralError)
    async def corral_error(req: Request, exc: CorralError) -> JSONResponse:
        return JSONResponse(error_json(req.url.path, exc.status, exc.message), exc.status)

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
    async def http_error(req: Request, exc: StarletteHTTPException) -> JSONResponse:
        text = "404 page not found" if exc.status_code == 404 else str(exc.detail)
        if exc.status_code == 405:
            text = "405 method not allowed"
        return JSONResponse(error_json(req.url.path, exc.status_code, text), exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(req: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse(error_json(req.url.path, 500, f"internal error: {exc}"), 500)

    del corral_error, validation_error, http_error, unexpected


def _install_host_check(app: FastAPI, settings: Settings) -> None:
    """Refuse foreign Host headers when listening on loopback (DNS-rebinding protection)."""
    if loopback_bind(settings.host.host):
        app.add_middleware(HostCheckMiddleware)
