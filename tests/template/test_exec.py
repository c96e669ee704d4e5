"""Execution semantics: variables, control structures, templates, missing keys, truthiness and
field access on dicts and objects, as Go's text/template defines them (Ollama's missingkey=zero
on a map[string]any)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from corral.errors import TemplateError
from corral.template import Template


def render(src: str, data: Any = None) -> str:
    return Template.parse(src).execute(data)


VARIABLE_CASES = [
    ("{{ $x := 1 }}{{ $x }}", None, "1"),
    ("{{ $x := 1 }}{{ $x = 2 }}{{ $x }}", None, "2"),
    ("{{ $ }}", 5, "5"),
    ("{{ $.A }}", {"A": "a"}, "a"),
    ("{{ with .B }}{{ $.A }}{{ . }}{{ end }}", {"A": "a", "B": "b"}, "ab"),
    (
        '{{ $x := "outer" }}{{ if true }}{{ $x := "inner" }}{{ $x }}{{ end }} {{ $x }}',
        None,
        "inner outer",
    ),
    ("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}", None, "2"),
    ('{{ $last := "" }}{{ range . }}{{ $last = . }}{{ end }}{{ $last }}', ["a", "b"], "b"),
    ("{{ range . }}{{ $y := . }}{{ $y }}{{ end }}", [1, 2], "12"),
    ("{{ range $v := . }}{{ $v }}{{ end }}", [1, 2], "12"),
    (
        "{{ $i := 0 }}{{ $v := 0 }}{{ range $i, $v = . }}{{ end }}{{ $i }}{{ $v }}",
        ["a", "b"],
        "1b",
    ),
    ("{{ $n := 0 }}{{ range $n = . }}{{ end }}{{ $n }}", [7, 8], "8"),
    ('{{ define "t" }}{{ $ }}{{ end }}{{ $x := 1 }}{{ template "t" 2 }}{{ $x }}', None, "21"),
    ("{{ $x := .A }}{{ with $y := .B }}{{ $x }}{{ $y }}{{ end }}", {"A": 1, "B": 2}, "12"),
    ("{{ $m := . }}{{ $m.K }}", {"K": "v"}, "v"),
    ("{{ $x := 1 }}{{ $x := 2 }}{{ $x }}", None, "2"),
]


@pytest.mark.parametrize(("src", "data", "expected"), VARIABLE_CASES)
def test_variables(src: str, data: Any, expected: str) -> None:
    assert render(src, data) == expected


CONTROL_CASES = [
    ("{{ if true }}y{{ end }}", None, "y"),
    ("{{ if false }}y{{ else }}n{{ end }}", None, "n"),
    ("{{ if eq . 1 }}one{{ else if eq . 2 }}two{{ else }}many{{ end }}", 1, "one"),
    ("{{ if eq . 1 }}one{{ else if eq . 2 }}two{{ else }}many{{ end }}", 2, "two"),
    ("{{ if eq . 1 }}one{{ else if eq . 2 }}two{{ else }}many{{ end }}", 3, "many"),
    ("{{ if and .A .B }}both{{ else if or .A .B }}one{{ end }}", {"A": 1, "B": 0}, "one"),
    ("{{ with .A }}[{{ . }}]{{ end }}", {"A": "x"}, "[x]"),
    ("{{ with .A }}[{{ . }}]{{ end }}", {"A": ""}, ""),
    ("{{ with .A }}a{{ else }}none{{ end }}", {}, "none"),
    ("{{ with .A }}a{{ else with .B }}b={{ . }}{{ else }}none{{ end }}", {"B": 2}, "b=2"),
    ("{{ with .A }}a{{ else with .B }}b{{ else }}none{{ end }}", {}, "none"),
    ("{{ with $x := .A }}{{ $x }}{{ . }}{{ end }}", {"A": 5}, "55"),
    ("{{ with .A }}{{ .B }}{{ end }}", {"A": {"B": "nested"}}, "nested"),
    ("{{ range . }}x{{ else }}empty{{ end }}", [], "empty"),
    ("{{ range . }}x{{ else }}empty{{ end }}", {}, "empty"),
    ("{{ range .Missing }}x{{ else }}none{{ end }}", {}, "none"),
    ("{{ range . }}[{{ . }}]{{ end }}", ["a", "b", "c"], "[a][b][c]"),
    ("{{ range . }}[{{ . }}]{{ end }}", ("t", "u"), "[t][u]"),
    ("{{ range $i, $v := . }}{{ $i }}:{{ $v }} {{ end }}", ["a", "b"], "0:a 1:b "),
    (
        "{{ range $k, $v := . }}{{ $k }}={{ $v }};{{ end }}",
        {"b": 2, "a": 1, "c": 3},
        "a=1;b=2;c=3;",
    ),
    ("{{ range . }}{{ . }}{{ end }}", {"b": 2, "a": 1}, "12"),
    ("{{ range $k, $v := . }}{{ $k }}{{ end }}", {10: "x", 9: "y", 100: "z"}, "910100"),
    ("{{ range 3 }}{{ . }}{{ end }}", None, "012"),
    ("{{ range $i := 3 }}{{ $i }}{{ end }}", None, "012"),
    ("{{ range 0 }}x{{ else }}none{{ end }}", None, "none"),
    ("{{ range -1 }}x{{ else }}none{{ end }}", None, "none"),
    ("{{ range .N }}{{ . }},{{ end }}", {"N": 2}, "0,1,"),
    ("{{ range . }}{{ if eq . 3 }}{{ break }}{{ end }}{{ . }}{{ end }}", [1, 2, 3, 4], "12"),
    ("{{ range . }}{{ if eq . 3 }}{{ continue }}{{ end }}{{ . }}{{ end }}", [1, 2, 3, 4], "124"),
    (
        "{{ range $i, $a := .A }}{{ range $.B }}{{ $i }}{{ . }} {{ end }}{{ end }}",
        {"A": ["x", "y"], "B": [1, 2]},
        "01 02 11 12 ",
    ),
    (
        "{{ range .A }}{{ range $.B }}{{ if eq . 2 }}{{ break }}{{ end }}{{ . }}{{ end }}|"
        "{{ end }}",
        {"A": [1, 2], "B": [1, 2, 3]},
        "1|1|",
    ),
    (
        "{{ range .A }}{{ $a := . }}{{ range $.B }}{{ if eq . $a }}{{ continue }}{{ end }}"
        "{{ . }}{{ end }};{{ end }}",
        {"A": [1, 2], "B": [1, 2, 3]},
        "23;13;",
    ),
    (
        "{{ range . }}{{ with . }}{{ if eq . 2 }}{{ continue }}{{ end }}{{ . }}{{ end }}{{ end }}",
        [1, 2, 3],
        "13",
    ),
    ("{{ range . }}{{ if true }}{{ break }}{{ end }}x{{ end }}done", [1, 2], "done"),
    ("{{ range .L }}{{ . }}{{ end }}{{ .N }}", {"L": [1], "N": "n"}, "1n"),
    (
        "{{ range $i, $m := .Messages }}{{ if $i }}, {{ end }}{{ $m.Role }}{{ end }}",
        {"Messages": [{"Role": "a"}, {"Role": "b"}, {"Role": "c"}]},
        "a, b, c",
    ),
    ("{{ range . }}{{ . }}{{ end }}", b"AB", "6566"),
]


@pytest.mark.parametrize(("src", "data", "expected"), CONTROL_CASES)
def test_control_structures(src: str, data: Any, expected: str) -> None:
    assert render(src, data) == expected


TEMPLATE_CASES = [
    ('{{ define "T" }}Hello, {{ . }}!{{ end }}{{ template "T" "World" }}', None, "Hello, World!"),
    ('{{ define "T" }}[{{ . }}]{{ end }}{{ template "T" }}', "ignored", "[<no value>]"),
    ('{{ template "T" . }}{{ define "T" }}x{{ . }}{{ end }}', 1, "x1"),
    ('{{ block "B" .N }}n={{ . }}{{ end }}', {"N": 3}, "n=3"),
    ('a{{ define "T" }}unused{{ end }}b', None, "ab"),
    ('{{ define "T" }}{{ $ }}{{ end }}{{ template "T" .A }}', {"A": "a"}, "a"),
    (
        '{{ define "list" }}{{ if . }}{{ index . 0 }}{{ template "list" slice . 1 }}{{ end }}'
        '{{ end }}{{ template "list" . }}',
        [1, 2, 3],
        "123",
    ),
    (
        '{{ define "msg" }}<{{ .Role }}>{{ .Content }}{{ end }}'
        '{{ range .Messages }}{{ template "msg" . }}{{ end }}',
        {"Messages": [{"Role": "u", "Content": "hi"}, {"Role": "a", "Content": "yo"}]},
        "<u>hi<a>yo",
    ),
    ('{{ define "T" }}{{ range . }}{{ . }}{{ end }}{{ end }}{{ template "T" . }}', [1, 2], "12"),
    ('{{ define "T" }}t{{ end }}{{ range . }}{{ template "T" }}{{ end }}', [1, 2], "tt"),
]


@pytest.mark.parametrize(("src", "data", "expected"), TEMPLATE_CASES)
def test_define_template_block(src: str, data: Any, expected: str) -> None:
    assert render(src, data) == expected


def test_template_can_call_the_main_template_by_name() -> None:
    t = Template.parse(
        '{{ if . }}{{ index . 0 }}{{ template "main" slice . 1 }}{{ end }}', name="main"
    )
    assert t.execute(["a", "b", "c"]) == "abc"


MISSING_CASES = [
    ("{{ .Missing }}", {}, "<no value>"),
    ("{{ .A.Missing }}", {"A": {}}, "<no value>"),
    ("{{ .X }}", {"X": None}, "<no value>"),
    ("{{ $m := .Missing }}{{ $m.B }}", {}, "<no value>"),
    ("{{ if .Missing }}y{{ else }}n{{ end }}", {}, "n"),
    ("{{ print .Missing }}", {}, "<nil>"),
    ('{{ printf "%v|%s|%d" .Missing .Missing .Missing }}', {}, "<nil>|%!s(<nil>)|%!d(<nil>)"),
    ("{{ .L }}", {"L": [None, 1]}, "[<nil> 1]"),
    ("{{ range .L }}{{ . }},{{ end }}", {"L": [None, "a"]}, "<no value>,a,"),
    ("{{ json .Missing }}", {}, "null"),
    ("{{ eq .Missing nil }}", {}, "true"),
    ('{{ eq .Missing "" }}', {}, "false"),
    ('{{ ne .Missing "" }}', {}, "true"),
    ('{{ index .M "nope" }}', {"M": {}}, "<no value>"),
    ("{{ html .Missing }}", {}, "&lt;no value&gt;"),
    ("{{ . }}", None, "<no value>"),
    ("{{ .X }}", None, "<no value>"),
    ("{{ .X.Y.Z }}", None, "<no value>"),
    ("{{ with .Missing }}x{{ end }}", {}, ""),
    ('{{ or .Missing "default" }}', {}, "default"),
    ('{{ and .Missing "x" }}', {}, "<no value>"),
    ("{{ .Missing | print }}", {}, "<nil>"),
    ("{{ (.Missing).X }}", {}, "<no value>"),
]


@pytest.mark.parametrize(("src", "data", "expected"), MISSING_CASES)
def test_missing_keys_and_nil(src: str, data: Any, expected: str) -> None:
    assert render(src, data) == expected


def test_field_of_missing_key_is_a_nil_pointer_error() -> None:
    with pytest.raises(TemplateError) as info:
        render("{{ .Missing.B }}", {})
    assert str(info.value) == (
        'template: :1:11: executing "" at <.Missing.B>: nil pointer evaluating interface {}.B'
    )


@dataclass
class Point:
    X: int
    Y: int


@dataclass
class Named:
    Name: str

    def String(self) -> str:
        return f"<{self.Name}>"

    def Greet(self, other: str) -> str:
        return f"hi {other}, I am {self.Name}"

    def Upper(self) -> str:
        return self.Name.upper()


class Plain:
    def __init__(self) -> None:
        self.Public = "pub"
        self._secret = "hidden"


TRUTH_CASES = [
    (True, "T"),
    (False, "F"),
    (0, "F"),
    (1, "T"),
    (-1, "T"),
    (0.0, "F"),
    (0.5, "T"),
    (0j, "F"),
    ("", "F"),
    (" ", "T"),
    ("0", "T"),
    ([], "F"),
    ([0], "T"),
    ((), "F"),
    ({}, "F"),
    ({"a": 0}, "T"),
    (None, "F"),
    (b"", "F"),
    (Point(0, 0), "T"),
]


@pytest.mark.parametrize(("value", "expected"), TRUTH_CASES)
def test_truthiness(value: Any, expected: str) -> None:
    assert render("{{ if .V }}T{{ else }}F{{ end }}", {"V": value}) == expected
    assert render("{{ if not .V }}F{{ else }}T{{ end }}", {"V": value}) == expected


STRUCT_CASES = [
    ("{{ .X }},{{ .Y }}", Point(1, 2), "1,2"),
    ("{{ . }}", Point(1, 2), "{1 2}"),
    ('{{ printf "%+v" . }}', Point(1, 2), "{X:1 Y:2}"),
    ("{{ .P.X }}", {"P": Point(3, 4)}, "3"),
    ("{{ . }}", Named("n"), "<n>"),
    ("{{ .L }}", {"L": [Named("a"), Named("b")]}, "[<a> <b>]"),
    ('{{ printf "%s|%v|%d" . . .Name }}', Named("n"), "<n>|<n>|%!d(string=n)"),
    ('{{ .Greet "bob" }}', Named("n"), "hi bob, I am n"),
    ('{{ "bob" | .Greet }}', Named("n"), "hi bob, I am n"),
    ("{{ .Upper }}", Named("abc"), "ABC"),
    ("{{ .String }}", Named("s"), "<s>"),
    ("{{ .Public }}", Plain(), "pub"),
    ("{{ .Function.Name }}", {"Function": {"Name": "get_weather"}}, "get_weather"),
    ("{{ (index .Messages 0).Role }}", {"Messages": [{"Role": "user"}]}, "user"),
    ("{{ (index .L 1).X }}", {"L": [Point(1, 2), Point(3, 4)]}, "3"),
    ("{{ .A.B.C }}", {"A": {"B": {"C": "deep"}}}, "deep"),
    ("{{ call .F 2 }}", {"F": lambda x: x * 2}, "4"),
    ("{{ .M }}", {"M": {"b": [1, 2], "a": {"z": True}}}, "map[a:map[z:true] b:[1 2]]"),
]


@pytest.mark.parametrize(("src", "data", "expected"), STRUCT_CASES)
def test_fields_methods_and_printing_of_objects(src: str, data: Any, expected: str) -> None:
    assert render(src, data) == expected


@dataclass
class Message:
    Role: str
    Content: str
    Images: list[bytes] = field(default_factory=list)


def test_struct_print_matches_go_struct_formatting() -> None:
    assert render("{{ range . }}{{ . }};{{ end }}", [Message("user", "hi")]) == "{user hi []};"


def test_execute_is_repeatable_and_independent() -> None:
    t = Template.parse("{{ $x := .A }}{{ range .L }}{{ $x = . }}{{ end }}{{ $x }}")
    assert t.execute({"A": "a", "L": [1, 2]}) == "2"
    assert t.execute({"A": "a", "L": []}) == "a"
