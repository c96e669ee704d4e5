"""Template functions: Go's builtins (logic, comparison, index/slice/len, fmt, escapers) and
Ollama's json/currentDate/yesterdayDate/toTypeScriptType, with Go's results and errors."""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from corral.errors import TemplateError
from corral.template import Template


def render(src: str, data: Any = None) -> str:
    return Template.parse(src).execute(data)


def error_of(src: str, data: Any = None) -> str:
    with pytest.raises(TemplateError) as info:
        render(src, data)
    return str(info.value)


LOGIC_CASES: list[tuple[str, Any, str]] = [
    ("{{ and 1 2 }}", None, "2"),
    ("{{ and 0 2 }}", None, "0"),
    ('{{ and "" 2 }}', None, ""),
    ("{{ and 1 }}", None, "1"),
    ('{{ or 0 "" }}', None, ""),
    ('{{ or 0 "x" 2 }}', None, "x"),
    ('{{ or .Missing "d" }}', {}, "d"),
    ("{{ and false (index .L 5) }}", {"L": []}, "false"),
    ("{{ or true (index .L 5) }}", {"L": []}, "true"),
    ("{{ not 1 }}", None, "false"),
    ('{{ not "" }}', None, "true"),
    ("{{ not .Missing }}", {}, "true"),
    ("{{ and .A .B | not }}", {"A": 1, "B": 0}, "true"),
]


@pytest.mark.parametrize(("src", "data", "expected"), LOGIC_CASES)
def test_logic(src: str, data: Any, expected: str) -> None:
    assert render(src, data) == expected


COMPARISON_CASES = [
    ("{{ eq 1 1 }}", None, "true"),
    ('{{ eq "a" "a" }}', None, "true"),
    ('{{ eq "a" "b" }}', None, "false"),
    ("{{ eq 1 2 3 1 }}", None, "true"),
    ("{{ eq 1 2 3 }}", None, "false"),
    ("{{ eq true true }}", None, "true"),
    ("{{ eq 1.5 1.5 }}", None, "true"),
    ("{{ eq .I 3 }}", {"I": 3}, "true"),
    ("{{ eq .F 0.5 }}", {"F": 0.5}, "true"),
    ('{{ eq .Role "user" }}', {"Role": "user"}, "true"),
    ('{{ eq .Missing "x" }}', {}, "false"),
    ("{{ eq nil nil }}", None, "true"),
    ("{{ eq .P .P }}", {"P": (1, 2)[0]}, "true"),
    ("{{ ne 1 2 }}", None, "true"),
    ('{{ ne "a" "a" }}', None, "false"),
    ("{{ lt 1 2 }}", None, "true"),
    ("{{ lt 2 1 }}", None, "false"),
    ("{{ le 2 2 }}", None, "true"),
    ("{{ le 3 2 }}", None, "false"),
    ("{{ gt 3 2 }}", None, "true"),
    ("{{ gt 2 2 }}", None, "false"),
    ("{{ ge 2 3 }}", None, "false"),
    ("{{ ge 2 2 }}", None, "true"),
    ('{{ lt "a" "b" }}', None, "true"),
    ('{{ lt "b" "a" }}', None, "false"),
    ('{{ lt "Z" "a" }}', None, "true"),
    ("{{ lt 1.5 2.5 }}", None, "true"),
    ("{{ lt -1 0 }}", None, "true"),
    ("{{ lt (len .L) 3 }}", {"L": [1, 2]}, "true"),
]


@pytest.mark.parametrize(("src", "data", "expected"), COMPARISON_CASES)
def test_comparisons(src: str, data: Any, expected: str) -> None:
    assert render(src, data) == expected


COMPARISON_ERRORS = [
    (
        "{{ eq 1 1.0 }}",
        None,
        "error calling eq: incompatible types for comparison: int and float64",
    ),
    ('{{ eq "1" 1 }}', None, "error calling eq: incompatible types for comparison: string and int"),
    ("{{ eq true 1 }}", None, "error calling eq: incompatible types for comparison: bool and int"),
    ("{{ eq 1 }}", None, "error calling eq: missing argument for comparison"),
    (
        "{{ lt 1 2.5 }}",
        None,
        "error calling lt: incompatible types for comparison: int and float64",
    ),
    ("{{ lt true false }}", None, "error calling lt: invalid type for comparison"),
    ("{{ lt .Missing 1 }}", {}, "error calling lt: invalid type for comparison"),
    ("{{ gt .L 1 }}", {"L": [1]}, "error calling gt: invalid type for comparison"),
    (
        "{{ eq .L .L }}",
        {"L": [1]},
        "error calling eq: non-comparable type [%!s(int=1)]: []interface {}",
    ),
    (
        "{{ eq .L .M }}",
        {"L": ["a"], "M": {}},
        "error calling eq: non-comparable types [a]: []interface {}, "
        "map[string]interface {}: map[]",
    ),
    ("{{ ne 1 2 3 }}", None, "wrong number of args for ne: want 2 got 3"),
]


@pytest.mark.parametrize(("src", "data", "message"), COMPARISON_ERRORS)
def test_comparison_errors(src: str, data: Any, message: str) -> None:
    assert error_of(src, data).endswith(": " + message)


COLLECTION_CASES = [
    ('{{ len "abc" }}', None, "3"),
    ('{{ len "héllo" }}', None, "6"),
    ("{{ len . }}", [1, 2, 3], "3"),
    ("{{ len . }}", {"a": 1}, "1"),
    ("{{ len .S }}", {"S": ""}, "0"),
    ("{{ index . 1 }}", ["a", "b"], "b"),
    ("{{ index . 1 0 }}", [[1], [2, 3]], "2"),
    ('{{ index . "k" }}', {"k": "v"}, "v"),
    ('{{ index . "k" 1 }}', {"k": ["x", "y"]}, "y"),
    ('{{ index "abc" 1 }}', None, "98"),
    ("{{ index . }}", [1], "[1]"),
    ("{{ index .M 2 }}", {"M": {1: "one", 2: "two"}}, "two"),
    ('{{ slice "hello" 1 3 }}', None, "el"),
    ('{{ slice "hello" 2 }}', None, "llo"),
    ('{{ slice "hello" }}', None, "hello"),
    ("{{ slice . 1 2 }}", [1, 2, 3], "[2]"),
    ("{{ slice . }}", [1, 2, 3], "[1 2 3]"),
    ("{{ slice . 3 }}", [1, 2, 3], "[]"),
    ("{{ slice . 0 1 2 }}", [1, 2, 3], "[1]"),
    ("{{ len (slice .Messages 1) }}", {"Messages": [1, 2, 3]}, "2"),
]


@pytest.mark.parametrize(("src", "data", "expected"), COLLECTION_CASES)
def test_len_index_slice(src: str, data: Any, expected: str) -> None:
    assert render(src, data) == expected


COLLECTION_ERRORS = [
    ("{{ len 3 }}", None, "error calling len: len of type int"),
    ("{{ len .Missing }}", {}, "error calling len: len of nil pointer"),
    ("{{ index . 5 }}", [1], "error calling index: index out of range: 5"),
    ("{{ index . 1 }}", [1], "error calling index: index out of range: 1"),
    ("{{ index . -1 }}", [1], "error calling index: index out of range: -1"),
    ('{{ index . "a" }}', [1], "error calling index: cannot index slice/array with type string"),
    ("{{ index . nil }}", [1], "error calling index: cannot index slice/array with nil"),
    ("{{ index 3 0 }}", None, "error calling index: can't index item of type int"),
    ("{{ index .Missing 0 }}", {}, "error calling index: index of untyped nil"),
    ("{{ index . 0 0 }}", {"0": 1}, "error calling index: value has type int; should be string"),
    ('{{ index . "a" 0 }}', {"a": None}, "error calling index: index of nil pointer"),
    ("{{ slice . 2 1 }}", [1, 2, 3], "error calling slice: invalid slice index: 2 > 1"),
    ("{{ slice . 0 9 }}", [1, 2, 3], "error calling slice: index out of range: 9"),
    ("{{ slice 3 }}", None, "error calling slice: can't slice item of type int"),
    ('{{ slice "abc" 0 1 2 }}', None, "error calling slice: cannot 3-index slice a string"),
    ("{{ slice .Missing }}", {}, "error calling slice: slice of untyped nil"),
    ("{{ slice . 0 0 0 0 }}", [1], "error calling slice: too many slice indexes: 4"),
    ("{{ slice . 0 2 1 }}", [1, 2, 3], "error calling slice: invalid slice index: 2 > 1"),
    ("{{ len }}", None, "wrong number of args for len: want 1 got 0"),
    ("{{ index }}", None, "wrong number of args for index: want at least 1 got 0"),
    ("{{ not }}", None, "wrong number of args for not: want 1 got 0"),
    ("{{ and }}", None, "wrong number of args for and: want at least 1 got 0"),
    ("{{ 1 | len 2 }}", None, "wrong number of args for len: want 1 got 2"),
]


@pytest.mark.parametrize(("src", "data", "message"), COLLECTION_ERRORS)
def test_len_index_slice_errors(src: str, data: Any, message: str) -> None:
    assert error_of(src, data).endswith(": " + message)


PRINT_CASES = [
    ('{{ print "a" "b" }}', "ab"),
    ("{{ print 1 2 }}", "1 2"),
    ('{{ print "a" 1 2 "b" }}', "a1 2b"),
    ("{{ print }}", ""),
    ("{{ print nil }}", "<nil>"),
    ("{{ print 1.5 true }}", "1.5 true"),
    ('{{ println "a" 1 }}', "a 1\n"),
    ("{{ println }}", "\n"),
]


@pytest.mark.parametrize(("src", "expected"), PRINT_CASES)
def test_print_and_println(src: str, expected: str) -> None:
    assert render(src) == expected


PRINTF_CASES: list[tuple[str, list[Any], str]] = [
    ("%s", ["x"], "x"),
    ("%d", [42], "42"),
    ("%5d", [42], "   42"),
    ("%-5d|", [42], "42   |"),
    ("%05d", [42], "00042"),
    ("%05d", [-42], "-0042"),
    ("%+d", [5], "+5"),
    ("% d", [5], " 5"),
    ("%x", [255], "ff"),
    ("%X", [255], "FF"),
    ("%#x", [255], "0xff"),
    ("%x", [-255], "-ff"),
    ("%o", [8], "10"),
    ("%O", [8], "0o10"),
    ("%b", [5], "101"),
    ("%c", [65], "A"),
    ("%U", [65], "U+0041"),
    ("%q", [65], "'A'"),
    ("%.3d", [7], "007"),
    ("%f", [3.14159], "3.141590"),
    ("%.2f", [3.14159], "3.14"),
    ("%8.3f", [3.14159], "   3.142"),
    ("%08.3f", [-3.14159], "-003.142"),
    ("%e", [1234.5678], "1.234568e+03"),
    ("%E", [1234.5678], "1.234568E+03"),
    ("%+.1e", [12345.0], "+1.2e+04"),
    ("%g", [1234.5678], "1234.5678"),
    ("%g", [1e6], "1e+06"),
    ("%.3g", [1234.5678], "1.23e+03"),
    ("%v", [2.50], "2.5"),
    ("%v", [1e21], "1e+21"),
    ("%v", [123456789.0], "1.23456789e+08"),
    ("%v", [-0.0], "-0"),
    ("%v", [float("inf")], "+Inf"),
    ("%v", [float("-inf")], "-Inf"),
    ("%v", [float("nan")], "NaN"),
    ("%6.2f%%", [12.3456], " 12.35%"),
    ("%f", [1], "%!f(int=1)"),
    ("%d", [1.5], "%!d(float64=1.5)"),
    ("%q", ["hi\n"], '"hi\\n"'),
    ("%q", ["é\x01"], '"é\\x01"'),
    ("%+q", ["é"], '"\\u00e9"'),
    ("%#q", ["raw"], "`raw`"),
    ("%x", ["hi"], "6869"),
    ("%X", ["hi"], "6869"),
    ("% x", ["hi"], "68 69"),
    ("%10s|", ["abc"], "       abc|"),
    ("%-10s|", ["abc"], "abc       |"),
    ("%.2s", ["abcdef"], "ab"),
    ("%5.1s|", ["abc"], "    a|"),
    ("%t", [True], "true"),
    ("%v", [False], "false"),
    ("%s", [True], "%!s(bool=true)"),
    ("%d", ["x"], "%!d(string=x)"),
    ("%v", [[1, "a"]], "[1 a]"),
    ("%d", [[1, 2]], "[1 2]"),
    ("%s", [["a", "b"]], "[a b]"),
    ("%q", [["a", "b"]], '["a" "b"]'),
    ("%d", [["a"]], "[%!d(string=a)]"),
    ("%v", [{"b": 2, "a": 1}], "map[a:1 b:2]"),
    ("%v", [[[1, 2], [3]]], "[[1 2] [3]]"),
    ("%v", [[None]], "[<nil>]"),
    ("%T", [1], "int"),
    ("%T", ["a"], "string"),
    ("%T", [1.5], "float64"),
    ("%T", [True], "bool"),
    ("%T", [[1]], "[]interface {}"),
    ("%T", [{}], "map[string]interface {}"),
    ("%T", [None], "<nil>"),
    ("%%", [], "%"),
    ("100%%", [], "100%"),
    ("%d %d", [1], "1 %!d(MISSING)"),
    ("%d", [1, 2], "1%!(EXTRA int=2)"),
    ("%d", [1, "a", None], "1%!(EXTRA string=a, <nil>)"),
    ("%", [], "%!(NOVERB)"),
    ("%z", [1], "%!z(int=1)"),
    ("%[2]d %[1]d", [1, 2], "2 1"),
    ("%[3]d", [1, 2], "%!d(BADINDEX)"),
    ("%*d", [5, 42], "   42"),
    ("%-*d|", [4, 7], "7   |"),
    ("%.*f", [1, 3.14159], "3.1"),
    ("%v", [None], "<nil>"),
    ("%s", [None], "%!s(<nil>)"),
    ("%5v|", [None], "<nil>|"),
    ("%v %v", [1 + 2j, 0.5], "(1+2i) 0.5"),
    ("no verbs", [], "no verbs"),
    ("%s and %s", ["a", "b"], "a and b"),
]


@pytest.mark.parametrize(("fmt", "args", "expected"), PRINTF_CASES)
def test_printf_verbs(fmt: str, args: list[Any], expected: str) -> None:
    params = "".join(f" (index .A {i})" for i in range(len(args)))
    assert render(f"{{{{ printf .F{params} }}}}", {"F": fmt, "A": args}) == expected


def test_printf_format_must_be_a_string() -> None:
    assert error_of("{{ printf 1 }}").endswith("at <1>: expected string; found 1")
    assert error_of("{{ printf .X }}", {"X": 3}).endswith(
        "at <.X>: wrong type for value; expected string; got int"
    )
    assert error_of("{{ printf }}").endswith(
        "wrong number of args for printf: want at least 1 got 0"
    )


ESCAPE_CASES = [
    ("{{ html . }}", "<b>\"x\" & 'y'</b>", "&lt;b&gt;&#34;x&#34; &amp; &#39;y&#39;&lt;/b&gt;"),
    ("{{ html 1 2 }}", None, "1 2"),
    ('{{ html "a" "b" }}', None, "ab"),
    ("{{ html . }}", "nul\x00", "nul\ufffd"),
    ("{{ js . }}", 'it\'s "q" <x> & a=b', 'it\\\'s \\"q\\" \\u003Cx\\u003E \\u0026 a\\u003Db'),
    ("{{ js . }}", "line\nnext\\", "line\\u000Anext\\\\"),
    ("{{ js . }}", "é", "é"),
    ("{{ urlquery . }}", "a b&c=d/é~", "a+b%26c%3Dd%2F%C3%A9~"),
    ("{{ urlquery 1 2 }}", None, "1+2"),
    ("{{ . | html }}", "<>", "&lt;&gt;"),
]


@pytest.mark.parametrize(("src", "data", "expected"), ESCAPE_CASES)
def test_escapers(src: str, data: Any, expected: str) -> None:
    assert render(src, data) == expected


@dataclass
class ToolFunction:
    name: str = field(metadata={"json": "name"})
    description: str = field(default="", metadata={"json": "description,omitempty"})
    internal: int = field(default=0, metadata={"json": "-"})


@dataclass
class Tool:
    type: str = field(metadata={"json": "type"})
    function: ToolFunction = field(metadata={"json": "function"})
    items: Any = field(default=None, metadata={"json": "items,omitempty"})


@dataclass
class Msg:
    Role: str
    Content: str


class RawJSON:
    def MarshalJSON(self) -> str:
        return '{"raw":true}'


JSON_CASES = [
    ({"b": 1, "a": "x"}, '{"a":"x","b":1}'),
    ("<a&b>", '"\\u003ca\\u0026b\\u003e"'),
    ([1, 2.5, None, True, "s"], '[1,2.5,null,true,"s"]'),
    (1e21, "1e+21"),
    (1e20, "100000000000000000000"),
    (1e-7, "1e-7"),
    (1.5e-10, "1.5e-10"),
    (0.000001, "0.000001"),
    (3.0, "3"),
    (-0.0, "-0"),
    (123456789, "123456789"),
    ("\u2028\u2029", '"\\u2028\\u2029"'),
    ("tab\tnl\nctl\x01", '"tab\\tnl\\nctl\\u0001"'),
    ("\b\f\r", '"\\b\\f\\r"'),
    ('q"b\\', '"q\\"b\\\\"'),
    ("é😀", '"é😀"'),
    ({"z": {"b": [], "a": {}}}, '{"z":{"a":{},"b":[]}}'),
    (Tool("function", ToolFunction("f")), '{"type":"function","function":{"name":"f"}}'),
    (
        Tool("function", ToolFunction("f", "d", 9), {"type": "string"}),
        '{"type":"function","function":{"name":"f","description":"d"},"items":{"type":"string"}}',
    ),
    (Msg("user", "hi"), '{"Role":"user","Content":"hi"}'),
    (float("nan"), ""),
    (float("inf"), ""),
    (b"hi", '"aGk="'),
    ({2: "b", 10: "a"}, '{"10":"a","2":"b"}'),
    (RawJSON(), '{"raw":true}'),
    (None, "null"),
    ((1, 2), "[1,2]"),
    ([], "[]"),
    ({}, "{}"),
]


@pytest.mark.parametrize(("value", "expected"), JSON_CASES)
def test_json_matches_go_marshal(value: Any, expected: str) -> None:
    assert render("{{ json .V }}", {"V": value}) == expected


def test_json_arguments_pipe() -> None:
    data = {"Tools": [{"function": {"name": "f", "parameters": {"type": "object"}}}]}
    expected = '[{"function":{"name":"f","parameters":{"type":"object"}}}]'
    assert render("{{ .Tools | json }}", data) == expected


def test_dates_are_local_yyyy_mm_dd() -> None:
    before = datetime.date.today()
    out = render('{{ currentDate }}|{{ yesterdayDate }}|{{ currentDate "2006-01-02" }}')
    after = datetime.date.today()
    today, yesterday, again = out.split("|")
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", today)
    assert today in (before.isoformat(), after.isoformat())
    assert again == today
    assert datetime.date.fromisoformat(yesterday) == datetime.date.fromisoformat(
        today
    ) - datetime.timedelta(days=1)
    assert error_of("{{ currentDate 1 }}").endswith("expected string; found 1")


@dataclass
class Prop:
    Type: list[str]
    Description: str = ""


TS_CASES = [
    ({"type": "string"}, "string"),
    ({"type": "integer"}, "number"),
    ({"type": "number"}, "number"),
    ({"type": "boolean"}, "boolean"),
    ({"type": "array"}, "any[]"),
    ({"type": "object"}, "Record<string, any>"),
    ({"type": "null"}, "null"),
    ({"type": ["string", "null"]}, "string | null"),
    ({"anyOf": [{"type": "string"}, {"type": "array"}]}, "string | any[]"),
    ({"type": "weird"}, "any"),
    ({}, "any"),
    ("string", "any"),
    (3, "any"),
    (None, "any"),
    (Prop(["boolean"]), "boolean"),
]


@pytest.mark.parametrize(("value", "expected"), TS_CASES)
def test_to_typescript_type(value: Any, expected: str) -> None:
    assert render("{{ toTypeScriptType .V }}", {"V": value}) == expected


def boom() -> str:
    raise ValueError("boom")


CALL_ERRORS = [
    ("{{ call .F }}", {"F": 1}, "error calling call: non-function .F of type int"),
    ("{{ call .Missing }}", {}, "error calling call: call of nil"),
    (
        "{{ call .F 1 2 }}",
        {"F": lambda x: x},
        "error calling call: wrong number of args for .F: got 2 want 1",
    ),
    ("{{ call .F }}", {"F": boom}, "error calling call: boom"),
    ("{{ call }}", None, "wrong number of args for call: want at least 1 got 0"),
]


@pytest.mark.parametrize(("src", "data", "message"), CALL_ERRORS)
def test_call_errors(src: str, data: Any, message: str) -> None:
    assert error_of(src, data).endswith(": " + message)


def test_call_with_piped_argument() -> None:
    assert render('{{ "x" | call .F "a" }}', {"F": lambda a, b: a + b}) == "ax"
