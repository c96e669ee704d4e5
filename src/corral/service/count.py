"""How many tokens a chat request's prompt is, without generating (Anthropic's count_tokens).

The prompt is the one :func:`corral.service.chat.chat` would evaluate: the same job
(options, ``think``, ``truncate``, ``shift``), the same messages, tools, model system prompt and
history, rendered by the model's template with history truncated to the context, then tokenized
by the model's runner (with its images, for a vision model). So the count equals the
``prompt_eval_count`` the same request reports when it is answered. Counting loads the model if
needed and holds a reference to its runner, but no slot: it never waits for a generation.
"""

from __future__ import annotations

from corral.api.types import ChatRequest
from corral.errors import BadRequest
from corral.service.chat import messages_from_wire, without_old_thinking
from corral.service.context import Service
from corral.service.images import pixels_of
from corral.service.render import ChatPrompt, fit_tokens, stored_messages
from corral.service.request import check_generation


async def count_chat_tokens(svc: Service, req: ChatRequest) -> int:
    job = await svc.job(
        req.model,
        req.options,
        req.keep_alive,
        think=req.think,
        truncate=req.truncate,
        shift=req.shift,
    )
    view = job.view
    msgs = without_old_thinking(messages_from_wire(req.messages or []), view)
    if not msgs:
        raise BadRequest("messages: at least one message is required")
    check_generation(job, "chat")
    long_name = view.name.display_long()
    tools = [t.model_dump() for t in req.tools or []]
    if tools and not view.template.prompt.supports_tools:
        raise BadRequest(f"{long_name} does not support tools")
    pixels = None
    if any(m.images for m in msgs):
        if "vision" not in view.capabilities:
            raise BadRequest(f"{long_name} does not support vision")
        pixels = await pixels_of([(f"message {i}", m.images) for i, m in enumerate(msgs)])
    source = ChatPrompt(
        template=view.template.prompt,
        messages=msgs,
        tools=tools,
        think=job.think,
        truncate=job.truncate,
        model_system=view.stored.system or "",
        model_messages=stored_messages(view.stored.messages),
    )
    async with svc.scheduler.use(job.ref, job.keep_alive) as lease:
        runner = lease.runner
        prompt, images = await source.render(runner)
        if images:
            wires = [(pixels or {})[i].wire() for i in images]
            return len(await runner.tokenize_media(prompt, wires))
        tokens = await fit_tokens(
            runner,
            prompt,
            truncate=job.truncate,
            num_keep=job.sampling.num_keep,
            shift=job.sampling.shift,
        )
        return len(tokens)
