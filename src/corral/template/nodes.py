"""The public AST of a parsed template: one frozen dataclass per Go ``text/template/parse`` node.

Positions (``pos``) are character offsets into the template source. Node kinds mirror Go's
``parse`` package; :func:`node_string` renders a node back to template syntax exactly as Go's
``Node.String`` does (used as the ``<context>`` of execution errors).
"""

from __future__ import annotations

from dataclasses import dataclass

from corral.template.gostr import quote


@dataclass(frozen=True, slots=True)
class TextNode:
    """Literal text copied to the output."""

    pos: int
    text: str


@dataclass(frozen=True, slots=True)
class FieldNode:
    """``.A.B.C``: a field chain rooted at dot; ``ident`` holds the names without dots."""

    pos: int
    ident: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class VariableNode:
    """``$x`` or ``$x.A.B``; ``ident[0]`` is the variable name including ``$``."""

    pos: int
    ident: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ChainNode:
    """``(pipeline).A.B`` or ``term.A``: field accesses on the result of a term."""

    pos: int
    node: Arg
    field: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class IdentifierNode:
    """A function name."""

    pos: int
    name: str


@dataclass(frozen=True, slots=True)
class DotNode:
    """The cursor, ``.``."""

    pos: int


@dataclass(frozen=True, slots=True)
class NilNode:
    """The untyped ``nil`` constant."""

    pos: int


@dataclass(frozen=True, slots=True)
class BoolNode:
    """``true`` or ``false``."""

    pos: int
    value: bool


@dataclass(frozen=True, slots=True)
class NumberNode:
    """A numeric or character constant.

    ``value`` is what the constant evaluates to with no type context (Go's "ideal constant"
    rules: int unless the text has ``.``/``e``/``p``; characters are ints; ``i`` makes complex).
    ``value`` is None when the constant is an integer that overflows Go's int (an execution
    error, as in Go).
    """

    pos: int
    text: str
    value: int | float | complex | None


@dataclass(frozen=True, slots=True)
class StringNode:
    """A string constant; ``quoted`` is the source spelling, ``text`` the unquoted value."""

    pos: int
    quoted: str
    text: str


@dataclass(frozen=True, slots=True)
class CommandNode:
    """One stage of a pipeline: a function, field or value followed by its arguments."""

    pos: int
    args: tuple[Arg, ...]


@dataclass(frozen=True, slots=True)
class PipeNode:
    """``$a, $b := cmd | cmd``; also a parenthesised argument."""

    pos: int
    decl: tuple[VariableNode, ...]
    is_assign: bool
    cmds: tuple[CommandNode, ...]


@dataclass(frozen=True, slots=True)
class ActionNode:
    """``{{pipeline}}``: evaluated and printed unless it declares variables."""

    pos: int
    pipe: PipeNode


@dataclass(frozen=True, slots=True)
class ListNode:
    """A sequence of nodes."""

    pos: int
    nodes: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class IfNode:
    """``{{if pipeline}} list {{else}} else_list {{end}}`` (``else if`` nests an IfNode)."""

    pos: int
    pipe: PipeNode
    list: ListNode
    else_list: ListNode | None


@dataclass(frozen=True, slots=True)
class RangeNode:
    """``{{range pipeline}} list {{else}} else_list {{end}}``."""

    pos: int
    pipe: PipeNode
    list: ListNode
    else_list: ListNode | None


@dataclass(frozen=True, slots=True)
class WithNode:
    """``{{with pipeline}} list {{else}} else_list {{end}}`` (``else with`` nests a WithNode)."""

    pos: int
    pipe: PipeNode
    list: ListNode
    else_list: ListNode | None


@dataclass(frozen=True, slots=True)
class TemplateNode:
    """``{{template "name" pipeline}}`` (also produced by ``{{block}}``)."""

    pos: int
    name: str
    pipe: PipeNode | None


@dataclass(frozen=True, slots=True)
class BreakNode:
    """``{{break}}`` inside a range."""

    pos: int


@dataclass(frozen=True, slots=True)
class ContinueNode:
    """``{{continue}}`` inside a range."""

    pos: int


Arg = (
    FieldNode
    | VariableNode
    | ChainNode
    | IdentifierNode
    | DotNode
    | NilNode
    | BoolNode
    | NumberNode
    | StringNode
    | PipeNode
)
"""Anything that can appear as a command argument."""

Node = (
    TextNode
    | ActionNode
    | IfNode
    | RangeNode
    | WithNode
    | TemplateNode
    | BreakNode
    | ContinueNode
    | ListNode
)
"""Anything that can appear in a list of nodes."""

AnyNode = Arg | Node | CommandNode


def _pipe_string(pipe: PipeNode) -> str:
    prefix = ""
    if pipe.decl:
        prefix = ", ".join(node_string(v) for v in pipe.decl) + " := "
    return prefix + " | ".join(node_string(c) for c in pipe.cmds)


def _arg_string(arg: Arg) -> str:
    if isinstance(arg, PipeNode):
        return "(" + _pipe_string(arg) + ")"
    return node_string(arg)


def _branch_string(keyword: str, node: IfNode | RangeNode | WithNode) -> str:
    text = "{{" + keyword + " " + _pipe_string(node.pipe) + "}}" + node_string(node.list)
    if node.else_list is not None:
        text += "{{else}}" + node_string(node.else_list)
    return text + "{{end}}"


def node_string(node: AnyNode) -> str:
    """Render ``node`` as template source the way Go's ``Node.String`` does."""
    if isinstance(node, TextNode):
        return node.text
    if isinstance(node, FieldNode):
        return "".join("." + name for name in node.ident)
    if isinstance(node, VariableNode):
        return ".".join(node.ident)
    if isinstance(node, ChainNode):
        return _arg_string(node.node) + "".join("." + name for name in node.field)
    if isinstance(node, IdentifierNode):
        return node.name
    if isinstance(node, DotNode):
        return "."
    if isinstance(node, NilNode):
        return "nil"
    if isinstance(node, BoolNode):
        return "true" if node.value else "false"
    if isinstance(node, NumberNode):
        return node.text
    if isinstance(node, StringNode):
        return node.quoted
    if isinstance(node, CommandNode):
        return " ".join(_arg_string(a) for a in node.args)
    if isinstance(node, PipeNode):
        return _pipe_string(node)
    if isinstance(node, ActionNode):
        return "{{" + _pipe_string(node.pipe) + "}}"
    if isinstance(node, ListNode):
        return "".join(node_string(n) for n in node.nodes)
    if isinstance(node, IfNode):
        return _branch_string("if", node)
    if isinstance(node, RangeNode):
        return _branch_string("range", node)
    if isinstance(node, WithNode):
        return _branch_string("with", node)
    if isinstance(node, TemplateNode):
        if node.pipe is None:
            return "{{template " + quote(node.name) + "}}"
        return "{{template " + quote(node.name) + " " + _pipe_string(node.pipe) + "}}"
    if isinstance(node, BreakNode):
        return "{{break}}"
    return "{{continue}}"


def last_visited(pipe: PipeNode) -> AnyNode:
    """Approximately the node Go's executor visits last in ``pipe`` (an error's context)."""
    cmd = pipe.cmds[-1]
    first = cmd.args[0]
    if isinstance(first, PipeNode):
        return last_visited(first)
    if isinstance(first, IdentifierNode) and len(cmd.args) > 1:
        last = cmd.args[-1]
        return last_visited(last) if isinstance(last, PipeNode) else last
    return first
