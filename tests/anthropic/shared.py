"""What the Anthropic API tests share: a template that shows tools, a tool, a question."""

from __future__ import annotations

from anthropic.types import MessageParam, ToolParam

# ChatML that lists the tools in the system message and renders tool calls as JSON, which
# corral's tool parser reads back from the model's answer
TOOLS_TEMPLATE = (
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n"
    '{{- if and (eq .Role "system") $.Tools }} Tools: {{ json $.Tools }}{{ end }}\n'
    "{{- if .ToolCalls }}{{ range .ToolCalls }}"
    '{"name": "{{ .Function.Name }}", "arguments": {{ json .Function.Arguments }}}'
    "{{ end }}{{ else }}{{ .Content }}{{ end }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"
)
WEATHER: ToolParam = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def ask(text: str) -> list[MessageParam]:
    return [{"role": "user", "content": text}]
