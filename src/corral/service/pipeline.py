"""Steps 4 and 5 of a request: hold a runner and a slot, render, generate, decode.

One pipeline serves ``/api/generate``, ``/api/chat`` and ``/v1``; they differ only in their
:class:`~.render.PromptSource` and whether tool calls are parsed. Everything the request takes
is given back however it ends: the runner reference and queue place by the scheduler's context,
the slot by ``finally`` (or by the runner, once it has really stopped a cancelled request), the
generation by closing its event stream (which cancels it in the runner).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, Mapping

from corral.engine.types import DoneEvent
from corral.errors import BadRequest
from corral.prompt import think_on
from corral.scheduler import Scheduler
from corral.service.decode import Decoder
from corral.service.images import Pixels
from corral.service.outputs import Ack, Finished, Output, Rendered
from corral.service.render import PromptSource, fit_tokens
from corral.service.request import Job
from corral.thinking import ThinkingSplitter, ThinkTags
from corral.tools import ToolParser


async def generate(
    scheduler: Scheduler,
    job: Job,
    source: PromptSource,
    *,
    tools: ToolParser | None = None,
    debug_render_only: bool = False,
    with_context: bool = False,
    pixels: Mapping[str, Pixels] | None = None,
    think_tags: ThinkTags | None = None,
) -> AsyncGenerator[Output, None]:
    """The outputs of one generation: deltas then :class:`Finished`, or one :class:`Ack` or
    :class:`Rendered`. With ``think_tags`` and thinking on, the reasoning between them comes
    out as the deltas' ``thinking``."""
    start = time.perf_counter_ns()
    async with scheduler.use(job.ref, job.keep_alive) as lease:
        if source.empty:
            yield Ack("load")
            return
        slot = await lease.take_slot()
        runner = lease.runner
        runner.expect()  # requests that arrive together are prefilled in one step
        announced = True
        try:
            prompt, images = await source.render(runner)
            if debug_render_only:
                yield Rendered(prompt, len(images))
                return
            media = None
            if images:
                wires = [(pixels or {})[i].wire() for i in images]
                tokens = await runner.tokenize_media(prompt, wires)
                if len(tokens) >= runner.n_ctx:
                    raise BadRequest("the input length exceeds the context length")
                media = (prompt, wires)
            else:
                tokens = await fit_tokens(
                    runner,
                    prompt,
                    truncate=job.truncate,
                    num_keep=job.sampling.num_keep,
                    shift=job.sampling.shift,
                )
            splitter = None
            if think_tags is not None and think_on(job.think):
                opened = prompt.rstrip().endswith(think_tags.opening)  # the template opened it
                splitter = ThinkingSplitter(think_tags, opened=opened)
            decoder = Decoder(
                job.stops,
                tools,
                start_ns=start,
                load_ns=lease.load_duration_ns,
                thinking=splitter,
            )
            events = runner.generate(tokens, job.sampling, expected=True, slot=slot, media=media)
            announced = stopping = False
            first = True
            async with contextlib.aclosing(events):
                async for ev in events:
                    if isinstance(ev, DoneEvent):
                        decoder.end(ev)
                        continue
                    if first:
                        first = False
                        ttft = (time.perf_counter_ns() - start) / 1e9
                        scheduler.metrics.record_first_token(job.ref.name, ttft)
                    delta = decoder.token(ev)
                    if decoder.stopped and not stopping:
                        stopping = True
                        runner.cancel(ev.request_id)
                    if delta is not None:
                        yield delta
            tail, end = decoder.finish()
            m = end.metrics
            scheduler.metrics.record_generation(job.ref.name, m.prompt_eval_count, m.eval_count)
            if tail is not None:
                yield tail
            if with_context:  # an image's placeholder positions cannot be sent back
                context = (*(t for t in tokens if t >= 0), *decoder.tokens)
                end = Finished(end.reason, end.metrics, context)
            yield end
        finally:
            if announced:
                runner.unexpect()
            slot.release()
