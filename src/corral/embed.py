"""Embeddings: /api/embed (batched, L2-normalised, ``dimensions``) and legacy /api/embeddings."""

from __future__ import annotations

import math
import time
from typing import Any

from corral.api.types import EmbeddingsRequest, EmbedRequest
from corral.errors import BadRequest
from corral.inference import Inference
from corral.scheduler import Lease

EMBED_BATCH = 64


def normalize(vec: list[float]) -> list[float]:
    total = 0.0
    for v in vec:
        if math.isnan(v) or math.isinf(v):
            raise BadRequest("embedding contains NaN or Inf values")
        total += v * v
    norm = 1.0 / max(math.sqrt(total), 1e-12)
    return [v * norm for v in vec]


def _inputs(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    return list(value)


async def _token_lists(lease: Lease, texts: list[str], truncate: bool) -> list[list[int]]:
    limit = lease.runner.n_ctx
    out = []
    for text in texts:
        tokens = await lease.runner.tokenize(text)
        if len(tokens) > limit:
            if not truncate:
                raise BadRequest("the input length exceeds the context length")
            tokens = tokens[:limit]
        out.append(tokens)
    return out


async def embed(inf: Inference, req: EmbedRequest) -> dict[str, Any]:
    start = time.perf_counter_ns()
    if req.dimensions is not None and req.dimensions < 0:
        raise BadRequest("dimensions must be a positive number")
    texts = _inputs(req.input)
    r = inf.resolve(req.model, req.options, req.keep_alive, for_embedding=True)
    async with inf.use(r) as lease:
        load_ns = lease.load_duration_ns
        if not texts:
            return {"model": req.model, "embeddings": []}
        tokens = await _token_lists(lease, texts, req.truncate is not False)
        vectors: list[list[float]] = []
        for i in range(0, len(tokens), EMBED_BATCH):
            vectors += await lease.runner.embed(tokens[i : i + EMBED_BATCH])
    embeddings = []
    for vec in vectors:
        vec = normalize(vec)
        if req.dimensions and req.dimensions < len(vec):
            vec = normalize(vec[: req.dimensions])
        embeddings.append(vec)
    return {
        "model": req.model,
        "embeddings": embeddings,
        "total_duration": time.perf_counter_ns() - start,
        "load_duration": load_ns,
        "prompt_eval_count": sum(len(t) for t in tokens),
    }


async def embeddings_legacy(inf: Inference, req: EmbeddingsRequest) -> dict[str, Any]:
    r = inf.resolve(req.model, req.options, req.keep_alive, for_embedding=True)
    async with inf.use(r) as lease:
        if not req.prompt:
            return {"embedding": []}
        tokens = await _token_lists(lease, [req.prompt], True)
        (vector,) = await lease.runner.embed(tokens)
    return {"embedding": vector}
