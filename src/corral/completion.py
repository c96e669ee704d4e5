"""The /api/generate and /api/chat flows on top of :mod:`corral.inference`."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from typing import Any

from corral.api.types import ChatRequest, GenerateRequest
from corral.errors import BadRequest
from corral.inference import (
    Inference,
    Resolved,
    Stats,
    grammar_for,
    messages_from_wire,
    now_iso,
    run_tokens,
    runner_key,
    sampling_params,
)
from corral.prompt import ChatMessage, PromptTemplate, chat_prompt, tag_images
from corral.scheduler import Lease
from corral.tools import ToolParser, infer_format

Chunk = dict[str, Any]


def _think_flag(think: bool | str | None) -> bool | None:
    if think is None:
        return None
    if isinstance(think, str):
        if think not in ("high", "medium", "low"):
            raise BadRequest(
                f'invalid think value: "{think}" (must be "high", "medium", "low", true, or false)'
            )
        return True
    return think


def _check_think(inf: Inference, r: Resolved, think: bool | None) -> None:
    if think and "thinking" not in inf.capabilities(r):
        raise BadRequest(f'"{r.label}" does not support thinking')


async def fit_tokens(lease: Lease, prompt: str, r: Resolved, truncate: bool) -> list[int]:
    tokens = await lease.runner.tokenize(prompt)
    n_ctx = lease.runner.n_ctx
    if len(tokens) >= n_ctx:
        if not truncate:
            raise BadRequest("the input length exceeds the context length")
        keep = min(int(r.options.get("num_keep", 4)), n_ctx // 2)
        tail = n_ctx - keep - max(n_ctx // 8, 1)
        tokens = tokens[:keep] + tokens[-tail:]
    return tokens


async def generate(inf: Inference, req: GenerateRequest) -> AsyncGenerator[Chunk, None]:
    start = time.perf_counter_ns()
    if req.raw and (req.template or req.system or req.context):
        raise BadRequest("raw mode does not support template, system, or context")
    r = inf.resolve(req.model, req.options, req.keep_alive)
    label = req.model or ""
    if not req.prompt and req.keep_alive is not None and r.keep_alive == 0:
        await inf.scheduler.unload(runner_key(r))
        yield {
            "model": label,
            "created_at": now_iso(),
            "response": "",
            "done": True,
            "done_reason": "unload",
        }
        return
    if r.spec.embedding:
        raise BadRequest(f'"{label}" does not support generate')
    think = _think_flag(req.think)
    _check_think(inf, r, think)
    tmpl = inf.template(r, req.template)
    if req.suffix and not req.raw and not tmpl.supports_suffix:
        raise BadRequest(f"{r.model.name.display_long()} does not support insert")
    if req.images:
        inf.check_capability(r, "vision")
    grammar = grammar_for(req.format)
    stats = Stats(start)
    async with inf.use(r, generating=True) as lease:
        stats.load_ns = lease.load_duration_ns
        if not req.prompt and not req.images:
            yield {
                "model": label,
                "created_at": now_iso(),
                "response": "",
                "done": True,
                "done_reason": "load",
            }
            return
        prompt, images = await _generate_prompt(req, r, tmpl, lease, think)
        if req.debug_render_only:
            yield {
                "model": label,
                "created_at": now_iso(),
                "response": "",
                "done": False,
                "debug_info": {"rendered_template": prompt, "image_count": images},
            }
            return
        tokens = await fit_tokens(lease, prompt, r, req.truncate is not False)
        out: list[int] = []
        sampling = sampling_params(r.options, grammar)
        async for piece, reason in run_tokens(
            lease, tokens, sampling, r.options.get("stop") or [], stats, out
        ):
            if reason is None:
                yield {"model": label, "created_at": now_iso(), "response": piece, "done": False}
            else:
                yield {
                    "model": label,
                    "created_at": now_iso(),
                    "response": "",
                    **stats.final(reason),
                    "context": tokens + out,
                }


async def _generate_prompt(
    req: GenerateRequest, r: Resolved, tmpl: PromptTemplate, lease: Lease, think: bool | None
) -> tuple[str, int]:
    if req.raw:
        return req.prompt, len(req.images or [])
    if req.suffix:
        return tmpl.render([], think=think, prompt=req.prompt, suffix=req.suffix), 0
    msgs: list[ChatMessage] = []
    system = req.system or r.model.system
    if system:
        msgs.append(ChatMessage("system", system))
    if req.context is None:
        msgs += [
            ChatMessage(str(m.get("role", "")), str(m.get("content", ""))) for m in r.model.messages
        ]
    msgs.append(ChatMessage("user", req.prompt, tuple(req.images or ())))
    if req.template:
        tagged, count = tag_images(msgs)
        prompt = tmpl.render(tagged, think=think)
    else:
        prompt, count = await chat_prompt(
            tmpl,
            msgs,
            [],
            think,
            lease.runner.tokenize,
            lease.runner.n_ctx,
            req.truncate is not False,
        )
    if req.context:
        prompt = await lease.runner.detokenize(list(req.context)) + prompt
    return prompt, count


async def chat(inf: Inference, req: ChatRequest) -> AsyncGenerator[Chunk, None]:
    start = time.perf_counter_ns()
    r = inf.resolve(req.model, req.options, req.keep_alive)
    label = req.model or ""
    msgs = messages_from_wire(req.messages or [])
    if not msgs and req.keep_alive is not None and r.keep_alive == 0:
        await inf.scheduler.unload(runner_key(r))
        yield {
            "model": label,
            "created_at": now_iso(),
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "unload",
        }
        return
    if r.spec.embedding:
        raise BadRequest(f'"{label}" does not support chat')
    think = _think_flag(req.think)
    _check_think(inf, r, think)
    tmpl = inf.template(r)
    tools = [t.model_dump() for t in req.tools or []]
    if tools and not tmpl.supports_tools:
        raise BadRequest(f"{r.model.name.display_long()} does not support tools")
    if any(m.images for m in msgs):
        inf.check_capability(r, "vision")
    grammar = grammar_for(req.format)
    stats = Stats(start)
    async with inf.use(r, generating=True) as lease:
        stats.load_ns = lease.load_duration_ns
        if not msgs:
            yield {
                "model": label,
                "created_at": now_iso(),
                "message": {"role": "assistant", "content": ""},
                "done": True,
                "done_reason": "load",
            }
            return
        base = [ChatMessage("system", r.model.system)] if r.model.system else []
        if base and any(m.role == "system" for m in msgs):
            base = []
        base += [
            ChatMessage(str(m.get("role", "")), str(m.get("content", ""))) for m in r.model.messages
        ]
        prompt, images = await chat_prompt(
            tmpl,
            base + msgs,
            tools,
            think,
            lease.runner.tokenize,
            lease.runner.n_ctx,
            req.truncate is not False,
        )
        if req.debug_render_only:
            yield {
                "model": label,
                "created_at": now_iso(),
                "message": {"role": "assistant", "content": ""},
                "done": False,
                "debug_info": {"rendered_template": prompt, "image_count": images},
            }
            return
        tokens = await fit_tokens(lease, prompt, r, req.truncate is not False)
        fmt = infer_format(tmpl) if tools else None
        parser = (
            ToolParser(fmt, [str(t["function"].get("name", "")) for t in tools])
            if fmt is not None
            else None
        )
        sampling = sampling_params(r.options, grammar)
        out: list[int] = []
        async for piece, reason in run_tokens(
            lease, tokens, sampling, r.options.get("stop") or [], stats, out
        ):
            content, calls = piece, list[dict[str, Any]]()
            if parser is not None:
                content, calls = parser.feed(piece) if reason is None else parser.finish()
            if content or calls:
                msg: dict[str, Any] = {"role": "assistant", "content": content}
                if calls:
                    msg["tool_calls"] = calls
                yield {"model": label, "created_at": now_iso(), "message": msg, "done": False}
            if reason is not None:
                yield {
                    "model": label,
                    "created_at": now_iso(),
                    "message": {"role": "assistant", "content": ""},
                    **stats.final(reason),
                }
