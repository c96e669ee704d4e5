"""Recognise tool calls in model output, in the syntax the model's template uses for them.

The syntax is learnt from the template itself, as Ollama does: the template is rendered with an
assistant message holding a known tool call, and the text just before the call's JSON (for
example ``<tool_call>`` or ``[TOOL_CALLS]``, or nothing for bare JSON) becomes the prefix to look
for. While output may still turn into a tool call, content is held back.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from corral.prompt import ChatMessage, PromptTemplate

_NAME = "corral_probe_tool"
_TAG = re.compile(r"(\[[A-Za-z_]+\]|<[^<>\s]+>)\s*$")
_SEPARATOR = re.compile(r"</?[A-Za-z_|]+>|\[/?[A-Z_]+\]")


@dataclass(frozen=True)
class ToolCallFormat:
    prefix: str  # "" means the call is bare JSON at the start of the answer


def infer_format(template: PromptTemplate) -> ToolCallFormat | None:
    if not template.supports_tools:
        return None
    call = {"function": {"name": _NAME, "arguments": {"corral_arg": "corral_value"}}}
    msgs = [ChatMessage("user", "hi"), ChatMessage("assistant", "", tool_calls=(call,))]
    tools = [
        {
            "type": "function",
            "function": {"name": _NAME, "description": "", "parameters": {"type": "object"}},
        }
    ]
    try:
        text = template.render(msgs, tools)
    except Exception:
        return None
    idx = text.rfind(_NAME)
    brace = text.rfind("{", 0, idx)
    if idx < 0 or brace < 0:
        return None
    before = text[:brace].rstrip().rstrip("[").rstrip()
    m = _TAG.search(before)
    if m is not None:
        tag = m.group(1)
        # a role header such as <|im_start|>assistant or <start_of_turn>model is not a prefix
        if not before.endswith(("<|end_header_id|>",)) and tag not in ("<|im_start|>",):
            return ToolCallFormat(tag)
    return ToolCallFormat("")


def _objects(text: str) -> tuple[list[Any], int, bool]:
    """Complete JSON values at the start of ``text`` (arrays flattened); returns values, end,
    and whether an unfinished value follows."""
    values: list[Any] = []
    decoder = json.JSONDecoder()
    pos = 0
    while True:
        while pos < len(text):
            if text[pos] in " \t\r\n,;":
                pos += 1
            elif m := _SEPARATOR.match(text, pos):
                pos = m.end()
            else:
                break
        if pos >= len(text):
            return values, pos, False
        if text[pos] not in "{[":
            return values, pos, False
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            return values, pos, True
        values.extend(value if isinstance(value, list) else [value])
        pos = end


def _as_call(obj: Any, names: set[str]) -> dict[str, Any] | None:
    if not isinstance(obj, Mapping):
        return None
    if isinstance(obj.get("function"), Mapping):
        obj = obj["function"]
    name = obj.get("name")
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            return None
    if not isinstance(name, str) or (names and name not in names) or not isinstance(args, dict):
        return None
    return {"function": {"name": name, "arguments": args}}


class ToolParser:
    """Split streamed text into content and tool calls."""

    def __init__(self, fmt: ToolCallFormat, tool_names: Iterable[str]) -> None:
        self.prefix = fmt.prefix
        self.names = set(tool_names)
        self._raw = ""  # everything fed while a tool call was possible
        self._buf = ""  # the unparsed rest of the calls section
        self._state = "start"  # start -> calls | content
        self.index = 0

    def feed(self, text: str) -> tuple[str, list[dict[str, Any]]]:
        if self._state == "content":
            return text, []
        self._raw += text
        if self._state == "start":
            lead = self._raw.lstrip()
            if not lead:
                return "", []
            if self.prefix and lead.startswith(self.prefix):
                self._state, self._buf = "calls", lead[len(self.prefix) :]
            elif self.prefix and self.prefix.startswith(lead):
                return "", []
            elif not self.prefix and lead[0] in "{[":
                self._state, self._buf = "calls", lead
            else:
                return self._give_up(), []
        else:
            self._buf += text
        return "", self._drain()

    def _give_up(self) -> str:
        self._state = "content"
        out, self._raw, self._buf = self._raw, "", ""
        return out

    def _drain(self) -> list[dict[str, Any]]:
        if self.prefix:
            self._buf = self._buf.replace(self.prefix, "")
        values, end, _pending = _objects(self._buf)
        self._buf = self._buf[end:]
        calls = []
        for v in values:
            call = _as_call(v, self.names)
            if call is not None:
                call["function"]["index"] = self.index
                self.index += 1
                calls.append(call)
        return calls

    def finish(self) -> tuple[str, list[dict[str, Any]]]:
        """At the end of the answer: the held-back text if it was no tool call after all."""
        if self._state == "content":
            return "", []
        if self._state == "start":
            return self._give_up(), []
        calls = self._drain()
        if self.index == 0:
            return self._give_up(), []
        return "", calls


_ID_CHARS = string.ascii_lowercase + string.digits


def tool_call_id() -> str:
    """An id for a parsed tool call, in Ollama's form: ``call_`` and 8 random characters."""
    return "call_" + "".join(secrets.choice(_ID_CHARS) for _ in range(8))
