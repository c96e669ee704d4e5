"""Go field access on ``.Tools`` as Ollama's templates see them (its ``templateTool`` structs and
``api.ToolProperty``), rendered through corral's prompt path (:class:`PromptTemplate`).

The expected texts are what Go's text/template prints for Ollama's structs: a ``[]string`` as
``[a b]``, a nil slice as ``[]`` (``null`` in JSON), ``api.PropertyType`` through its
``String()``, the properties map through its ``String()`` as JSON with sorted keys.
"""

from __future__ import annotations

from typing import Any

import pytest

from corral.errors import BadRequest
from corral.prompt import ChatMessage, PromptTemplate
from tests.template.test_ollama_templates import COMMAND_R

WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather",
        "parameters": {
            "type": "object",
            "required": ["location"],
            "properties": {
                "location": {"type": "string", "description": "City name"},
                "unit": {"type": ["string", "null"], "description": "Unit", "enum": ["c", "f"]},
                "days": {"type": "array", "items": {"type": "integer"}, "default": [1]},
            },
            "additionalProperties": False,
        },
        "strict": True,
    },
}
BARE: dict[str, Any] = {"type": "function", "function": {"name": "now"}}


def render(body: str, tool: dict[str, Any] = WEATHER) -> str:
    """``body`` run once per tool, in a chat template (one that uses ``.Messages``)."""
    text = "{{- range .Messages }}{{ end }}{{- range .Tools }}" + body + "{{ end }}"
    return PromptTemplate(text).render([ChatMessage("user", "hi")], [tool])


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("{{ json .Function.Parameters.Required }}", '["location"]'),
        ("{{ .Function.Parameters.Required }}", "[location]"),
        ("{{ index .Function.Parameters.Required 0 }}", "location"),
        ("{{ len .Function.Parameters.Required }}", "1"),
        ("{{ .Function.Parameters.Type }}", "object"),
        (
            "{{ .Function.Name }}|{{ .Function.Description }}|{{ .Type }}",
            "get_weather|Get the weather|function",
        ),
        (
            "{{ range $k, $v := .Function.Parameters.Properties }}"
            "{{ $k }}={{ $v.Type }}/{{ $v.Description }}/{{ $v.Enum }};{{ end }}",
            "days=array//[];location=string/City name/[];unit=[string null]/Unit/[c f];",
        ),
        (
            "{{ range $k, $v := .Function.Parameters.Properties }}"
            "{{ if $v.Items }}{{ $k }}: {{ $v.Items }} {{ json $v.Items }}{{ end }}{{ end }}",
            'days: map[type:integer] {"type":"integer"}',
        ),
        (
            "{{ range $k, $v := .Function.Parameters.Properties }}{{ json $v.Type }};{{ end }}",
            '"array";"string";["string","null"];',
        ),
        ("{{ json .Function.Parameters.Properties.unit.Enum }}", '["c","f"]'),
        ("{{ if .Function.Parameters.Properties }}yes{{ end }}", "yes"),
        (
            "{{ .Function.Parameters.Properties }}",
            '{"days":{"type":"array","items":{"type":"integer"}},'
            '"location":{"type":"string","description":"City name"},'
            '"unit":{"type":["string","null"],"description":"Unit","enum":["c","f"]}}',
        ),
    ],
)
def test_tool_fields_resolve_like_ollama(body: str, expected: str) -> None:
    assert render(body) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("{{ json .Function.Parameters.Required }}", "null"),
        ("{{ .Function.Parameters.Required }}", "[]"),
        ("{{ .Function.Parameters.Type }}|", "|"),
        ("{{ .Function.Parameters.Properties }}", "{}"),
        ("{{ json .Function.Parameters }}", '{"type":"","properties":null}'),
        ("{{ if .Function.Parameters.Properties }}yes{{ else }}no{{ end }}", "no"),
        ("{{ range $k, $v := .Function.Parameters.Properties }}{{ $k }}{{ end }}", ""),
    ],
)
def test_tool_without_parameters(body: str, expected: str) -> None:
    assert render(body, BARE) == expected


def test_tool_json_has_only_ollamas_fields() -> None:
    """Keys Ollama's structs do not have (``strict``, ``additionalProperties``, a property's
    ``default``) are not in the JSON, as Ollama decodes the request into its types."""
    assert render("{{ json . }}") == (
        '{"type":"function","function":{"name":"get_weather","description":"Get the weather",'
        '"parameters":{"type":"object","required":["location"],"properties":{'
        '"days":{"type":"array","items":{"type":"integer"}},'
        '"location":{"type":"string","description":"City name"},'
        '"unit":{"type":["string","null"],"description":"Unit","enum":["c","f"]}}}}}'
    )
    assert render("{{ . }}") == render("{{ json . }}")


def test_unknown_field_is_a_template_error() -> None:
    with pytest.raises(BadRequest, match="can't evaluate field Nope"):
        render("{{ .Function.Parameters.Nope }}")


def test_command_r_lists_the_tool_arguments() -> None:
    """Ollama's command-r template ranges over the properties with ``$property.Type``."""
    out = PromptTemplate(COMMAND_R).render([ChatMessage("user", "hi")], [WEATHER])
    assert (
        "def get_weather(days: array, location: string, unit: [string null], ) -> List[Dict]:"
        in out
    )
    assert "        location (string): City name\n" in out
    assert "        unit ([string null]): Unit\n" in out
