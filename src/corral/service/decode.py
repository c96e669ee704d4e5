"""Step 5 of a request: the runner's token events to output text and tool calls.

Token pieces are decoded incrementally as UTF-8 and held back while they could be the start of a
stop word (:class:`~corral.textstream.StopText`); a stop word cancels the generation in the
runner. With thinking on, a :class:`~corral.thinking.ThinkingSplitter` takes the model's
reasoning out of the text; with tools, a :class:`~corral.tools.ToolParser` splits the rest into
content and calls.
The done event's counts become Ollama's metrics.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from corral.engine.types import DoneEvent, Logprob, TokenEvent, TokenRun
from corral.errors import BadRequest
from corral.service.outputs import Delta, Finished, Metrics, TokenProb
from corral.textstream import StopText
from corral.thinking import ThinkingSplitter
from corral.tools import ToolParser


class Decoder:
    """Feed one request's events in order; get deltas, then (from :meth:`finish`) the end."""

    def __init__(
        self,
        stops: Sequence[str],
        tools: ToolParser | None = None,
        *,
        start_ns: int,
        load_ns: int = 0,
        thinking: ThinkingSplitter | None = None,
    ) -> None:
        self.text = StopText(stops)
        self.thinking = thinking
        self.tools = tools
        self.start_ns = start_ns
        self.load_ns = load_ns
        self.tokens: list[int] = []
        self.done: DoneEvent | None = None

    @property
    def stopped(self) -> bool:
        """A stop word was seen: the runner should be told to stop."""
        return self.text.stopped

    def token(self, ev: TokenEvent | TokenRun) -> Delta | None:
        """The text (and tool calls) that one token, or a run of them, makes safe to send."""
        if self.text.stopped:
            return None  # decoded before the runner saw the cancel
        if isinstance(ev, TokenEvent):
            self.tokens.append(ev.token)
            probs = () if ev.logprob is None else (_prob(ev.piece, ev.logprob),)
            return self._delta(self.text.feed(ev.piece), probs)
        parts = []
        kept: list[TokenProb] = []
        for i, (token, piece) in enumerate(zip(ev.tokens, ev.pieces, strict=True)):
            self.tokens.append(token)
            parts.append(self.text.feed(piece))
            if i < len(ev.logprobs) and (lp := ev.logprobs[i]) is not None:
                kept.append(_prob(piece, lp))
            if self.text.stopped:  # what follows a stop word is never counted or sent
                break
        return self._delta("".join(parts), tuple(kept))

    def _delta(
        self, text: str, probs: tuple[TokenProb, ...] = (), *, final: bool = False
    ) -> Delta | None:
        calls: list[dict[str, object]] = []
        reasoning = ""
        if self.thinking is not None:
            reasoning, text = self.thinking.feed(text) if text else ("", "")
            if final:
                held_thinking, held_text = self.thinking.flush()
                reasoning, text = reasoning + held_thinking, text + held_text
        if self.tools is not None:
            if text:
                text, calls = self.tools.feed(text)
            if final:
                rest, more = self.tools.finish()
                text, calls = text + rest, calls + more
        if text or calls or reasoning or probs:
            return Delta(text, tuple(calls), reasoning, probs)
        return None

    def end(self, ev: DoneEvent) -> None:
        if ev.reason == "error":
            raise BadRequest(ev.error or "generation failed")
        self.done = ev

    def finish(self) -> tuple[Delta | None, Finished]:
        """The held-back text (and tool calls) and the final metrics."""
        tail = self._delta(self.text.flush(), final=True)
        ev = self.done
        reason = ev.reason if ev is not None else "stop"
        eval_count = ev.eval_count if ev is not None else len(self.tokens)
        if reason == "cancel" or self.text.stopped:
            reason, eval_count = "stop", len(self.tokens)
        metrics = Metrics(
            total_duration=time.perf_counter_ns() - self.start_ns,
            load_duration=self.load_ns,
            # Ollama counts the whole prompt, the part found in the cache included.
            prompt_eval_count=(ev.prompt_eval_count + ev.cached_tokens) if ev else 0,
            prompt_eval_duration=ev.prompt_eval_duration_ns if ev else 0,
            eval_count=eval_count,
            eval_duration=ev.eval_duration_ns if ev else 0,
        )
        return tail, Finished(reason, metrics)


def _prob(piece: bytes, lp: Logprob) -> TokenProb:
    return TokenProb(piece, lp.logprob, tuple((p, v) for _, p, v in lp.top))
