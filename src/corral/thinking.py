"""A model's reasoning, told apart from its answer: the think tags a template implies and a
streaming splitter for the text the model writes.

Ollama's rules, which this module follows:

* The tags are learnt from the template: find ``.Thinking`` used inside a ``range`` over
  ``.Messages``; the list of nodes around it, if it begins and ends with text, gives the opening
  and closing tags (whitespace trimmed). The last such use in the template decides.
* The splitter skips leading whitespace, then expects the opening tag. Text that does not begin
  with it is all answer. After the opening tag, whitespace is dropped, then everything up to the
  closing tag is thinking; whitespace after the closing tag is dropped too, the rest is answer.
* A tag may arrive split over any number of tokens: text that could still be the start of the tag
  being looked for is held back until it is decided.
* When the rendered prompt already ends with the opening tag (templates that open the think block
  for the model), the splitter starts inside it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from corral.template import Template
from corral.template.nodes import (
    ActionNode,
    AnyNode,
    ChainNode,
    CommandNode,
    FieldNode,
    IfNode,
    ListNode,
    PipeNode,
    RangeNode,
    TemplateNode,
    TextNode,
    WithNode,
)


@dataclass(frozen=True)
class ThinkTags:
    opening: str
    closing: str


def _children(node: AnyNode) -> Iterator[AnyNode]:
    if isinstance(node, ListNode):
        yield from node.nodes
    elif isinstance(node, ActionNode | TemplateNode):
        if node.pipe is not None:
            yield node.pipe
    elif isinstance(node, IfNode | RangeNode | WithNode):
        yield node.pipe
        yield node.list
        if node.else_list is not None:
            yield node.else_list
    elif isinstance(node, PipeNode):
        yield from node.cmds
    elif isinstance(node, CommandNode):
        yield from node.args
    elif isinstance(node, ChainNode):
        yield node.node


def _uses_field(node: AnyNode, name: str) -> bool:
    if isinstance(node, FieldNode) and node.ident and node.ident[0] == name:
        return True
    return any(_uses_field(c, name) for c in _children(node))


def infer_tags(template: Template) -> ThinkTags | None:
    """The think tags ``template`` implies, or ``None`` when it does not render ``.Thinking``
    inside a ``range`` over ``.Messages`` between two pieces of text."""
    opening = closing = ""

    def visit(node: AnyNode, ancestors: list[AnyNode]) -> None:
        nonlocal opening, closing
        if isinstance(node, FieldNode) and node.ident and node.ident[0] == "Thinking":
            ranges = [a for a in ancestors if isinstance(a, RangeNode)]
            if ranges and _uses_field(ranges[-1].pipe, "Messages"):
                around = next((a for a in reversed(ancestors) if isinstance(a, ListNode)), None)
                if around is not None and around.nodes:
                    first, last = around.nodes[0], around.nodes[-1]
                    if isinstance(first, TextNode):
                        opening = first.text.strip()
                    if isinstance(last, TextNode):
                        closing = last.text.strip()
        ancestors.append(node)
        for child in _children(node):
            visit(child, ancestors)
        ancestors.pop()

    visit(template.root, [])
    if not opening or not closing:
        return None
    return ThinkTags(opening, closing)


class _State(enum.Enum):
    BEFORE = enum.auto()  # whitespace only so far; the opening tag may still come
    OPENED = enum.auto()  # after the opening tag, dropping whitespace
    THINKING = enum.auto()
    CLOSED = enum.auto()  # after the closing tag, dropping whitespace
    ANSWER = enum.auto()


def _held_prefix(text: str, tag: str) -> int:
    """How many characters at the end of ``text`` could begin ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


class ThinkingSplitter:
    """Feed the model's text in pieces; get ``(thinking, answer)`` for each as soon as it is
    unambiguous; :meth:`flush` at the end gives back anything still held."""

    def __init__(self, tags: ThinkTags, *, opened: bool = False) -> None:
        self.tags = tags
        self.state = _State.OPENED if opened else _State.BEFORE
        self.pending = ""

    def feed(self, text: str) -> tuple[str, str]:
        self.pending += text
        thinking: list[str] = []
        answer: list[str] = []
        while self._step(thinking, answer):
            pass
        return "".join(thinking), "".join(answer)

    def _step(self, thinking: list[str], answer: list[str]) -> bool:
        """One transition; true when another may follow on the text still pending."""
        text, tags = self.pending, self.tags
        if self.state is _State.BEFORE:
            stripped = text.lstrip()
            if stripped.startswith(tags.opening):
                self.pending = stripped[len(tags.opening) :]
                self.state = _State.OPENED
                return True
            if tags.opening.startswith(stripped):  # only whitespace, or part of the tag
                return False
            self.state, self.pending = _State.ANSWER, ""
            answer.append(text)  # no think block: the answer keeps its whitespace
            return False
        if self.state is _State.OPENED:
            self.pending = text.lstrip()
            if not self.pending:
                return False
            self.state = _State.THINKING
            return True
        if self.state is _State.THINKING:
            at = text.find(tags.closing)
            if at >= 0:
                thinking.append(text[:at])
                self.pending = text[at + len(tags.closing) :]
                self.state = _State.CLOSED
                return True
            held = _held_prefix(text, tags.closing)
            thinking.append(text[: len(text) - held])
            self.pending = text[len(text) - held :]
            return False
        if self.state is _State.CLOSED:
            rest = text.lstrip()
            self.pending = ""
            if rest:
                self.state = _State.ANSWER
                answer.append(rest)
            return False
        self.pending = ""
        answer.append(text)
        return False

    def flush(self) -> tuple[str, str]:
        """What is held at the end: an unfinished closing tag is thinking; text before any
        opening tag was answer."""
        text, self.pending = self.pending, ""
        if self.state is _State.THINKING:
            return text, ""
        if self.state is _State.BEFORE:
            return "", text
        return "", ""


def strip_thinking(text: str, tags: ThinkTags) -> str:
    """The answer part of a whole message (earlier turns sent back without their reasoning)."""
    splitter = ThinkingSplitter(tags)
    _, answer = splitter.feed(text)
    return answer + splitter.flush()[1]


def split_all(pieces: Sequence[str], tags: ThinkTags, *, opened: bool = False) -> tuple[str, str]:
    """The whole thinking and answer of a finished text given in pieces (for tests and tools)."""
    splitter = ThinkingSplitter(tags, opened=opened)
    thinking, answer = [], []
    for piece in pieces:
        t, a = splitter.feed(piece)
        thinking.append(t)
        answer.append(a)
    t, a = splitter.flush()
    return "".join(thinking) + t, "".join(answer) + a
