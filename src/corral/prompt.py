"""Ollama's prompt semantics: from a request's messages to the exact prompt text.

* Consecutive messages of one role are merged (tool results excepted); all system messages are
  also joined into ``.System``.
* Templates that use ``.Messages`` get the whole conversation; legacy templates (``.System`` /
  ``.Prompt`` / ``.Response``) are run turn by turn and the last run is cut after
  ``.Response``.
* ``.Tools`` are Ollama's template structs (:mod:`corral.prompt_tools`); they, tool call
  ``Arguments`` and messages print as Go's JSON, as Ollama's types do.
* Images become ``[img-N]`` markers in the text.
* History truncation keeps the system messages and the last message and drops the oldest others.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from corral.errors import BadRequest, TemplateError
from corral.prompt_tools import to_template_tools
from corral.template import Template

Tokenize = Callable[[str], Awaitable[list[int]]]

LEGACY_TAIL = "{{ .Response }}"


def go_json(value: Any, *, sort_keys: bool = False) -> str:
    """Compact JSON with Go's HTML escaping, as ``json.Marshal`` writes it.

    Go sorts map keys; pass ``sort_keys`` for maps, and ordered dicts for structs.
    """
    text = json.dumps(
        value, separators=(",", ":"), ensure_ascii=False, default=_default, sort_keys=sort_keys
    )
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _default(obj: Any) -> Any:
    marshal = getattr(obj, "MarshalJSON", None)
    if callable(marshal):
        return json.loads(marshal())
    raise TypeError(f"cannot marshal {type(obj).__name__}")


class JSONMap(dict[str, Any]):
    """A map that prints as JSON (Ollama's templateArgs)."""

    def String(self) -> str:
        return go_json(dict(self), sort_keys=True)


@dataclass(frozen=True)
class TemplateCallFunction:
    Index: int
    Name: str
    Arguments: JSONMap


@dataclass(frozen=True)
class TemplateToolCall:
    ID: str
    Function: TemplateCallFunction


@dataclass(frozen=True)
class TemplateMessage:
    Role: str
    Content: str
    Thinking: str = ""
    Images: tuple[str, ...] = ()
    ToolCalls: tuple[TemplateToolCall, ...] = ()
    ToolName: str = ""
    ToolCallID: str = ""


@dataclass(frozen=True)
class ChatMessage:
    """A message as the server receives it (already validated)."""

    role: str
    content: str = ""
    images: tuple[str, ...] = ()
    tool_calls: tuple[Mapping[str, Any], ...] = ()
    tool_name: str = ""
    thinking: str = ""
    tool_call_id: str = ""


def _template_message(m: ChatMessage) -> TemplateMessage:
    calls = []
    for i, call in enumerate(m.tool_calls):
        fn = call.get("function") or {}
        args = fn.get("arguments") or {}
        calls.append(
            TemplateToolCall(
                ID=str(call.get("id", "")),
                Function=TemplateCallFunction(
                    Index=int(fn.get("index", i) or 0),
                    Name=str(fn.get("name", "")),
                    Arguments=JSONMap(args if isinstance(args, Mapping) else {}),
                ),
            )
        )
    return TemplateMessage(
        Role=m.role,
        Content=m.content,
        Thinking=m.thinking,
        Images=m.images,
        ToolCalls=tuple(calls),
        ToolName=m.tool_name,
        ToolCallID=m.tool_call_id,
    )


def collate(messages: Sequence[ChatMessage]) -> tuple[str, list[ChatMessage]]:
    """Join system texts; merge consecutive messages of one role (not tool results)."""
    systems = [m.content for m in messages if m.role == "system"]
    merged: list[ChatMessage] = []
    for m in messages:
        if merged and merged[-1].role == m.role and m.role != "tool":
            prev = merged[-1]
            merged[-1] = ChatMessage(
                role=prev.role,
                content=prev.content + "\n\n" + m.content,
                images=prev.images + m.images,
                tool_calls=prev.tool_calls + m.tool_calls,
                tool_name=prev.tool_name or m.tool_name,
                thinking=prev.thinking,
                tool_call_id=prev.tool_call_id or m.tool_call_id,
            )
        else:
            merged.append(m)
    return "\n\n".join(systems), merged


def tag_images(
    messages: Sequence[ChatMessage], start: int = 0
) -> tuple[list[ChatMessage], tuple[str, ...]]:
    """Put ``[img-N]`` markers into the text of messages with images (from ``start`` on);
    returns the messages and the images in marker order (image N is ``images[N]``)."""
    out = list(messages)
    images: list[str] = []
    for i in range(start, len(out)):
        m = out[i]
        if not m.images:
            continue
        content, prefix = m.content, ""
        for image in m.images:
            tag = f"[img-{len(images)}]"
            images.append(image)
            if "[img]" in content:
                content = content.replace("[img]", tag, 1)
            else:
                prefix += tag
        out[i] = ChatMessage(
            m.role, prefix + content, m.images, m.tool_calls, m.tool_name, m.thinking
        )
    return out, tuple(images)


def think_on(think: bool | str | None) -> bool:
    """Ollama's ``ThinkValue.Bool``: true, or any level."""
    return think is True or isinstance(think, str)


def think_level(think: bool | str | None) -> str:
    """Ollama's ``ThinkValue.String`` (the template's ``.ThinkLevel``): the level, ``medium``
    for ``true``, empty for ``false`` or unset."""
    if isinstance(think, str):
        return think
    return "medium" if think is True else ""


class PromptTemplate:
    """A model's template, parsed once, with Ollama's execution rules."""

    def __init__(self, text: str) -> None:
        self.text = text
        try:
            tmpl = Template.parse(text)
            if not tmpl.uses("Messages") and not tmpl.uses("Response"):
                tmpl = Template.parse(text + LEGACY_TAIL)
        except TemplateError as e:
            raise TemplateError(f"template error: {e}") from e
        self.template = tmpl
        self.chat_style = tmpl.uses("Messages")
        self.supports_tools = tmpl.uses("Tools")
        self.supports_suffix = tmpl.uses("Suffix")

    def _run(self, data: Mapping[str, Any]) -> str:
        try:
            return self.template.execute(dict(data))
        except TemplateError as e:
            raise BadRequest(f"template error: {e}") from e

    def render(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[Mapping[str, Any]] = (),
        think: bool | str | None = None,
        *,
        prompt: str = "",
        suffix: str = "",
    ) -> str:
        thinking = {
            "Think": think_on(think),
            "ThinkLevel": think_level(think),
            "IsThinkSet": think is not None,
        }
        if prompt and suffix:
            return self._run({"Prompt": prompt, "Suffix": suffix, "Response": "", **thinking})
        system, merged = collate(messages)
        if self.chat_style:
            return self._run(
                {
                    "System": system,
                    "Messages": [_template_message(m) for m in merged],
                    "Tools": to_template_tools(tools),
                    "Response": "",
                    **thinking,
                }
            )
        return self._render_legacy(merged, thinking)

    def _render_legacy(self, merged: Sequence[ChatMessage], thinking: dict[str, Any]) -> str:
        out: list[str] = []
        turn = {"System": "", "Prompt": "", "Response": ""}

        def flush() -> None:
            out.append(self._run({**turn, **thinking}))
            turn.update(System="", Prompt="", Response="")

        for m in merged:
            if m.role == "system":
                if turn["Prompt"] or turn["Response"]:
                    flush()
                turn["System"] = m.content
            elif m.role == "user":
                if turn["Response"]:
                    flush()
                turn["Prompt"] = m.content
            elif m.role == "assistant":
                turn["Response"] = m.content
        out.append(self._cut_after_response({**turn, **thinking}))
        return "".join(out)

    def _cut_after_response(self, data: Mapping[str, Any]) -> str:
        """Render the last turn with everything after the first ``.Response`` removed."""
        marker = "\x00corral-response-cut\x00"
        text = self._run({**data, "Response": marker})
        head, found, _ = text.partition(marker)
        return head + str(data["Response"]) if found else text


async def chat_prompt(
    template: PromptTemplate,
    messages: Sequence[ChatMessage],
    tools: Sequence[Mapping[str, Any]],
    think: bool | str | None,
    tokenize: Tokenize,
    num_ctx: int,
    truncate: bool = True,
    image_tokens: int = 0,
) -> tuple[str, tuple[str, ...]]:
    """The prompt for ``messages``, dropping the oldest non-system messages (with their
    images, each counted as ``image_tokens``) until it fits; and the images it holds.

    The first kept message is searched from the end, as Ollama does, but by doubling and then
    bisecting the number of kept messages: a few renders of about what fits, so a history of
    100k messages costs no more than one that fits (never one render per dropped message).
    """

    async def fits(i: int) -> bool:
        kept = [m for m in messages[:i] if m.role == "system"] + list(messages[i:])
        text = template.render(kept, tools, think)
        n_images = sum(len(m.images) for m in kept)
        return len(await tokenize(text)) + n_images * image_tokens <= num_ctx

    last = len(messages) - 1
    start = 0
    if last >= 0 and not truncate:
        if not await fits(0):
            raise BadRequest("the input length exceeds the context length")
    elif last > 0:
        good, bad, size = last, -1, 1  # the last message is kept even if it alone does not fit
        while good > 0:
            size *= 2
            i = max(last + 1 - size, 0)
            if not await fits(i):
                bad = i
                break
            good = i
        while good - bad > 1:  # fits(good) (or good == last), not fits(bad)
            mid = (good + bad) // 2
            if await fits(mid):
                good = mid
            else:
                bad = mid
        start = good
    tagged, images = tag_images(messages, start)
    systems = [m for m in messages[:start] if m.role == "system"]
    return template.render(systems + tagged[start:], tools, think), images
