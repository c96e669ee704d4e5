"""Inference routes: /api/generate, /api/chat, /api/embed, /api/embeddings, /api/ps."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from corral import completion
from corral import embed as embedding
from corral.api.types import ChatRequest, EmbeddingsRequest, EmbedRequest, GenerateRequest
from corral.inference import Inference
from corral.server.body import parse_json
from corral.server.streaming import stream_response
from corral.timefmt import go_time

router = APIRouter()


def inference(request: Request) -> Inference:
    inf: Inference = request.app.state.services.inference
    return inf


def _aggregate_generate(items: list[dict[str, Any]]) -> dict[str, Any]:
    final = dict(items[-1])
    final["response"] = "".join(str(i.get("response", "")) for i in items)
    return final


def _aggregate_chat(items: list[dict[str, Any]]) -> dict[str, Any]:
    final = dict(items[-1])
    content = "".join(str(i.get("message", {}).get("content", "")) for i in items)
    calls = [c for i in items for c in i.get("message", {}).get("tool_calls", [])]
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = calls
    final["message"] = message
    return final


@router.post("/api/generate")
async def generate(request: Request) -> Response:
    req = await parse_json(request, GenerateRequest)
    chunks = completion.generate(inference(request), req)
    return await stream_response(chunks, req.stream is not False, _aggregate_generate)


@router.post("/api/chat")
async def chat(request: Request) -> Response:
    req = await parse_json(request, ChatRequest)
    chunks = completion.chat(inference(request), req)
    return await stream_response(chunks, req.stream is not False, _aggregate_chat)


@router.get("/api/ps")
async def ps(request: Request) -> dict[str, Any]:
    models = []
    for loaded in inference(request).scheduler.running():
        expires = loaded.expires_at
        if not math.isfinite(expires) or expires > 1e11:
            expires_text = "2318-08-21T00:00:00Z"
        else:
            expires_text = go_time(datetime.fromtimestamp(expires, UTC))
        models.append(
            {
                "name": loaded.name,
                "model": loaded.name,
                "size": loaded.memory_bytes(),
                "digest": loaded.digest,
                "details": loaded.details,
                "expires_at": expires_text,
                "size_vram": 0,
                "context_length": loaded.runner.n_ctx,
            }
        )
    return {"models": models}


@router.post("/api/embed")
async def embed(request: Request) -> dict[str, Any]:
    req = await parse_json(request, EmbedRequest)
    return await embedding.embed(inference(request), req)


@router.post("/api/embeddings")
async def embeddings(request: Request) -> dict[str, Any]:
    req = await parse_json(request, EmbeddingsRequest)
    return await embedding.embeddings_legacy(inference(request), req)
