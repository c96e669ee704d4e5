"""``/api/generate`` (and ``/v1/completions``) on the pipeline: checks, prompt source, chunks."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator

from corral.api.types import GenerateRequest, GenerateResponse
from corral.errors import BadRequest
from corral.service import pipeline
from corral.service.context import Service
from corral.service.images import pixels_of
from corral.service.native import generate_chunk
from corral.service.outputs import Ack
from corral.service.render import GeneratePrompt, stored_messages
from corral.service.request import (
    check_generation,
    check_logprobs,
    grammar_for,
    with_grammar,
    with_logprobs,
)


async def generate(svc: Service, req: GenerateRequest) -> AsyncGenerator[GenerateResponse, None]:
    check_logprobs(req.top_logprobs)
    if req.raw and (req.template or req.system or req.context):
        raise BadRequest("raw mode does not support template, system, or context")
    job = await svc.job(
        req.model,
        req.options,
        req.keep_alive,
        think=req.think,
        truncate=req.truncate,
        shift=req.shift,
    )
    view, label = job.view, job.label
    if not req.prompt and req.keep_alive is not None and job.keep_alive == 0:
        await svc.scheduler.unload(job.ref.key)
        yield generate_chunk(label, Ack("unload"))
        return
    check_generation(job, "generate")
    template = await svc.catalog.template(req.template) if req.template else view.template
    long_name = view.name.display_long()
    if req.suffix and not req.raw and not template.prompt.supports_suffix:
        raise BadRequest(f"{long_name} does not support insert")
    if req.images and "vision" not in view.capabilities:
        raise BadRequest(f"{long_name} does not support vision")
    pixels = await pixels_of([("image", req.images)]) if req.images else None
    job = with_grammar(job, await grammar_for(req.format))
    job = with_logprobs(job, req.logprobs, req.top_logprobs)
    source = GeneratePrompt(
        template=template.prompt,
        prompt=req.prompt,
        images=tuple(req.images or ()),
        system=req.system or view.stored.system or "",
        raw=req.raw,
        suffix=req.suffix,
        context=tuple(req.context) if req.context is not None else None,
        custom_template=bool(req.template),
        model_messages=stored_messages(view.stored.messages),
        think=job.think,
        truncate=job.truncate,
    )
    outputs = pipeline.generate(
        svc.scheduler,
        job,
        source,
        debug_render_only=req.debug_render_only,
        with_context=True,
        pixels=pixels,
        think_tags=view.template.think_tags,
    )
    async with contextlib.aclosing(outputs):
        async for out in outputs:
            yield generate_chunk(label, out)
