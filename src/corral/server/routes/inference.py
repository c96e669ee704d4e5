"""Inference routes: /api/generate, /api/chat, /api/embed, /api/embeddings, /api/ps."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from corral.api.types import ChatRequest, EmbeddingsRequest, EmbedRequest, GenerateRequest
from corral.server.body import parse_json
from corral.server.streaming import json_response, stream_response
from corral.service import Service, catalog
from corral.service import embed as embedding
from corral.service.chat import chat as chat_service
from corral.service.generate import generate as generate_service
from corral.service.native import merge_chat, merge_generate

router = APIRouter()


def service(request: Request) -> Service:
    svc: Service = request.app.state.services
    return svc


@router.post("/api/generate")
async def generate(request: Request) -> Response:
    req = await parse_json(request, GenerateRequest)
    chunks = generate_service(service(request), req)
    return await stream_response(chunks, req.stream is not False, merge_generate)


@router.post("/api/chat")
async def chat(request: Request) -> Response:
    req = await parse_json(request, ChatRequest)
    chunks = chat_service(service(request), req)
    return await stream_response(chunks, req.stream is not False, merge_chat)


@router.get("/api/ps")
async def ps(request: Request) -> Response:
    return json_response(await catalog.ps(service(request)))


@router.post("/api/embed")
async def embed(request: Request) -> Response:
    req = await parse_json(request, EmbedRequest)
    return json_response(await embedding.embed(service(request), req))


@router.post("/api/embeddings")
async def embeddings(request: Request) -> Response:
    req = await parse_json(request, EmbeddingsRequest)
    return json_response(await embedding.embeddings_legacy(service(request), req))
