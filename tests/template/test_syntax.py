"""Lexing and parsing: text, trim markers, comments, literals, pipelines, the public AST and
parse errors, with expectations taken from Go's text/template documentation and behaviour."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from corral.errors import TemplateError
from corral.template import (
    ActionNode,
    CommandNode,
    FieldNode,
    IfNode,
    ListNode,
    NumberNode,
    PipeNode,
    RangeNode,
    StringNode,
    Template,
    TemplateNode,
    TextNode,
    VariableNode,
    node_string,
)


def render(src: str, data: Any = None) -> str:
    return Template.parse(src).execute(data)


TRIM_CASES = [
    ("hello", None, "hello"),
    ("", None, ""),
    ("{{.}}", "x", "x"),
    ("a {{- .}}", "x", "ax"),
    ("{{. -}} b", "x", "xb"),
    ("a \n\t {{- . -}} \n b", "x", "axb"),
    ("a{{- .}}", "x", "ax"),
    ("{{- .}}  ", "x", "x  "),
    ("  \n{{- . -}}\n  ", "x", "x"),
    ("a {{-3}}", None, "a -3"),
    ("a {{ -3 }} b", None, "a -3 b"),
    ("{{ 3 -}}\n\n  x", None, "3x"),
    ('a\n{{- "b" }}\nc', None, "ab\nc"),
    ("a \t{{-\t. }}", "x", "ax"),
    ("a {{-\n. -}}\n b", "x", "axb"),
    ("a \r\n{{- . }}", "x", "ax"),
    ("a\u00a0{{- .}}", "x", "a\u00a0x"),
    ("{{ . }}  {{- . }}", "x", "xx"),
    ("{{ . -}}  {{ . }}", "x", "xx"),
    ("{{ . -}}\n\n{{- . }}", "x", "xx"),
    ("{{- range . }}\n  [{{ . }}]\n{{- end }}", [1, 2], "\n  [1]\n  [2]"),
    ("{{ range . -}}\n  {{ . }}\n{{ end }}", [1, 2], "1\n2\n"),
    ("{{ range . }}{{ . }} {{ end -}}\nend", [1, 2], "1 2 end"),
    ("{{ if true -}}   yes   {{- end }}", None, "yes"),
]


@pytest.mark.parametrize(("src", "data", "expected"), TRIM_CASES)
def test_text_and_trim_markers(src: str, data: Any, expected: str) -> None:
    assert render(src, data) == expected


COMMENT_CASES = [
    ("a{{/* c */}}b", "ab"),
    ("a {{- /* c */ -}} b", "ab"),
    ("a {{/* c */ -}} b", "a b"),
    ("a {{- /* c */}} b", "a b"),
    ("a{{/* line1\nline2 */}}b", "ab"),
    ("{{/**/}}", ""),
    ("{{- /* only */ -}}", ""),
    ("x\n{{- /* c */}}\ny", "x\ny"),
    ("{{/* {{ .Not }} parsed */}}ok", "ok"),
]


@pytest.mark.parametrize(("src", "expected"), COMMENT_CASES)
def test_comments(src: str, expected: str) -> None:
    assert render(src, {"A": 1}) == expected


LITERAL_CASES = [
    ('{{ "a\\tb" }}', "a\tb"),
    ("{{ `a\\tb` }}", "a\\tb"),
    ("{{ `multi\nline` }}", "multi\nline"),
    ("{{ `cr\r\nlf` }}", "cr\nlf"),
    ('{{ "q\\"uote" }}', 'q"uote'),
    ('{{ "\\u00e9\\U0001F600" }}', "é😀"),
    ('{{ "\\x41\\101" }}', "AA"),
    ("{{ 'a' }}", "97"),
    ("{{ '\\n' }}", "10"),
    ("{{ '\\'' }}", "39"),
    ("{{ 42 }}", "42"),
    ("{{ -7 }}", "-7"),
    ("{{ +7 }}", "7"),
    ("{{ 1.5 }}", "1.5"),
    ("{{ 1.0 }}", "1"),
    ("{{ 3.0e0 }}", "3"),
    ("{{ .5 }}", "0.5"),
    ("{{ 1e6 }}", "1e+06"),
    ("{{ 1e21 }}", "1e+21"),
    ("{{ 100000.0 }}", "100000"),
    ("{{ 123456.0 }}", "123456"),
    ("{{ 1000000.0 }}", "1e+06"),
    ("{{ 0.0001 }}", "0.0001"),
    ("{{ 0.00001 }}", "1e-05"),
    ("{{ -2.5e-10 }}", "-2.5e-10"),
    ("{{ 0x1F }}", "31"),
    ("{{ 0X1f }}", "31"),
    ("{{ 0o17 }}", "15"),
    ("{{ 017 }}", "15"),
    ("{{ 0b101 }}", "5"),
    ("{{ 1_000_000 }}", "1000000"),
    ("{{ 0x1p4 }}", "16"),
    ("{{ 2i }}", "(0+2i)"),
    ("{{ 1+2i }}", "(1+2i)"),
    ("{{ true }} {{ false }}", "true false"),
]


@pytest.mark.parametrize(("src", "expected"), LITERAL_CASES)
def test_literals(src: str, expected: str) -> None:
    assert render(src) == expected


PIPELINE_CASES = [
    ('{{ "a" | printf "%s!" }}', None, "a!"),
    ('{{ 1 | printf "%d-%d" 2 }}', None, "2-1"),
    ('{{ .X | len | printf "%03d" }}', {"X": [1, 2]}, "002"),
    ('{{ (printf "%s" "x") }}', None, "x"),
    ('{{ printf "%s%s" (print 1) (print 2) }}', None, "12"),
    ("{{ .X | eq 1 }}", {"X": 1}, "true"),
    ("{{ .X | not }}", {"X": ""}, "true"),
    ("{{ .A | and .B }}", {"A": "a", "B": "b"}, "a"),
    ("{{ .A | or .B }}", {"A": "a", "B": "b"}, "b"),
    ('{{ (len .L) | printf "%d items" }}', {"L": [1, 2, 3]}, "3 items"),
    ('{{ print (print (print "deep")) }}', None, "deep"),
    ("{{ .X | }}", {"X": "trailing pipe"}, "trailing pipe"),
]


@pytest.mark.parametrize(("src", "data", "expected"), PIPELINE_CASES)
def test_pipelines(src: str, data: Any, expected: str) -> None:
    assert render(src, data) == expected


def test_ast_of_field_chain_matches_go_positions() -> None:
    t = Template.parse("{{ .A.B }}")
    assert t.root == ListNode(
        0,
        (
            ActionNode(
                3,
                PipeNode(3, (), False, (CommandNode(3, (FieldNode(5, ("A", "B")),)),)),
            ),
        ),
    )


def test_ast_of_control_structures() -> None:
    t = Template.parse('a{{ if $x := .C }}{{ $x }}{{ else }}b{{ end }}{{ template "t" . }}')
    text, branch, call = t.root.nodes
    assert text == TextNode(0, "a")
    assert isinstance(branch, IfNode)
    assert branch.pipe.decl == (VariableNode(7, ("$x",)),)
    assert branch.else_list is not None and branch.else_list.nodes == (TextNode(36, "b"),)
    assert isinstance(call, TemplateNode) and call.name == "t"
    assert node_string(branch) == "{{if $x := .C}}{{$x}}{{else}}b{{end}}"
    assert node_string(call) == '{{template "t" .}}'


def test_ast_else_if_nests_an_if_node() -> None:
    t = Template.parse("{{ if .A }}1{{ else if .B }}2{{ else }}3{{ end }}")
    (outer,) = t.root.nodes
    assert isinstance(outer, IfNode) and outer.else_list is not None
    (inner,) = outer.else_list.nodes
    assert isinstance(inner, IfNode) and inner.else_list is not None


def test_ast_literals_and_range() -> None:
    t = Template.parse('{{ range $i, $v := .L }}{{ printf "%d" 0x10 }}{{ end }}')
    (rng,) = t.root.nodes
    assert isinstance(rng, RangeNode)
    assert [v.ident for v in rng.pipe.decl] == [("$i",), ("$v",)]
    action = rng.list.nodes[0]
    assert isinstance(action, ActionNode)
    args = action.pipe.cmds[0].args
    assert isinstance(args[1], StringNode) and args[1].text == "%d"
    assert isinstance(args[2], NumberNode) and args[2].value == 16


def test_template_is_frozen_and_replaceable() -> None:
    t = Template.parse("{{ .Prompt }}")
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.name = "x"  # type: ignore[misc]
    response = Template.parse("{{ .Response }}").root.nodes
    extended = dataclasses.replace(t, root=ListNode(0, t.root.nodes + response))
    assert extended.execute({"Prompt": "p", "Response": "r"}) == "pr"
    assert str(t) == "{{ .Prompt }}"


PARSE_ERRORS = [
    ("{{ .X }", 'template: :1: unexpected "}" in operand'),
    ("{{ .X", "template: :1: unclosed action"),
    ("a\n{{ .X\n", "template: :3: unclosed action started at :2"),
    ("a\n{{ .X\nb", 'template: :3: function "b" not defined'),
    ("{{ end }}", "template: :1: unexpected {{end}}"),
    ("{{ else }}", "template: :1: unexpected {{else}}"),
    ("a\nb\n{{ end }}", "template: :3: unexpected {{end}}"),
    ("{{ if true }}x", "template: :1: unexpected EOF"),
    ("{{ range . }}{{ else }}{{ else }}{{ end }}", "template: :1: expected end; found {{else}}"),
    ("{{ $x }}", 'template: :1: undefined variable "$x"'),
    ("{{ if true }}{{ $x := 1 }}{{ end }}{{ $x }}", 'template: :1: undefined variable "$x"'),
    ('{{ $x := 1 }}{{ define "t" }}{{ $x }}{{ end }}', 'template: :1: undefined variable "$x"'),
    ("{{ range $i, $v := . }}{{ end }}{{ $i }}", 'template: :1: undefined variable "$i"'),
    ("{{ foo 1 }}", 'template: :1: function "foo" not defined'),
    ("{{ break }}", "template: :1: {{break}} outside {{range}}"),
    ("{{ continue }}", "template: :1: {{continue}} outside {{range}}"),
    ("{{ range . }}{{ else }}{{ break }}{{ end }}", "template: :1: {{break}} outside {{range}}"),
    ("{{ range . }}{{ break 1 }}{{ end }}", 'template: :1: unexpected "1" in {{break}}'),
    ("{{ /* c */ }}", 'template: :1: unexpected "/" in command'),
    ("{{/* unclosed", "template: :1: unclosed comment"),
    ("{{/* c */ .X }}", "template: :1: comment ends before closing delimiter"),
    ('{{ "abc }}', "template: :1: unterminated quoted string"),
    ("{{ `abc }}", "template: :1: unterminated raw quoted string"),
    ("{{ 'a }}", "template: :1: unterminated character constant"),
    ("{{ 'ab' }}", "template: :1: malformed character constant: 'ab'"),
    ('{{ "\\q" }}', "template: :1: invalid syntax"),
    ("{{ 3x }}", 'template: :1: bad number syntax: "3x"'),
    ("{{ .X! }}", "template: :1: bad character U+0021 '!'"),
    ("{{ 1 | 2 }}", "template: :1: non executable command in pipeline stage 2"),
    ("{{ .X | . }}", "template: :1: non executable command in pipeline stage 2"),
    ("{{ }}", "template: :1: missing value for command"),
    ("{{ if }}{{ end }}", "template: :1: missing value for if"),
    ("{{ range $i, $v, $w := . }}{{ end }}", "template: :1: too many declarations in range"),
    ("{{ $x, $y := 1 }}", "template: :1: too many declarations in command"),
    ("{{ range $i, 1 }}{{ end }}", "template: :1: range can only initialize variables"),
    (
        '{{ define "a" }}x{{ end }}{{ define "a" }}y{{ end }}',
        'template: :1: template: multiple definition of template "a"',
    ),
    ("{{ template .X }}", 'template: :1: unexpected ".X" in template clause'),
    ('{{ define "a" }}{{ else }}{{ end }}', "template: :1: unexpected {{else}} in define clause"),
    ("{{ (1 }}", "template: :1: unclosed left paren"),
    ("{{ 1) }}", 'template: :1: unexpected ")" in command'),
    ('{{ "a".X }}', 'template: :1: unexpected . after term "\\"a\\""'),
    ("{{ .X :}}", "template: :1: expected :="),
    ("{{ \x01 }}", "template: :1: unrecognized character in action: U+0001"),
    ("{{ 99999999999999999999 }}", 'template: :1: integer overflow: "99999999999999999999"'),
    (
        '{{ if true }}{{ define "x" }}{{ end }}{{ end }}',
        "template: :1: unexpected <define> in command",
    ),
    ("{{ | .X }}", 'template: :1: unexpected "|" in command'),
    ("{{ .X (}}", "template: :1: unclosed left paren"),
    ("{{ end x }}", 'template: :1: unexpected "x" in end'),
]


@pytest.mark.parametrize(("src", "message"), PARSE_ERRORS)
def test_parse_errors_use_go_wording(src: str, message: str) -> None:
    with pytest.raises(TemplateError) as info:
        Template.parse(src)
    assert str(info.value) == message
    assert info.value.status == 400


def test_parse_error_names_the_template() -> None:
    with pytest.raises(TemplateError, match=r"^template: main:2: unexpected \{\{end\}\}$"):
        Template.parse("ok\n{{ end }}", name="main")


def test_empty_redefinition_is_allowed() -> None:
    t = Template.parse('{{ define "T" }}x{{ end }}{{ define "T" }} {{ end }}{{ template "T" }}')
    assert t.execute(None) == "x"


def test_deep_parenthesis_nesting_is_an_error_not_a_crash() -> None:
    with pytest.raises(TemplateError, match="max expression depth exceeded"):
        Template.parse("{{ " + "(" * 500 + "1" + ")" * 500 + " }}")


def test_deep_control_nesting_is_an_error_not_a_crash() -> None:
    src = "{{ if true }}" * 2000 + "{{ end }}" * 2000
    with pytest.raises(TemplateError):
        Template.parse(src)
