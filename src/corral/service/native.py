"""The native API's answers from pipeline outputs: ``/api/generate`` and ``/api/chat`` chunks,
and the single object a ``stream: false`` request gets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from corral.api.types import (
    ChatMessageOut,
    ChatResponse,
    DebugInfo,
    GenerateResponse,
    Logprob,
    TokenLogprob,
)
from corral.api.types import Metrics as WireMetrics
from corral.service.outputs import Ack, Delta, Finished, Metrics, Output, Rendered, TokenProb
from corral.timefmt import now_go
from corral.tools import tool_call_id


def _metrics(m: Metrics) -> WireMetrics:
    return WireMetrics(
        total_duration=m.total_duration,
        load_duration=m.load_duration,
        prompt_eval_count=m.prompt_eval_count,
        prompt_eval_duration=m.prompt_eval_duration,
        eval_count=m.eval_count,
        eval_duration=m.eval_duration,
    )


def generate_chunk(label: str, out: Output) -> GenerateResponse:
    now = now_go()
    if isinstance(out, Delta):
        return GenerateResponse(
            model=label,
            created_at=now,
            response=out.text,
            thinking=out.thinking or None,
            logprobs=wire_logprobs(out.logprobs),
        )
    if isinstance(out, Finished):
        context = list(out.context) if out.context is not None else None
        return GenerateResponse(
            model=label,
            created_at=now,
            done=True,
            done_reason=out.reason,
            context=context,
            **_metrics(out.metrics).model_dump(exclude_none=True),
        )
    if isinstance(out, Ack):
        return GenerateResponse(model=label, created_at=now, done=True, done_reason=out.reason)
    return GenerateResponse(model=label, created_at=now, debug_info=_debug(out))


def chat_chunk(label: str, out: Output) -> ChatResponse:
    now = now_go()
    if isinstance(out, Delta):
        # each call gets an id, as Ollama's (``call_`` and 8 characters), for tool_call_id
        calls = [{"id": tool_call_id(), **c} for c in out.tool_calls] or None
        message = ChatMessageOut(content=out.text, thinking=out.thinking or None, tool_calls=calls)
        return ChatResponse(
            model=label, created_at=now, message=message, logprobs=wire_logprobs(out.logprobs)
        )
    if isinstance(out, Finished):
        return ChatResponse(
            model=label,
            created_at=now,
            done=True,
            done_reason=out.reason,
            **_metrics(out.metrics).model_dump(exclude_none=True),
        )
    if isinstance(out, Ack):
        return ChatResponse(model=label, created_at=now, done=True, done_reason=out.reason)
    return ChatResponse(model=label, created_at=now, debug_info=_debug(out))


def _debug(out: Rendered) -> DebugInfo:
    return DebugInfo(rendered_template=out.prompt, image_count=out.image_count)


def merge_generate(items: Sequence[GenerateResponse]) -> GenerateResponse:
    """A whole generation as one object: the last chunk with every chunk's text."""
    final = items[-1]
    thinking = "".join(i.thinking or "" for i in items)
    return final.model_copy(
        update={
            "response": "".join(i.response for i in items),
            "thinking": thinking or None,
            "logprobs": _joined_logprobs(items),
        }
    )


def merge_chat(items: Sequence[ChatResponse]) -> ChatResponse:
    """A whole chat answer as one object: the last chunk with the joined message."""
    final = items[-1]
    calls: list[dict[str, Any]] = [c for i in items for c in i.message.tool_calls or []]
    thinking = "".join(i.message.thinking or "" for i in items)
    message = ChatMessageOut(
        content="".join(i.message.content for i in items),
        thinking=thinking or None,
        tool_calls=calls or None,
    )
    return final.model_copy(update={"message": message, "logprobs": _joined_logprobs(items)})


def _joined_logprobs(items: Sequence[GenerateResponse | ChatResponse]) -> list[Logprob] | None:
    joined = [lp for i in items for lp in i.logprobs or []]
    return joined or None


def _token(piece: bytes, logprob: float) -> TokenLogprob:
    """Ollama's token text is the piece as a string (a split UTF-8 character shows as U+FFFD);
    its ``bytes`` are the raw ones."""
    return TokenLogprob(
        token=piece.decode("utf-8", errors="replace"), logprob=logprob, bytes=list(piece) or None
    )


def wire_logprobs(probs: Sequence[TokenProb]) -> list[Logprob] | None:
    if not probs:
        return None
    out = []
    for p in probs:
        tops = [_token(piece, lp) for piece, lp in p.top] or None
        head = _token(p.piece, p.logprob)
        out.append(Logprob(**head.model_dump(), top_logprobs=tops))
    return out
