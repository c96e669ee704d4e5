"""The :class:`Template` value: parse once, execute many times, inspect what it references."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any

from corral.errors import TemplateError
from corral.template.exec import execute
from corral.template.funcs import FUNC_NAMES
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
    VariableNode,
    WithNode,
)
from corral.template.parser import parse

__all__ = ["Template"]


def _walk(node: AnyNode | None) -> Iterator[AnyNode]:
    """Every node reachable from ``node`` (not following ``{{template}}`` calls)."""
    if node is None:
        return
    yield node
    if isinstance(node, ListNode):
        for child in node.nodes:
            yield from _walk(child)
    elif isinstance(node, ActionNode):
        yield from _walk(node.pipe)
    elif isinstance(node, (IfNode, RangeNode, WithNode)):
        yield from _walk(node.pipe)
        yield from _walk(node.list)
        yield from _walk(node.else_list)
    elif isinstance(node, TemplateNode):
        yield from _walk(node.pipe)
    elif isinstance(node, PipeNode):
        for cmd in node.cmds:
            yield from _walk(cmd)
    elif isinstance(node, CommandNode):
        for arg in node.args:
            yield from _walk(arg)
    elif isinstance(node, ChainNode):
        yield from _walk(node.node)


def _ollama_identifiers(node: AnyNode) -> Iterator[str]:
    """Ollama's ``template.Identifiers`` walk (it skips chain nodes and declarations)."""
    if isinstance(node, ListNode):
        for child in node.nodes:
            yield from _ollama_identifiers(child)
    elif isinstance(node, TemplateNode):
        if node.pipe is None:
            raise TemplateError("undefined template specified")
        yield from _ollama_identifiers(node.pipe)
    elif isinstance(node, ActionNode):
        yield from _ollama_identifiers(node.pipe)
    elif isinstance(node, (IfNode, RangeNode, WithNode)):
        yield from _ollama_identifiers(node.pipe)
        yield from _ollama_identifiers(node.list)
        if node.else_list is not None:
            yield from _ollama_identifiers(node.else_list)
    elif isinstance(node, PipeNode):
        for cmd in node.cmds:
            for arg in cmd.args:
                yield from _ollama_identifiers(arg)
    elif isinstance(node, (FieldNode, VariableNode)):
        yield from node.ident


@dataclass(frozen=True, eq=False)
class Template:
    """A parsed Go ``text/template``.

    ``root`` is the main template's AST; ``defines`` holds the templates named by
    ``{{define}}``/``{{block}}`` (the main one excluded). Build one with :meth:`parse`; derive
    a modified one with ``dataclasses.replace(t, root=...)``.
    """

    name: str
    text: str = field(repr=False)
    root: ListNode = field(repr=False)
    defines: Mapping[str, ListNode] = field(repr=False, default_factory=dict)

    @classmethod
    def parse(cls, text: str, name: str = "") -> Template:
        """Parse ``text``; raises :class:`~corral.errors.TemplateError` with Go's message."""
        result = parse(text, name, FUNC_NAMES)
        defines = {k: v for k, v in result.defines.items() if k != name}
        return cls(name, text, result.root, MappingProxyType(defines))

    def execute(self, data: Any) -> str:
        """Render the template with ``data`` as dot; raises :class:`TemplateError`."""
        return execute(self.root, self.defines, self.text, self.name, data)

    def __str__(self) -> str:
        return self.text

    def _trees(self) -> Iterator[ListNode]:
        yield self.root
        yield from self.defines.values()

    @cached_property
    def _identifiers(self) -> frozenset[str]:
        names: set[str] = set()
        for tree in self._trees():
            for node in _walk(tree):
                if isinstance(node, FieldNode):
                    names.add(node.ident[0])
                elif isinstance(node, VariableNode) and node.ident[0] == "$" and node.ident[1:]:
                    names.add(node.ident[1])
        return frozenset(names)

    def identifiers(self) -> frozenset[str]:
        """Names used as the first field of ``.Name...`` or ``$.Name...`` anywhere.

        Dot is only known at run time, so ``.Role`` inside ``{{range .Messages}}`` counts too.
        """
        return self._identifiers

    def uses(self, field_name: str) -> bool:
        """Whether the template references ``.field_name`` or ``$.field_name`` anywhere."""
        return field_name in self._identifiers

    def vars(self) -> list[str]:
        """Ollama's ``Template.Vars``: every field and variable name, lowercased, sorted.

        Raises :class:`TemplateError` for a ``{{template}}`` call without a pipeline, as
        Ollama's template parsing does ("undefined template specified").
        """
        names: set[str] = set()
        for tree in self._trees():
            names.update(ident.lower() for ident in _ollama_identifiers(tree))
        return sorted(names)
