"""``/api/chat`` (and ``/v1/chat/completions``) on the pipeline: messages, tools, chunks."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncGenerator, Sequence

from corral.api.types import ChatRequest, ChatResponse, Message
from corral.errors import BadRequest
from corral.prompt import ChatMessage
from corral.service import pipeline
from corral.service.context import Service
from corral.service.images import pixels_of
from corral.service.models import ModelView
from corral.service.native import chat_chunk
from corral.service.outputs import Ack
from corral.service.render import ChatPrompt, stored_messages
from corral.service.request import (
    check_generation,
    check_logprobs,
    grammar_for,
    with_grammar,
    with_logprobs,
)
from corral.thinking import ThinkTags, strip_thinking
from corral.tools import ToolParser

ROLES = ("system", "user", "assistant", "tool")


def messages_from_wire(msgs: Sequence[Message]) -> list[ChatMessage]:
    out = []
    for m in msgs:
        if m.role not in ROLES:
            raise BadRequest(f'invalid role "{m.role}"')
        calls = tuple(c.model_dump(exclude_none=True) for c in m.tool_calls or [])
        out.append(
            ChatMessage(
                m.role,
                m.content or "",
                tuple(m.images or ()),
                calls,
                m.tool_name or "",
                m.thinking or "",
                m.tool_call_id or "",
            )
        )
    return out


_THINK = ThinkTags("<think>", "</think>")


def without_old_thinking(msgs: list[ChatMessage], view: ModelView) -> list[ChatMessage]:
    """Ollama drops ``<think>`` blocks from the assistant turns before the last user turn for
    the qwen3 family and deepseek-r1 (they were trained to see their history so)."""
    family = str(view.stored.config.get("model_family") or "")
    if family != "qwen3" and view.name.model != "deepseek-r1":
        return msgs
    last_user = max((i for i, m in enumerate(msgs) if m.role == "user"), default=-1)
    return [
        dataclasses.replace(m, content=strip_thinking(m.content, _THINK))
        if m.role == "assistant" and i < last_user
        else m
        for i, m in enumerate(msgs)
    ]


async def chat(svc: Service, req: ChatRequest) -> AsyncGenerator[ChatResponse, None]:
    check_logprobs(req.top_logprobs)
    job = await svc.job(
        req.model,
        req.options,
        req.keep_alive,
        think=req.think,
        truncate=req.truncate,
        shift=req.shift,
    )
    view, label = job.view, job.label
    msgs = without_old_thinking(messages_from_wire(req.messages or []), view)
    if not msgs and req.keep_alive is not None and job.keep_alive == 0:
        await svc.scheduler.unload(job.ref.key)
        yield chat_chunk(label, Ack("unload"))
        return
    check_generation(job, "chat")
    template = view.template
    long_name = view.name.display_long()
    tools = [t.model_dump() for t in req.tools or []]
    if tools and not template.prompt.supports_tools:
        raise BadRequest(f"{long_name} does not support tools")
    pixels = None
    if any(m.images for m in msgs):
        if "vision" not in view.capabilities:
            raise BadRequest(f"{long_name} does not support vision")
        pixels = await pixels_of([(f"message {i}", m.images) for i, m in enumerate(msgs)])
    job = with_grammar(job, await grammar_for(req.format))
    job = with_logprobs(job, req.logprobs, req.top_logprobs)
    parser = None
    if tools and template.tool_format is not None:
        names = [str(t["function"].get("name", "")) for t in tools]
        parser = ToolParser(template.tool_format, names)
    source = ChatPrompt(
        template=template.prompt,
        messages=msgs,
        tools=tools,
        think=job.think,
        truncate=job.truncate,
        model_system=view.stored.system or "",
        model_messages=stored_messages(view.stored.messages),
    )
    outputs = pipeline.generate(
        svc.scheduler,
        job,
        source,
        tools=parser,
        debug_render_only=req.debug_render_only,
        pixels=pixels,
        think_tags=template.think_tags,
    )
    async with contextlib.aclosing(outputs):
        async for out in outputs:
            yield chat_chunk(label, out)
