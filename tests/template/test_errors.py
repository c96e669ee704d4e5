"""Execution errors: Go's ``template: NAME:LINE:COL: executing "NAME" at <node>: message``
format, and the guarantee that no Python exception escapes parse or execute."""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass
from typing import Any

import pytest

from corral.errors import TemplateError
from corral.template import Template


def error_of(src: str, data: Any = None, name: str = "") -> str:
    t = Template.parse(src, name=name)
    with pytest.raises(TemplateError) as info:
        t.execute(data)
    assert info.value.status == 400
    return str(info.value)


@dataclass
class Msg:
    Role: str

    def Boom(self) -> str:
        raise ValueError("bad")


EXEC_ERRORS = [
    (
        "{{ index .L 5 }}",
        {"L": [1]},
        'template: :1:3: executing "" at <index .L 5>: error calling index: index out of range: 5',
    ),
    (
        "line1\n  {{ .X.Y }}",
        {"X": "s"},
        'template: :2:7: executing "" at <.X.Y>: can\'t evaluate field Y in type string',
    ),
    (
        "é{{ .A.B }}",
        {"A": 1},
        'template: :1:7: executing "" at <.A.B>: can\'t evaluate field B in type int',
    ),
    (
        '{{ define "T" }}{{ .X.Y }}{{ end }}{{ template "T" . }}',
        {"X": 1},
        'template: :1:21: executing "T" at <.X.Y>: can\'t evaluate field Y in type int',
    ),
    (
        '{{ template "nope" }}',
        None,
        'template: :1:12: executing "" at <{{template "nope"}}>: template "nope" not defined',
    ),
    (
        "{{ if eq .A 1.5 }}x{{ end }}",
        {"A": 1},
        'template: :1:6: executing "" at <eq .A 1.5>: error calling eq: '
        "incompatible types for comparison: int and float64",
    ),
    (
        "{{ len }}",
        None,
        'template: :1:3: executing "" at <len>: wrong number of args for len: want 1 got 0',
    ),
    (
        "{{ .A 1 }}",
        {"A": {}},
        'template: :1:3: executing "" at <.A>: A is not a method but has arguments',
    ),
    ("{{ nil }}", None, 'template: :1:3: executing "" at <nil>: nil is not a command'),
    (
        "{{ 1 2 }}",
        None,
        'template: :1:3: executing "" at <1>: can\'t give argument to non-function 1',
    ),
    (
        "{{ range .S }}{{ end }}",
        {"S": "abc"},
        'template: :1:9: executing "" at <.S>: range can\'t iterate over abc',
    ),
    (
        "{{ range .S }}{{ end }}",
        {"S": 1.5},
        'template: :1:9: executing "" at <.S>: range can\'t iterate over 1.5',
    ),
    (
        "{{ range $i, $v := .N }}{{ end }}",
        {"N": 3},
        'template: :1:19: executing "" at <.N>: '
        "can't use 3 to iterate over more than one variable",
    ),
    (
        "{{ .Nope }}",
        Msg("user"),
        'template: :1:3: executing "" at <.Nope>: can\'t evaluate field Nope in type Msg',
    ),
    (
        "{{ .Boom }}",
        Msg("user"),
        'template: :1:3: executing "" at <.Boom>: error calling Boom: bad',
    ),
    (
        "{{ .Role 1 }}",
        Msg("user"),
        'template: :1:3: executing "" at <.Role>: '
        "Role has arguments but cannot be invoked as function",
    ),
    (
        "{{ .L.X }}",
        {"L": []},
        'template: :1:5: executing "" at <.L.X>: can\'t evaluate field X in type []interface {}',
    ),
    (
        "{{ 18446744073709551615 }}",
        None,
        'template: :1:3: executing "" at <18446744073709551615>: '
        "18446744073709551615 overflows int",
    ),
    (
        "{{ $x = 1 }}",
        None,
        'template: :1:3: executing "" at <$x>: undefined variable: $x',
    ),
    (
        "{{ printf .X }}",
        {},
        'template: :1:10: executing "" at <.X>: wrong type for value; expected string; '
        "got interface {}",
    ),
    (
        "{{ 1 | printf }}",
        None,
        'template: :1:7: executing "" at <printf>: wrong type for value; expected string; got int',
    ),
    (
        "{{ .Missing | printf }}",
        {},
        'template: :1:14: executing "" at <printf>: invalid value; expected string',
    ),
]


@pytest.mark.parametrize(("src", "data", "message"), EXEC_ERRORS)
def test_exec_error_messages(src: str, data: Any, message: str) -> None:
    assert error_of(src, data) == message


def test_exec_error_names_the_template() -> None:
    assert error_of("{{ .A.B }}", {"A": 1}, name="tmpl") == (
        'template: tmpl:1:5: executing "tmpl" at <.A.B>: can\'t evaluate field B in type int'
    )


def test_private_attributes_are_not_reachable() -> None:
    class Obj:
        def __init__(self) -> None:
            self._secret = "s"

    message = error_of("{{ ._secret }}", Obj())
    assert message.endswith("can't evaluate field _secret in type " + Obj.__qualname__)
    assert "can't evaluate field __class__" in error_of("{{ .__class__ }}", Obj())


def test_self_recursive_template_is_stopped() -> None:
    message = error_of('{{ define "r" }}{{ template "r" . }}{{ end }}{{ template "r" . }}')
    assert message.startswith('template: :1:28: executing "r" at <{{template "r" .}}>:')
    assert message.endswith("exceeded maximum template depth (100)")


def test_mutually_recursive_templates_are_stopped() -> None:
    src = (
        '{{ define "a" }}{{ template "b" . }}{{ end }}{{ define "b" }}{{ template "a" . }}'
        '{{ end }}{{ template "a" . }}'
    )
    assert "exceeded maximum template depth" in error_of(src)


def test_cyclic_data_printing_is_an_error_not_a_crash() -> None:
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    assert error_of("{{ . }}", cyclic).startswith("template: :")
    assert Template.parse("{{ json . }}").execute(cyclic) == ""


def test_a_failing_stringer_is_reported_like_go() -> None:
    @dataclass
    class Bad:
        def String(self) -> str:
            raise RuntimeError("no")

    assert Template.parse("{{ . }}").execute(Bad()) == "%!v(PANIC=String method: no)"


_FRAGMENTS = [
    "{{",
    "}}",
    "{{-",
    "-}}",
    " ",
    "\n",
    ".",
    ".A",
    ".A.B",
    "$",
    "$x",
    ":=",
    "=",
    "|",
    "(",
    ")",
    '"s"',
    "`r`",
    "'c'",
    "1",
    "-2",
    "1.5",
    "0x1",
    "if",
    "else",
    "end",
    "range",
    "with",
    "define",
    "template",
    "block",
    '"t"',
    "break",
    "continue",
    "nil",
    "true",
    "and",
    "or",
    "not",
    "eq",
    "lt",
    "len",
    "index",
    "slice",
    "printf",
    '"%d"',
    "print",
    "json",
    "call",
    "/*",
    "*/",
    ",",
    "text",
    "!",
    "é",
    "\t",
]


def test_fuzzed_templates_raise_only_template_errors() -> None:
    rng = random.Random(1234)
    datas: list[Any] = [
        None,
        {},
        {"A": {"B": [1, "x", None]}, "L": [1, 2]},
        [1, "a", None, {"A": 2}],
        "str",
        3,
        Msg("user"),
    ]
    parsed = 0
    for _ in range(3000):
        src = "".join(rng.choice(_FRAGMENTS) for _ in range(rng.randint(1, 14)))
        try:
            t = Template.parse(src)
        except TemplateError:
            continue
        parsed += 1
        for data in datas:
            with contextlib.suppress(TemplateError):
                t.execute(data)
        t.uses("A")
        with contextlib.suppress(TemplateError):
            t.vars()
    assert parsed > 100
