"""Embeddings: ``/api/embed`` (batched, L2-normalised, ``dimensions``), the legacy
``/api/embeddings``, and through them ``/v1/embeddings``.

Empty inputs behave as in Ollama: ``"input": ""`` and a legacy ``"prompt": ""`` embed nothing (the
model is only loaded); an empty string inside an input list is embedded like any text (a BERT model
still sees its CLS and SEP tokens), and is a 400 when the model's tokenizer makes no token of it.

An embedding request holds a runner slot while the runner works for it, so embeddings are
bounded by the same queue as generations.
"""

from __future__ import annotations

import math
import time
from typing import Any

from corral.api.types import EmbeddingResponse, EmbeddingsRequest, EmbedRequest, EmbedResponse
from corral.errors import BadRequest
from corral.scheduler import Lease, Runner
from corral.service.context import Service

EMBED_BATCH = 64
# llama-server's answer (which Ollama relays as a 400) for an input that tokenizes to nothing:
# an empty string for a model that adds no BOS/CLS token of its own
EMPTY_INPUT = "Input content cannot be empty"


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


async def _token_lists(runner: Runner, texts: list[str], truncate: bool) -> list[list[int]]:
    limit = runner.n_ctx
    out = []
    for text in texts:
        tokens = await runner.tokenize(text)
        if not tokens:
            raise BadRequest(EMPTY_INPUT)
        if len(tokens) > limit:
            if not truncate:
                raise BadRequest("the input length exceeds the context length")
            tokens = tokens[:limit]
        out.append(tokens)
    return out


async def _vectors(
    lease: Lease, texts: list[str], truncate: bool
) -> tuple[list[list[int]], list[list[float]]]:
    slot = await lease.take_slot()
    try:
        tokens = await _token_lists(lease.runner, texts, truncate)
        vectors: list[list[float]] = []
        for i in range(0, len(tokens), EMBED_BATCH):
            vectors += await lease.runner.embed(tokens[i : i + EMBED_BATCH])
    finally:
        slot.release()
    return tokens, vectors


async def embed(svc: Service, req: EmbedRequest) -> EmbedResponse:
    start = time.perf_counter_ns()
    if req.dimensions is not None and req.dimensions < 0:
        raise BadRequest("dimensions must be a positive number")
    texts = _inputs(req.input)
    job = await svc.job(req.model, req.options, req.keep_alive, embedding=True)
    label = req.model or ""
    async with svc.scheduler.use(job.ref, job.keep_alive) as lease:
        load_ns = lease.load_duration_ns
        if not texts:
            return EmbedResponse(model=label, embeddings=[])
        tokens, vectors = await _vectors(lease, texts, req.truncate is not False)
    embeddings = []
    for vec in vectors:
        vec = normalize(vec)
        if req.dimensions and req.dimensions < len(vec):
            vec = normalize(vec[: req.dimensions])
        embeddings.append(vec)
    return EmbedResponse(
        model=label,
        embeddings=embeddings,
        total_duration=time.perf_counter_ns() - start,
        load_duration=load_ns,
        prompt_eval_count=sum(len(t) for t in tokens),
    )


async def embeddings_legacy(svc: Service, req: EmbeddingsRequest) -> EmbeddingResponse:
    job = await svc.job(req.model, req.options, req.keep_alive, embedding=True)
    async with svc.scheduler.use(job.ref, job.keep_alive) as lease:
        if not req.prompt:
            return EmbeddingResponse(embedding=[])
        _tokens, vectors = await _vectors(lease, [req.prompt], True)
    return EmbeddingResponse(embedding=vectors[0])
