"""Step 3 of a request: the prompt text, rendered from the model's template with Ollama's
semantics (:mod:`corral.prompt`), then tokenized and fitted to the context.

Rendering needs the runner's tokenizer (history is truncated to ``num_ctx`` by token count), so it
runs once the request holds a runner and a slot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from corral.errors import BadRequest
from corral.prompt import ChatMessage, PromptTemplate, chat_prompt, tag_images
from corral.scheduler import Runner


class PromptSource(Protocol):
    """How one kind of request turns into prompt text."""

    @property
    def empty(self) -> bool:
        """Nothing to generate: the request only loads the model."""
        ...

    async def render(self, runner: Runner) -> tuple[str, tuple[str, ...]]:
        """The prompt text and the images it holds (image N stands at its ``[img-N]``)."""
        ...


@dataclass(frozen=True)
class ChatPrompt:
    """A conversation: the model's system prompt and messages, then the request's."""

    template: PromptTemplate
    messages: Sequence[ChatMessage]
    tools: Sequence[Mapping[str, Any]] = ()
    think: bool | str | None = None
    truncate: bool = True
    model_system: str = ""
    model_messages: Sequence[ChatMessage] = ()

    @property
    def empty(self) -> bool:
        return not self.messages

    async def render(self, runner: Runner) -> tuple[str, tuple[str, ...]]:
        base = [ChatMessage("system", self.model_system)] if self.model_system else []
        if base and any(m.role == "system" for m in self.messages):
            base = []
        return await chat_prompt(
            self.template,
            [*base, *self.model_messages, *self.messages],
            self.tools,
            self.think,
            runner.tokenize,
            runner.n_ctx,
            self.truncate,
            image_tokens(runner),
        )


@dataclass(frozen=True)
class GeneratePrompt:
    """``/api/generate``: a prompt (raw, with a suffix, or as one user turn), with the model's
    or the request's system prompt and an optional ``context`` from an earlier answer."""

    template: PromptTemplate
    prompt: str
    images: tuple[str, ...] = ()
    system: str = ""
    raw: bool = False
    suffix: str = ""
    context: tuple[int, ...] | None = None
    custom_template: bool = False
    model_messages: Sequence[ChatMessage] = field(default_factory=tuple)
    think: bool | str | None = None
    truncate: bool = True

    @property
    def empty(self) -> bool:
        return not self.prompt and not self.images

    async def render(self, runner: Runner) -> tuple[str, tuple[str, ...]]:
        if self.raw:
            return self.prompt, self.images
        if self.suffix:
            text = self.template.render(
                [], think=self.think, prompt=self.prompt, suffix=self.suffix
            )
            return text, ()
        msgs: list[ChatMessage] = []
        if self.system:
            msgs.append(ChatMessage("system", self.system))
        if self.context is None:
            msgs += self.model_messages
        msgs.append(ChatMessage("user", self.prompt, self.images))
        if self.custom_template:
            tagged, images = tag_images(msgs)
            text = self.template.render(tagged, think=self.think)
        else:
            text, images = await chat_prompt(
                self.template,
                msgs,
                [],
                self.think,
                runner.tokenize,
                runner.n_ctx,
                self.truncate,
                image_tokens(runner),
            )
        if self.context:
            check_context(self.context, runner)
            text = await runner.detokenize(list(self.context)) + text
        return text, images


def check_context(tokens: Sequence[int], runner: Runner) -> None:
    """A ``context`` holds token ids of the model's vocabulary: llama.cpp would read any other id
    out of bounds (and abort the runner)."""
    n_vocab = int(runner.info.get("n_vocab") or 0)
    if n_vocab and any(t < 0 or t >= n_vocab for t in tokens):
        raise BadRequest("context holds a token id outside the model's vocabulary")


def image_tokens(runner: Runner) -> int:
    """How many context positions one image takes in this runner (0 without a projector)."""
    return int(runner.info.get("image_tokens") or 0)


def stored_messages(raw: Sequence[Mapping[str, Any]]) -> tuple[ChatMessage, ...]:
    """A model's ``MESSAGE`` history, as it opens every conversation."""
    return tuple(ChatMessage(str(m.get("role", "")), str(m.get("content", ""))) for m in raw)


PROMPT_TOO_LONG = (
    "the prompt is longer than the context length currently available to the model; shorten "
    "the prompt, adjust the context length in settings, or use a model with a longer context "
    "length"
)


async def fit_tokens(
    runner: Runner, prompt: str, *, truncate: bool, num_keep: int, shift: bool = True
) -> list[int]:
    """The prompt's tokens, cut to leave room in the context (keep ``num_keep`` tokens at the
    start and the most recent rest) unless ``truncate`` is false; without ``shift`` a prompt
    that does not fit is refused, as Ollama refuses it when context shifting is off."""
    tokens = await runner.tokenize(prompt)
    n_ctx = runner.n_ctx
    if len(tokens) >= n_ctx:
        if not truncate:
            raise BadRequest("the input length exceeds the context length")
        if not shift:
            raise BadRequest(PROMPT_TOO_LONG)
        keep = max(0, min(num_keep, n_ctx // 2))
        tail = n_ctx - keep - max(n_ctx // 8, 1)
        tokens = tokens[:keep] + tokens[-tail:]
    return tokens
