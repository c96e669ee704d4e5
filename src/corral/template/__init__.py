"""Go ``text/template`` for prompt templates, as Ollama executes them.

Usage::

    from corral.template import Template

    t = Template.parse(text)              # TemplateError (400) with Go's message on bad syntax
    prompt = t.execute({"Messages": [...], "System": "..."})
    t.uses("Messages"), t.identifiers(), t.vars(), t.root

Semantics follow Go's ``text/template`` (actions, trim markers, comments, pipelines,
variables, ``if``/``else if``/``range``/``with``/``define``/``template``/``block``,
``break``/``continue``, the builtin functions) plus Ollama's functions (``json``,
``currentDate``, ``yesterdayDate``, ``toTypeScriptType``), executed the way Ollama does with
``missingkey=zero``.

Data model — Python values stand for Go values:

* ``dict`` (any ``Mapping``) is a ``map[string]any``: ``.Key`` looks up ``"Key"``; a missing
  key is a nil interface, printed ``<no value>``; ``range`` visits keys in sorted order and
  printing shows ``map[a:1 b:2]``.
* ``list``/``tuple`` are slices (``[a b c]``); ``bytes`` a ``[]byte``; ``str``, ``bool``,
  ``int`` (Go int), ``float`` (float64, printed ``1.5``, ``1e+06``, ``3``), ``complex``.
* ``None`` is a nil interface: falsy, printed ``<no value>`` by an action and ``<nil>`` by
  ``print``/``printf``/inside a list; ``.Field`` on it is an error, as in Go. Represent a Go
  nil slice that a template may print (``[]``) as an empty list, not None.
* Dataclass instances and other objects are structs: ``.Field`` reads a public attribute
  (a missing one is an error), ``.Method arg`` calls a public method. A ``String()`` method is
  Go's ``fmt.Stringer`` (used when printing); ``MarshalJSON()`` returning JSON text is used by
  ``json``; ``field(metadata={"json": "name,omitempty"})`` is a Go struct tag for ``json``.
* Python callables in the data can be invoked with ``call``.

Errors are :class:`~corral.errors.TemplateError` (400) worded as Go words them: parse errors
carry the line only (``template: NAME:LINE: msg``, exactly like Go), execution errors the line,
the byte column and the failing node (``template: NAME:LINE:COL: executing "NAME" at <.X>:
msg``). No other exception escapes :meth:`Template.parse` or :meth:`Template.execute`.

Known gaps: no custom delimiters and no user function maps; ``{{template}}`` calls nest at most
100 deep (Go: 100000); struct type names in messages are Python class names; ``slice``/``index``
on non-ASCII strings work on UTF-8 bytes as Go does but a cut through a character becomes
U+FFFD; ``%#v`` (Go syntax) and ``%p`` are not reproduced.
"""

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
from corral.template.template import Template
from corral.template.values import NO_VALUE

__all__ = [
    "NO_VALUE",
    "ActionNode",
    "Arg",
    "BoolNode",
    "BreakNode",
    "ChainNode",
    "CommandNode",
    "ContinueNode",
    "DotNode",
    "FieldNode",
    "IdentifierNode",
    "IfNode",
    "ListNode",
    "NilNode",
    "Node",
    "NumberNode",
    "PipeNode",
    "RangeNode",
    "StringNode",
    "Template",
    "TemplateNode",
    "TextNode",
    "VariableNode",
    "WithNode",
    "node_string",
]
