"""Execution of a parsed template against Python data, with Go ``text/template`` semantics.

Mirrors Go's ``exec.go``: dot and the variable stack (``$`` is the data; variables declared in
an ``if``/``range``/``with`` end at its ``{{end}}``; ``{{template}}`` calls start a fresh stack),
pipelines (each command's result is the last argument of the next), lazy ``and``/``or``, method
calls on objects, ``range`` over lists, maps (sorted keys) and ints, ``break``/``continue``.
Map lookups behave as with Ollama's ``missingkey=zero``: a missing key is a nil interface
(``None``), which prints as ``<no value>``. Execution errors are
:class:`~corral.errors.TemplateError` spelled like Go's:
``template: NAME:LINE:COL: executing "NAME" at <node>: message``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from corral.errors import TemplateError
from corral.template.funcs import BUILTINS, FuncError
from corral.template.gofmt import format_value
from corral.template.gostr import quote
from corral.template.nodes import (
    ActionNode,
    AnyNode,
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
    last_visited,
    node_string,
)
from corral.template.values import (
    NO_VALUE,
    arity_problem,
    is_struct,
    is_true,
    method_of,
    sorted_items,
    type_name,
)

__all__ = ["MAX_TEMPLATE_DEPTH", "execute"]

MAX_TEMPLATE_DEPTH: Final = 100
"""Nesting limit of ``{{template}}`` calls (Go allows 100000; Python's stack cannot)."""

_BREAK, _CONTINUE = 1, 2


class _NoFinal:
    __slots__ = ()


_NO_FINAL: Final = _NoFinal()  # "no piped-in value", Go's missingVal


class _Exec:
    def __init__(
        self, text: str, parse_name: str, root: ListNode, defines: Mapping[str, ListNode]
    ) -> None:
        self.text = text
        self.parse_name = parse_name
        self.root = root
        self.defines = defines
        self.tmpl_name = parse_name
        self.out: list[str] = []
        self.names: list[str] = []
        self.values: list[Any] = []
        self.depth = 0

    # Errors.

    def error(self, node: AnyNode, message: str) -> TemplateError:
        pos = node.pos
        line_start = self.text.rfind("\n", 0, pos) + 1
        line = self.text.count("\n", 0, pos) + 1
        col = len(self.text[line_start:pos].encode("utf-8", "surrogatepass"))
        return TemplateError(
            f"template: {self.parse_name}:{line}:{col}: executing {quote(self.tmpl_name)} "
            f"at <{node_string(node)}>: {message}"
        )

    # Walking.

    def walk_list(self, dot: Any, nodes: tuple[Node, ...]) -> int:
        out = self.out
        for node in nodes:
            if isinstance(node, TextNode):
                out.append(node.text)
            elif isinstance(node, ActionNode):
                pipe = node.pipe
                value = self.eval_pipeline(dot, pipe)
                if not pipe.decl:
                    if type(value) is str:
                        out.append(value)
                    else:
                        out.append("<no value>" if value is NO_VALUE else format_value(value))
            elif isinstance(node, (IfNode, WithNode)):
                signal = self.walk_if_with(dot, node, isinstance(node, WithNode))
                if signal:
                    return signal
            elif isinstance(node, RangeNode):
                signal = self.walk_range(dot, node)
                if signal:
                    return signal
            elif isinstance(node, TemplateNode):
                self.walk_template(dot, node)
            elif isinstance(node, BreakNode):
                return _BREAK
            elif isinstance(node, ContinueNode):
                return _CONTINUE
            elif isinstance(node, ListNode):
                signal = self.walk_list(dot, node.nodes)
                if signal:
                    return signal
        return 0

    def walk_if_with(self, dot: Any, node: IfNode | WithNode, is_with: bool) -> int:
        mark = len(self.names)
        value = self.eval_pipeline(dot, node.pipe)
        signal = 0
        if is_true(value):
            signal = self.walk_list(value if is_with else dot, node.list.nodes)
        elif node.else_list is not None:
            signal = self.walk_list(dot, node.else_list.nodes)
        del self.names[mark:], self.values[mark:]
        return signal

    def walk_range(self, dot: Any, node: RangeNode) -> int:
        names, values = self.names, self.values
        outer = len(names)
        pipe = node.pipe
        value = self.eval_pipeline(dot, pipe)
        mark = len(names)
        decl = pipe.decl
        items: Any
        if isinstance(value, (list, tuple, bytes, bytearray)):
            items = enumerate(value)
        elif isinstance(value, Mapping):
            items = sorted_items(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            if len(decl) > 1:
                raise self.error(
                    last_visited(pipe),
                    f"can't use {value} to iterate over more than one variable",
                )
            items = ((i, i) for i in range(value))
        elif value is NO_VALUE:
            items = ()
        else:
            raise self.error(last_visited(pipe), f"range can't iterate over {format_value(value)}")
        ran = False
        body = node.list.nodes
        for key, elem in items:
            ran = True
            if decl:
                if pipe.is_assign:
                    self.set_var(decl[0].ident[0], key if len(decl) > 1 else elem, decl[0])
                    if len(decl) > 1:
                        self.set_var(decl[1].ident[0], elem, decl[1])
                else:
                    values[mark - 1] = elem
                    if len(decl) > 1:
                        values[mark - 2] = key
            signal = self.walk_list(elem, body)
            del names[mark:], values[mark:]
            if signal == _BREAK:
                break
        signal = 0
        if not ran and node.else_list is not None:
            signal = self.walk_list(dot, node.else_list.nodes)
            if signal == _BREAK:  # Go's range swallows a break from its else branch
                signal = 0
        del names[outer:], values[outer:]
        return signal

    def walk_template(self, dot: Any, node: TemplateNode) -> None:
        body = self.root if node.name == self.parse_name else self.defines.get(node.name)
        if body is None:
            raise self.error(node, f"template {quote(node.name)} not defined")
        if self.depth >= MAX_TEMPLATE_DEPTH:
            raise self.error(node, f"exceeded maximum template depth ({MAX_TEMPLATE_DEPTH})")
        new_dot = NO_VALUE if node.pipe is None else self.eval_pipeline(dot, node.pipe)
        saved = self.names, self.values, self.tmpl_name
        self.names, self.values, self.tmpl_name = ["$"], [new_dot], node.name
        self.depth += 1
        self.walk_list(new_dot, body.nodes)
        self.depth -= 1
        self.names, self.values, self.tmpl_name = saved

    # Variables.

    def var_value(self, name: str, node: AnyNode) -> Any:
        names = self.names
        for i in range(len(names) - 1, -1, -1):
            if names[i] == name:
                return self.values[i]
        raise self.error(node, f"undefined variable: {name}")

    def set_var(self, name: str, value: Any, node: AnyNode) -> None:
        names = self.names
        for i in range(len(names) - 1, -1, -1):
            if names[i] == name:
                self.values[i] = value
                return
        raise self.error(node, f"undefined variable: {name}")

    # Evaluation.

    def eval_pipeline(self, dot: Any, pipe: PipeNode) -> Any:
        value: Any = _NO_FINAL
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
            if value is None:  # a nil interface{} yields Go's invalid value
                value = NO_VALUE
        for var in pipe.decl:
            if pipe.is_assign:
                self.set_var(var.ident[0], value, var)
            else:
                self.names.append(var.ident[0])
                self.values.append(value)
        return value

    def not_a_function(self, args: tuple[Arg, ...] | None, final: Any, node: AnyNode) -> None:
        if (args is not None and len(args) > 1) or final is not _NO_FINAL:
            first = node_string(args[0]) if args else node_string(node)
            raise self.error(node, f"can't give argument to non-function {first}")

    def eval_command(self, dot: Any, cmd: CommandNode, final: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, FieldNode):
            return self.eval_field_chain(dot, dot, first, first.ident, cmd.args, final)
        if isinstance(first, IdentifierNode):
            return self.eval_function(dot, first, cmd, cmd.args, final)
        if isinstance(first, VariableNode):
            return self.eval_variable(dot, first, cmd.args, final)
        if isinstance(first, ChainNode):
            return self.eval_chain(dot, first, cmd.args, final)
        self.not_a_function(cmd.args, final, first)
        if isinstance(first, PipeNode):
            return self.eval_pipeline(dot, first)
        if isinstance(first, DotNode):
            return dot
        if isinstance(first, NilNode):
            raise self.error(first, "nil is not a command")
        return self.literal(first)

    def literal(self, node: Arg) -> Any:
        if isinstance(node, StringNode):
            return node.text
        if isinstance(node, BoolNode):
            return node.value
        if isinstance(node, NumberNode):
            if node.value is None:
                raise self.error(node, f"{node.text} overflows int")
            return node.value
        return None

    def eval_variable(
        self, dot: Any, node: VariableNode, args: tuple[Arg, ...] | None, final: Any
    ) -> Any:
        value = self.var_value(node.ident[0], node)
        if len(node.ident) == 1:
            self.not_a_function(args, final, node)
            return value
        return self.eval_field_chain(dot, value, node, node.ident[1:], args, final)

    def eval_chain(
        self, dot: Any, node: ChainNode, args: tuple[Arg, ...] | None, final: Any
    ) -> Any:
        receiver = self.eval_arg(dot, node.node, keep_nil=True)
        return self.eval_field_chain(dot, receiver, node, node.field, args, final)

    def eval_field_chain(
        self,
        dot: Any,
        receiver: Any,
        node: FieldNode | VariableNode | ChainNode,
        ident: tuple[str, ...],
        args: tuple[Arg, ...] | None,
        final: Any,
    ) -> Any:
        last = len(ident) - 1
        for i, name in enumerate(ident):
            if i == last:
                return self.eval_field(dot, name, node, args, final, receiver)
            receiver = self.eval_field(dot, name, node, None, _NO_FINAL, receiver)
        return receiver

    def eval_field(
        self,
        dot: Any,
        name: str,
        node: FieldNode | VariableNode | ChainNode,
        args: tuple[Arg, ...] | None,
        final: Any,
        receiver: Any,
    ) -> Any:
        has_args = (args is not None and len(args) > 1) or final is not _NO_FINAL
        if type(receiver) is dict:
            if has_args:
                raise self.error(node, f"{name} is not a method but has arguments")
            return receiver.get(name)
        fields = getattr(type(receiver), "__dataclass_fields__", None)
        if fields is not None and name in fields and name[0] != "_":
            if has_args:
                raise self.error(node, f"{name} has arguments but cannot be invoked as function")
            return getattr(receiver, name)
        if receiver is NO_VALUE:
            return NO_VALUE
        if receiver is None:
            raise self.error(node, f"nil pointer evaluating interface {{}}.{name}")
        method = method_of(receiver, name)
        if method is not None:
            return self.call_value(dot, method, node, name, args, final)
        if isinstance(receiver, Mapping):
            if has_args:
                raise self.error(node, f"{name} is not a method but has arguments")
            return receiver.get(name)
        value = (
            getattr(receiver, name, NO_VALUE)
            if is_struct(receiver) and name[0] != "_"
            else NO_VALUE
        )
        if value is not NO_VALUE:
            if has_args:
                raise self.error(node, f"{name} has arguments but cannot be invoked as function")
            return value
        raise self.error(node, f"can't evaluate field {name} in type {type_name(receiver)}")

    def call_value(
        self,
        dot: Any,
        fn: Callable[..., Any],
        node: AnyNode,
        name: str,
        args: tuple[Arg, ...] | None,
        final: Any,
    ) -> Any:
        """Call a method found in the data with evaluated arguments."""
        argv = [self.eval_arg(dot, a) for a in (args[1:] if args else ())]
        if final is not _NO_FINAL:
            argv.append(None if final is NO_VALUE else final)
        problem = arity_problem(fn, len(argv))
        if problem is not None:
            at_least = "at least " if problem[0] else ""
            want = f"{at_least}{problem[1]}"
            raise self.error(node, f"wrong number of args for {name}: want {want} got {len(argv)}")
        try:
            return fn(*argv)
        except TemplateError:
            raise
        except Exception as exc:
            raise self.error(node, f"error calling {name}: {exc}") from exc

    def eval_function(
        self,
        dot: Any,
        ident: IdentifierNode,
        cmd: AnyNode,
        args: tuple[Arg, ...] | None,
        final: Any,
    ) -> Any:
        name = ident.name
        arg_nodes = args[1:] if args else ()
        num_in = len(arg_nodes) + (final is not _NO_FINAL)
        if name in ("and", "or", "call"):
            if num_in < 1:
                raise self.error(
                    ident, f"wrong number of args for {name}: want at least 1 got {len(arg_nodes)}"
                )
            if name == "call":
                return self.eval_call(dot, cmd, arg_nodes, final)
            want = name == "or"
            value: Any = NO_VALUE
            for arg in arg_nodes:
                value = self.eval_arg(dot, arg)
                if is_true(value) == want:
                    return value
            return value if final is _NO_FINAL else final
        spec = BUILTINS[name]
        if spec.variadic:
            if num_in < spec.min_args:
                raise self.error(
                    ident,
                    f"wrong number of args for {name}: want at least {spec.min_args} "
                    f"got {len(arg_nodes)}",
                )
        elif num_in != spec.min_args:
            raise self.error(
                ident, f"wrong number of args for {name}: want {spec.min_args} got {num_in}"
            )
        argv = [
            self.eval_arg(dot, arg, want_string=i < spec.string_params or spec.string_variadic)
            for i, arg in enumerate(arg_nodes)
        ]
        if final is not _NO_FINAL:
            if len(arg_nodes) < spec.string_params or spec.string_variadic:
                self.check_string(final, ident)
            argv.append(None if final is NO_VALUE else final)
        try:
            return spec.fn(*argv)
        except FuncError as exc:
            raise self.error(cmd, f"error calling {name}: {exc}") from None

    def eval_call(self, dot: Any, cmd: AnyNode, arg_nodes: tuple[Arg, ...], final: Any) -> Any:
        callee = node_string(arg_nodes[0]) if arg_nodes else format_value(final)
        argv = [self.eval_arg(dot, a) for a in arg_nodes]
        if final is not _NO_FINAL:
            argv.append(None if final is NO_VALUE else final)
        fn, rest = argv[0], argv[1:]
        message: str | None = None
        if fn is None:
            message = "call of nil"
        elif not callable(fn):
            message = f"non-function {callee} of type {type_name(fn)}"
        else:
            problem = arity_problem(fn, len(rest))
            if problem is not None:
                at_least = "at least " if problem[0] else ""
                want = f"{at_least}{problem[1]}"
                message = f"wrong number of args for {callee}: got {len(rest)} want {want}"
        if message is None:
            try:
                return fn(*rest)
            except TemplateError:
                raise
            except Exception as exc:
                message = str(exc)
        raise self.error(cmd, f"error calling call: {message}")

    def check_string(self, value: Any, node: AnyNode) -> str:
        if value is NO_VALUE:
            raise self.error(node, "invalid value; expected string")
        if not isinstance(value, str):
            got = "interface {}" if value is None else type_name(value)
            raise self.error(node, f"wrong type for value; expected string; got {got}")
        return value

    def eval_arg(
        self, dot: Any, node: Arg, *, want_string: bool = False, keep_nil: bool = False
    ) -> Any:
        if isinstance(node, FieldNode):
            value = self.eval_field_chain(dot, dot, node, node.ident, None, _NO_FINAL)
        elif isinstance(node, DotNode):
            value = dot
        elif isinstance(node, VariableNode):
            value = self.eval_variable(dot, node, None, _NO_FINAL)
        elif isinstance(node, PipeNode):
            value = self.eval_pipeline(dot, node)
        elif isinstance(node, IdentifierNode):
            value = self.eval_function(dot, node, node, None, _NO_FINAL)
        elif isinstance(node, ChainNode):
            value = self.eval_chain(dot, node, None, _NO_FINAL)
        elif want_string:
            if isinstance(node, StringNode):
                return node.text
            if isinstance(node, NilNode):
                raise self.error(node, "cannot assign nil to string")
            raise self.error(node, f"expected string; found {node_string(node)}")
        else:
            return self.literal(node)
        if want_string:
            return self.check_string(value, node)
        if value is NO_VALUE and not keep_nil:
            return None
        return value


def execute(
    root: ListNode, defines: Mapping[str, ListNode], text: str, name: str, data: Any
) -> str:
    """Run ``root`` (template ``name``) on ``data``.

    ``defines`` are the other named templates, ``text`` the source the positions refer to.
    """
    state = _Exec(text, name, root, defines)
    dot = NO_VALUE if data is None else data
    state.names.append("$")
    state.values.append(dot)
    try:
        state.walk_list(dot, root.nodes)
    except TemplateError:
        raise
    except RecursionError:
        raise TemplateError(f"template: {name}: maximum nesting depth exceeded") from None
    except Exception as exc:  # a bug or an exotic value: never leak a Python exception
        raise TemplateError(f"template: {name}: {type(exc).__name__}: {exc}") from exc
    return "".join(state.out)
