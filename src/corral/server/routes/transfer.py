"""Registry routes: ``POST /api/pull`` and ``POST /api/push``.

Both validate the request, then run the transfer in a worker thread and stream its progress
(or answer only the last object with ``stream: false``). When a streaming client disconnects,
the transfer is told to stop; a pull's partial downloads stay on disk and the next pull of the
same model resumes them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from functools import partial

from fastapi import APIRouter, Request
from fastapi.responses import Response

from corral.api.types import Wire
from corral.errors import BadRequest, ModelNotFound
from corral.names import ModelName, parse_name
from corral.registry.client import RegistryOptions
from corral.registry.transfer import Transfers, pull_model, push_model
from corral.server.body import parse_json
from corral.server.streaming import Emit, StreamingResponse, progress_response
from corral.service import Service

router = APIRouter()


class TransferRequest(Wire):
    """The body of ``/api/pull`` and ``/api/push``."""

    model: str | None = None
    name: str | None = None
    insecure: bool | None = None
    stream: bool | None = None
    username: str | None = None
    password: str | None = None


def _services(request: Request) -> Service:
    svc: Service = request.app.state.services
    return svc


def transfers_of(request: Request) -> Transfers:
    """The app's shared transfer state, made on first use (handlers run on the event loop)."""
    state = request.app.state
    transfers: Transfers | None = getattr(state, "corral_transfers", None)
    store = _services(request).store
    if transfers is None or transfers.store is not store:
        transfers = Transfers(store)
        state.corral_transfers = transfers
    return transfers


def _options(req: TransferRequest) -> RegistryOptions:
    return RegistryOptions(
        insecure=bool(req.insecure), username=req.username or "", password=req.password or ""
    )


async def respond_cancellable(
    work: partial[None], cancel: threading.Event, stream: bool
) -> Response:
    """Stream ``work``'s progress; a client that goes away sets ``cancel``."""

    def run(emit: Emit) -> None:
        work(emit, cancel=cancel)

    resp = await progress_response(run, stream)
    if isinstance(resp, StreamingResponse):
        inner = resp.body_iterator

        async def body() -> AsyncIterator[str | bytes | memoryview]:
            try:
                async for chunk in inner:
                    yield chunk
            finally:
                cancel.set()

        resp.body_iterator = body()
    return resp


@router.post("/api/pull")
async def pull(request: Request) -> Response:
    req = await parse_json(request, TransferRequest)
    name = parse_name(req.model or req.name or "")
    svc = _services(request)
    work = partial(
        _pull,
        transfers=transfers_of(request),
        name=name,
        options=_options(req),
        prune=not svc.settings.noprune,
    )
    return await respond_cancellable(work, threading.Event(), req.stream is not False)


def _pull(
    emit: Emit,
    *,
    transfers: Transfers,
    name: ModelName,
    options: RegistryOptions,
    prune: bool,
    cancel: threading.Event,
) -> None:
    pull_model(transfers, name, options, emit, cancel=cancel, prune=prune)


@router.post("/api/push")
async def push(request: Request) -> Response:
    req = await parse_json(request, TransferRequest)
    raw = req.model or req.name or ""
    if not raw:
        raise BadRequest("model is required")
    name = parse_name(raw)
    transfers = transfers_of(request)
    if not await asyncio.to_thread(transfers.store.exists, name):
        raise ModelNotFound(raw)
    work = partial(_push, transfers=transfers, name=name, options=_options(req))
    return await respond_cancellable(work, threading.Event(), req.stream is not False)


def _push(
    emit: Emit,
    *,
    transfers: Transfers,
    name: ModelName,
    options: RegistryOptions,
    cancel: threading.Event,
) -> None:
    push_model(transfers, name, options, emit, cancel=cancel)
