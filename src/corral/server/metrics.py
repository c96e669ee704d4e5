"""HTTP side of the metrics: a pure ASGI middleware that counts every request by route, model and
status with its duration (to the end of its body, so a stream counts whole), and ``GET
/metrics``, Prometheus' text format (the runner processes' resident memory is read at scrape
time, in a worker thread)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from corral.metrics import Gauge, Labels, Metrics, begin_request, model_label
from corral.service import Service

router = APIRouter()

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _route(scope: Scope) -> str:
    """The matched route's path template; unmatched paths share one label."""
    route: Any = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(path) if path else "other"


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        labels = begin_request()
        started = time.perf_counter()
        status = 0

        async def counted_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counted_send)
        finally:
            seconds = time.perf_counter() - started
            # a request cut short before answering (the client left) counts as 499, as nginx
            self.metrics.record_request(_route(scope), labels.model, status or 499, seconds)


def _rss_bytes(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return float(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        return None
    return None


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    svc: Service = request.app.state.services
    runners = [(x.name, x.runner.pid) for x in svc.scheduler.running() if x.runner is not None]

    def read() -> list[tuple[Labels, float]]:
        found = [(model_label(name), _rss_bytes(pid)) for name, pid in sorted(runners)]
        return [(labels, rss) for labels, rss in found if rss is not None]

    rss = await asyncio.to_thread(read)
    gauge = Gauge(
        "corral_runner_resident_bytes", "Resident memory of each runner process.", lambda: rss
    )
    text = svc.scheduler.metrics.render(extra=(gauge,))
    return Response(text, media_type=CONTENT_TYPE)
