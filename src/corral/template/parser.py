"""Parser for Go ``text/template``: tokens -> the public AST of :mod:`corral.template.nodes`.

Follows Go's ``text/template/parse`` grammar and checks: variables must be declared before use
(scoped to the enclosing ``if``/``range``/``with``/``define``), functions must exist, ``break``
and ``continue`` only inside ``range``, one non-empty definition per template name. Errors are
raised as :class:`~corral.errors.TemplateError` with Go's wording,
``template: NAME:LINE: message``.
"""

from __future__ import annotations

import re
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from corral.errors import TemplateError
from corral.template.gostr import quote, unquote, unquote_char
from corral.template.lexer import Token, TokenType, lex
from corral.template.nodes import (
    ActionNode,
    Arg,
    BoolNode,
    BreakNode,
    ChainNode,
    CommandNode,
    ContinueNode,
    DotNode,
    FieldNode,
    IdentifierNode,
    IfNode,
    ListNode,
    NilNode,
    Node,
    NumberNode,
    PipeNode,
    RangeNode,
    StringNode,
    TemplateNode,
    TextNode,
    VariableNode,
    WithNode,
    node_string,
)

__all__ = ["ParseResult", "is_empty_tree", "parse"]

MAX_PAREN_DEPTH = 100
_T = TokenType
_OPERAND_START = frozenset(
    {
        _T.BOOL,
        _T.CHAR_CONSTANT,
        _T.COMPLEX,
        _T.DOT,
        _T.FIELD,
        _T.IDENTIFIER,
        _T.NUMBER,
        _T.NIL,
        _T.RAW_STRING,
        _T.STRING,
        _T.VARIABLE,
        _T.LEFT_PAREN,
    }
)
_INT_RE = re.compile(
    r"[+-]?(0[xX]_?[0-9a-fA-F]+(_[0-9a-fA-F]+)*|0[oO]?_?[0-7]+(_[0-7]+)*|0[bB]_?[01]+(_[01]+)*"
    r"|[1-9](_?[0-9])*|0)"
)
_INT64_MIN, _INT64_MAX, _UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1


@dataclass(frozen=True, slots=True)
class ParseResult:
    """The main template's tree and every named template (the main one included)."""

    root: ListNode
    defines: dict[str, ListNode]


@dataclass(frozen=True, slots=True)
class _End:
    pos: int


@dataclass(frozen=True, slots=True)
class _Else:
    pos: int


def is_empty_tree(node: Node) -> bool:
    """Go's ``parse.IsEmptyTree``: only whitespace text (comments are never in the tree)."""
    if isinstance(node, ListNode):
        return all(is_empty_tree(n) for n in node.nodes)
    if isinstance(node, TextNode):
        return not node.text.strip()
    return False


def _parse_int(text: str) -> int | None:
    """Go's ``strconv.ParseInt``/``ParseUint`` with base 0, without the range check."""
    if not _INT_RE.fullmatch(text):
        return None
    sign = -1 if text[0] == "-" else 1
    body = text.lstrip("+-").replace("_", "")
    if len(body) > 1 and body[0] == "0" and body[1] not in "xXoObB":
        return sign * int(body[1:], 8)
    return sign * int(body, 0)


def _parse_float(text: str) -> float | None:
    body = text.replace("_", "")
    try:
        if body.lstrip("+-")[:2] in ("0x", "0X"):
            return float.fromhex(body)
        return float(body)
    except ValueError:
        return None


class _Parser:
    def __init__(self, text: str, name: str, funcs: AbstractSet[str]) -> None:
        self.text = text
        self.name = name
        self.funcs = funcs
        self.tokens = lex(text)
        self.last = len(self.tokens) - 1
        self.i = 0
        self.newest = 0  # index of the newest token read, for Go's error line
        self.vars: list[str] = ["$"]
        self.range_depth = 0
        self.paren_depth = 0
        self.action_line = 0
        self.defines: dict[str, ListNode] = {}

    # Token stream.

    def next(self) -> Token:
        i = min(self.i, self.last)
        self.i += 1
        self.newest = max(self.newest, i)
        return self.tokens[i]

    def backup(self) -> None:
        self.i -= 1

    def peek(self) -> Token:
        i = min(self.i, self.last)
        self.newest = max(self.newest, i)
        return self.tokens[i]

    def next_non_space(self) -> Token:
        tok = self.next()
        while tok.typ == _T.SPACE:
            tok = self.next()
        return tok

    def peek_non_space(self) -> Token:
        tok = self.next_non_space()
        self.backup()
        return tok

    # Errors.

    def errorf(self, message: str) -> TemplateError:
        line = self.tokens[self.newest].line
        return TemplateError(f"template: {self.name}:{line}: {message}")

    def unexpected(self, tok: Token, context: str) -> TemplateError:
        if tok.typ == _T.ERROR:
            extra = ""
            if self.action_line and self.action_line != tok.line:
                extra = f" in action started at {self.name}:{self.action_line}"
                if tok.val.endswith(" action"):
                    extra = extra[len(" in action") :]
            return self.errorf(f"{tok}{extra}")
        return self.errorf(f"unexpected {tok} in {context}")

    def expect(self, typ: TokenType, context: str) -> Token:
        tok = self.next_non_space()
        if tok.typ != typ:
            raise self.unexpected(tok, context)
        return tok

    # Grammar.

    def parse(self) -> ParseResult:
        nodes: list[Node] = []
        while self.peek().typ != _T.EOF:
            if self.peek().typ == _T.LEFT_DELIM:
                start = self.i
                self.next()
                if self.next_non_space().typ == _T.DEFINE:
                    self.parse_definition()
                    continue
                self.i = start
            node = self.text_or_action()
            if isinstance(node, (_End, _Else)):
                word = "{{end}}" if isinstance(node, _End) else "{{else}}"
                raise self.errorf(f"unexpected {word}")
            nodes.append(node)
        root = ListNode(self.tokens[0].pos, tuple(nodes))
        existing = self.defines.get(self.name)
        if existing is not None and not is_empty_tree(existing):
            if not is_empty_tree(root):
                raise self.errorf(f"template: multiple definition of template {quote(self.name)}")
            root = existing
        self.defines[self.name] = root
        return ParseResult(root, self.defines)

    def add(self, name: str, body: ListNode) -> None:
        existing = self.defines.get(name)
        if existing is None or is_empty_tree(existing):
            self.defines[name] = body
        elif not is_empty_tree(body):
            raise self.errorf(f"template: multiple definition of template {quote(name)}")

    def nested_body(self, context: str) -> ListNode:
        """Parse a define/block body as a separate tree (fresh variables, not in a range)."""
        saved = self.vars, self.range_depth
        self.vars, self.range_depth = ["$"], 0
        body, end = self.item_list()
        if not isinstance(end, _End):
            raise self.errorf(f"unexpected {{{{else}}}} in {context}")
        self.vars, self.range_depth = saved
        return body

    def parse_definition(self) -> None:
        context = "define clause"
        tok = self.next_non_space()
        if tok.typ not in (_T.STRING, _T.RAW_STRING):
            raise self.unexpected(tok, context)
        name = self.unquote(tok)
        self.expect(_T.RIGHT_DELIM, context)
        self.add(name, self.nested_body(context))

    def item_list(self) -> tuple[ListNode, _End | _Else]:
        start = self.peek_non_space().pos
        nodes: list[Node] = []
        while self.peek_non_space().typ != _T.EOF:
            node = self.text_or_action()
            if isinstance(node, (_End, _Else)):
                return ListNode(start, tuple(nodes)), node
            nodes.append(node)
        raise self.errorf("unexpected EOF")

    def text_or_action(self) -> Node | _End | _Else:
        tok = self.next_non_space()
        if tok.typ == _T.TEXT:
            return TextNode(tok.pos, tok.val)
        if tok.typ == _T.LEFT_DELIM:
            self.action_line = tok.line
            try:
                return self.action()
            finally:
                self.action_line = 0
        raise self.unexpected(tok, "input")

    def action(self) -> Node | _End | _Else:
        tok = self.next_non_space()
        typ = tok.typ
        if typ == _T.BLOCK:
            return self.block_control()
        if typ in (_T.BREAK, _T.CONTINUE):
            word = tok.val
            after = self.next_non_space()
            if after.typ != _T.RIGHT_DELIM:
                raise self.unexpected(after, "{{" + word + "}}")
            if self.range_depth == 0:
                raise self.errorf("{{" + word + "}} outside {{range}}")
            return BreakNode(tok.pos) if typ == _T.BREAK else ContinueNode(tok.pos)
        if typ == _T.ELSE:
            peek = self.peek_non_space()
            if peek.typ in (_T.IF, _T.WITH):
                return _Else(peek.pos)
            return _Else(self.expect(_T.RIGHT_DELIM, "else").pos)
        if typ == _T.END:
            return _End(self.expect(_T.RIGHT_DELIM, "end").pos)
        if typ == _T.IF:
            return IfNode(*self.parse_control("if"))
        if typ == _T.RANGE:
            return RangeNode(*self.parse_control("range"))
        if typ == _T.WITH:
            return WithNode(*self.parse_control("with"))
        if typ == _T.TEMPLATE:
            return self.template_control()
        self.backup()
        pos = self.peek().pos
        return ActionNode(pos, self.pipeline("command", _T.RIGHT_DELIM))

    def parse_control(self, context: str) -> tuple[int, PipeNode, ListNode, ListNode | None]:
        saved_vars = len(self.vars)
        pipe = self.pipeline(context, _T.RIGHT_DELIM)
        if context == "range":
            self.range_depth += 1
        body, end = self.item_list()
        if context == "range":
            self.range_depth -= 1
        else_list: ListNode | None = None
        if isinstance(end, _Else):
            follow = self.peek().typ
            if context == "if" and follow == _T.IF:
                self.next()
                else_list = ListNode(end.pos, (IfNode(*self.parse_control("if")),))
            elif context == "with" and follow == _T.WITH:
                self.next()
                else_list = ListNode(end.pos, (WithNode(*self.parse_control("with")),))
            else:
                else_list, end2 = self.item_list()
                if not isinstance(end2, _End):
                    raise self.errorf("expected end; found {{else}}")
        del self.vars[saved_vars:]
        return pipe.pos, pipe, body, else_list

    def template_name(self, tok: Token, context: str) -> str:
        if tok.typ not in (_T.STRING, _T.RAW_STRING):
            raise self.unexpected(tok, context)
        return self.unquote(tok)

    def template_control(self) -> TemplateNode:
        context = "template clause"
        tok = self.next_non_space()
        name = self.template_name(tok, context)
        pipe: PipeNode | None = None
        if self.next_non_space().typ != _T.RIGHT_DELIM:
            self.backup()
            pipe = self.pipeline(context, _T.RIGHT_DELIM)
        return TemplateNode(tok.pos, name, pipe)

    def block_control(self) -> TemplateNode:
        context = "block clause"
        tok = self.next_non_space()
        name = self.template_name(tok, context)
        pipe = self.pipeline(context, _T.RIGHT_DELIM)
        self.add(name, self.nested_body(context))
        return TemplateNode(tok.pos, name, pipe)

    def pipeline(self, context: str, end: TokenType) -> PipeNode:
        pos = self.peek_non_space().pos
        decl: list[VariableNode] = []
        is_assign = False
        while self.peek_non_space().typ == _T.VARIABLE:
            start = self.i
            var = self.next_non_space()
            follow = self.peek_non_space()
            if follow.typ in (_T.ASSIGN, _T.DECLARE):
                is_assign = follow.typ == _T.ASSIGN
                self.next_non_space()
                decl.append(VariableNode(var.pos, (var.val,)))
                self.vars.append(var.val)
            elif follow.typ == _T.CHAR and follow.val == ",":
                self.next_non_space()
                decl.append(VariableNode(var.pos, (var.val,)))
                self.vars.append(var.val)
                if context == "range" and len(decl) < 2:
                    if self.peek_non_space().typ in (_T.VARIABLE, _T.RIGHT_DELIM, _T.RIGHT_PAREN):
                        continue
                    raise self.errorf("range can only initialize variables")
                raise self.errorf(f"too many declarations in {context}")
            else:
                self.i = start
            break
        cmds: list[CommandNode] = []
        while True:
            tok = self.next_non_space()
            if tok.typ == end:
                self.check_pipeline(cmds, context)
                return PipeNode(pos, tuple(decl), is_assign, tuple(cmds))
            if tok.typ not in _OPERAND_START:
                raise self.unexpected(tok, context)
            self.backup()
            cmds.append(self.command())

    def check_pipeline(self, cmds: list[CommandNode], context: str) -> None:
        if not cmds:
            raise self.errorf(f"missing value for {context}")
        for stage, cmd in enumerate(cmds[1:], start=2):
            if isinstance(cmd.args[0], (BoolNode, DotNode, NilNode, NumberNode, StringNode)):
                raise self.errorf(f"non executable command in pipeline stage {stage}")

    def command(self) -> CommandNode:
        pos = self.peek_non_space().pos
        args: list[Arg] = []
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                args.append(operand)
            tok = self.next()
            if tok.typ == _T.SPACE:
                continue
            if tok.typ in (_T.RIGHT_DELIM, _T.RIGHT_PAREN):
                self.backup()
            elif tok.typ != _T.PIPE:
                raise self.unexpected(tok, "operand")
            break
        if not args:
            raise self.errorf("empty command")
        return CommandNode(pos, tuple(args))

    def operand(self) -> Arg | None:
        node = self.term()
        if node is None or self.peek().typ != _T.FIELD:
            return node
        pos = self.peek().pos
        fields: list[str] = []
        while self.peek().typ == _T.FIELD:
            fields.append(self.next().val[1:])
        if isinstance(node, FieldNode):
            return FieldNode(pos, node.ident + tuple(fields))
        if isinstance(node, VariableNode):
            return VariableNode(pos, node.ident + tuple(fields))
        if isinstance(node, (BoolNode, StringNode, NumberNode, NilNode, DotNode)):
            raise self.errorf(f"unexpected . after term {quote(node_string(node))}")
        return ChainNode(pos, node, tuple(fields))

    def term(self) -> Arg | None:
        tok = self.next_non_space()
        typ = tok.typ
        if typ == _T.IDENTIFIER:
            if tok.val not in self.funcs:
                raise self.errorf(f'function "{tok.val}" not defined')
            return IdentifierNode(tok.pos, tok.val)
        if typ == _T.DOT:
            return DotNode(tok.pos)
        if typ == _T.NIL:
            return NilNode(tok.pos)
        if typ == _T.VARIABLE:
            ident = tuple(tok.val.split("."))
            if ident[0] not in self.vars:
                raise self.errorf(f'undefined variable "{ident[0]}"')
            return VariableNode(tok.pos, ident)
        if typ == _T.FIELD:
            return FieldNode(tok.pos, (tok.val[1:],))
        if typ == _T.BOOL:
            return BoolNode(tok.pos, tok.val == "true")
        if typ in (_T.CHAR_CONSTANT, _T.COMPLEX, _T.NUMBER):
            return self.number(tok)
        if typ == _T.LEFT_PAREN:
            if self.paren_depth >= MAX_PAREN_DEPTH:
                raise self.errorf("max expression depth exceeded")
            self.paren_depth += 1
            try:
                return self.pipeline("parenthesized pipeline", _T.RIGHT_PAREN)
            finally:
                self.paren_depth -= 1
        if typ in (_T.STRING, _T.RAW_STRING):
            return StringNode(tok.pos, tok.val, self.unquote(tok))
        self.backup()
        return None

    def unquote(self, tok: Token) -> str:
        try:
            return unquote(tok.val)
        except ValueError as exc:
            raise self.errorf(str(exc)) from None

    def number(self, tok: Token) -> NumberNode:
        text = tok.val
        if tok.typ == _T.CHAR_CONSTANT:
            try:
                code, _, end = unquote_char(text, 1, "'")
            except ValueError as exc:
                raise self.errorf(str(exc)) from None
            if text[end:] != "'":
                raise self.errorf(f"malformed character constant: {text}")
            return NumberNode(tok.pos, text, code)
        if tok.typ == _T.COMPLEX or text.endswith("i"):
            try:
                return NumberNode(tok.pos, text, complex(text.replace("_", "")[:-1] + "j"))
            except ValueError:
                raise self.errorf(f'illegal number syntax: "{text}"') from None
        value = _parse_int(text)
        if value is not None:
            if _INT64_MIN <= value <= _INT64_MAX:
                return NumberNode(tok.pos, text, value)
            if 0 <= value <= _UINT64_MAX:
                return NumberNode(tok.pos, text, None)
        number = _parse_float(text)
        if number is None:
            raise self.errorf(f'illegal number syntax: "{text}"')
        if not any(c in text for c in ".eEpP"):
            raise self.errorf(f'integer overflow: "{text}"')
        is_hex_int = text.lstrip("+-")[:2] in ("0x", "0X") and not any(c in text for c in "pP")
        if is_hex_int and number.is_integer():
            return NumberNode(tok.pos, text, int(number))
        return NumberNode(tok.pos, text, number)


def parse(text: str, name: str, funcs: AbstractSet[str]) -> ParseResult:
    """Parse ``text`` as template ``name``; ``funcs`` are the function names in scope."""
    try:
        return _Parser(text, name, funcs).parse()
    except RecursionError:
        raise TemplateError(f"template: {name}: max nesting depth exceeded") from None
