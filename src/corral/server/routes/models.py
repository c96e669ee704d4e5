"""Model management routes: create, blobs, tags, show, copy, delete, version, root."""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

import corral
from corral.api.types import (
    CloudStatus,
    CopyRequest,
    CreateRequest,
    ModelRequest,
    StatusResponse,
    VersionResponse,
)
from corral.create.builder import build_model
from corral.create.spec import CreateSpec, spec_from_request
from corral.errors import BadRequest, ModelNotFound, NotFound
from corral.names import ModelName, parse_digest, parse_name
from corral.registry.client import RegistryOptions
from corral.registry.transfer import Transfers, pull_model
from corral.server.body import parse_json
from corral.server.routes.transfer import respond_cancellable, transfers_of
from corral.server.streaming import Emit, json_response
from corral.service import Service, catalog
from corral.store import Store
from corral.store.blobs import BlobWriter
from corral.store.manifests import Manifest

router = APIRouter()

UPLOAD_BUFFER = 4 << 20


def from_this_machine(request: Request) -> bool:
    """The client connects over loopback (a process of this machine)."""
    host = request.client.host if request.client is not None else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def services(request: Request) -> Service:
    svc: Service = request.app.state.services
    return svc


@router.api_route("/", methods=["GET", "HEAD"])
async def root() -> Response:
    return PlainTextResponse("Ollama is running")


@router.api_route("/api/version", methods=["GET", "HEAD"])
async def version() -> Response:
    return json_response(VersionResponse(version=corral.__version__))


@router.get("/api/status")
async def status(request: Request) -> Response:
    """Ollama's cloud status: always disabled here; ``env`` when OLLAMA_NO_CLOUD says so too."""
    source = "env" if services(request).settings.no_cloud else "corral"
    return json_response(StatusResponse(cloud=CloudStatus(disabled=True, source=source)))


@router.get("/api/tags")
async def tags(request: Request) -> Response:
    return json_response(await catalog.tags(services(request)))


@router.post("/api/show")
async def show(request: Request) -> dict[str, Any]:
    req = await parse_json(request, ModelRequest)
    raw = req.model or req.name or ""
    return await catalog.show(services(request), raw, verbose=bool(req.verbose))


@router.post("/api/copy")
async def copy(request: Request) -> Response:
    req = await parse_json(request, CopyRequest)
    store = services(request).store
    try:
        src = parse_name(req.source)
    except BadRequest as e:
        raise BadRequest(f'source "{req.source}" is invalid') from e
    try:
        dst = parse_name(req.destination)
    except BadRequest as e:
        raise BadRequest(f'destination "{req.destination}" is invalid') from e
    try:
        await asyncio.to_thread(_copy, store, src, dst)
    except ModelNotFound as e:
        raise NotFound(f'model "{req.source}" not found') from e
    return Response(status_code=200)


def _copy(store: Store, src: ModelName, dst: ModelName) -> None:
    entry = store.read(src)
    store.write(dst, Manifest.from_bytes(entry.manifest.to_bytes()))


@router.delete("/api/delete")
async def delete(request: Request) -> Response:
    req = await parse_json(request, ModelRequest)
    raw = req.model or req.name or ""
    try:
        name = parse_name(raw)
    except BadRequest as e:
        raise BadRequest(f'name "{raw}" is invalid') from e
    svc = services(request)
    try:
        await asyncio.to_thread(svc.store.delete, name, prune=not svc.settings.noprune)
    except ModelNotFound as e:
        raise ModelNotFound(raw) from e
    return Response(status_code=200)


@router.post("/api/create")
async def create(request: Request) -> Response:
    req = await parse_json(request, CreateRequest)
    svc = services(request)
    spec = await asyncio.to_thread(
        partial(spec_from_request, req, svc.store, server_paths=from_this_machine(request))
    )
    work = partial(_build, spec=spec, svc=svc, transfers=transfers_of(request))
    return await respond_cancellable(work, threading.Event(), req.stream is not False)


def _build(
    emit: Emit, *, spec: CreateSpec, svc: Service, transfers: Transfers, cancel: threading.Event
) -> None:
    prune = not svc.settings.noprune
    if spec.from_model is not None and not svc.store.exists(spec.from_model):
        # FROM a model that is not here: pull it first, with its progress, as Ollama does
        pull_model(transfers, spec.from_model, RegistryOptions(), emit, cancel=cancel, prune=prune)
    build_model(spec, svc.store, emit, prune=prune)


@router.head("/api/blobs/{digest}")
async def head_blob(digest: str, request: Request) -> Response:
    store = services(request).store
    if not await asyncio.to_thread(store.has_blob, parse_digest(digest)):
        return JSONResponse({"error": f'blob "{digest}" not found'}, status_code=404)
    return Response(status_code=200)


@router.post("/api/blobs/{digest}")
async def create_blob(digest: str, request: Request) -> Response:
    store = services(request).store
    expected = parse_digest(digest)
    if await asyncio.to_thread(store.has_blob, expected):
        return Response(status_code=200)
    writer: BlobWriter = await asyncio.to_thread(store.blob_writer)
    try:
        buf = bytearray()
        async for chunk in request.stream():
            buf += chunk
            if len(buf) >= UPLOAD_BUFFER:
                await asyncio.to_thread(writer.write, bytes(buf))
                buf.clear()
        await asyncio.to_thread(writer.write, bytes(buf))
        await asyncio.to_thread(writer.commit, expected)
    except BaseException:
        writer.abort()
        raise
    return Response(status_code=201)
