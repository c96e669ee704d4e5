"""Real Ollama templates: exact renderings of chat conversations (Ollama's own golden outputs
for its template/testdata), a tool-calling template, and uses()/identifiers()/vars()."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from corral.errors import TemplateError
from corral.template import Template

CHATML = (
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n"
    "{{ .Content }}<|im_end|>\n"
    "{{ end }}<|im_start|>assistant\n"
)
LLAMA3 = (
    "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n"
    "{{ .Content }}<|eot_id|>\n"
    "{{- end }}<|start_header_id|>assistant<|end_header_id|>\n\n"
)
MISTRAL = (
    "[INST] {{ range $index, $_ := .Messages }}\n"
    '{{- if eq .Role "system" }}{{ .Content }}\n\n'
    '{{ else if eq .Role "user" }}{{ .Content }}[/INST]\n'
    '{{- else if eq .Role "assistant" }} {{ .Content }}</s>[INST] {{ end }}\n'
    "{{- end }}"
)
GEMMA3 = (
    "{{- range $i, $_ := .Messages }}\n"
    "{{- $last := eq (len (slice $.Messages $i)) 1 }}\n"
    '{{- if eq .Role "user" }}<start_of_turn>user\n'
    "{{- if and (eq $i 1) $.System }}\n"
    "{{ $.System }}\n"
    "{{ end }}\n"
    "{{ .Content }}<end_of_turn>\n"
    '{{ else if eq .Role "assistant" }}<start_of_turn>model\n'
    "{{ .Content }}<end_of_turn>\n"
    "{{ end }}\n"
    "{{- if $last }}<start_of_turn>model\n"
    "{{ end }}\n"
    "{{- end }}\n"
)
COMMAND_R = (
    "{{- if or .Tools .System }}<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>\n"
    "{{- if .Tools }}# Safety Preamble\n"
    "The instructions in this section override those in the task description and styl"
    "e guide sections. Don't answer questions that are harmful or immoral.\n"
    "\n"
    "# System Preamble\n"
    "## Basic Rules\n"
    "You are a powerful conversational AI trained by Cohere to help people. You are a"
    "ugmented by a number of tools, and your job is to use and consume the output of "
    "these tools to best help the user. You will see a conversation history between y"
    "ourself and a user, ending with an utterance from the user. You will then see a "
    "specific instruction instructing you what kind of response to generate. When you"
    " answer the user's requests, you cite your sources in your answers, according to"
    " those instructions.\n"
    "\n"
    "{{ if .System }}# User Preamble\n"
    "{{ .System }}\n"
    "{{- end }}\n"
    "\n"
    "## Available Tools\n"
    "Here is a list of tools that you have available to you:\n"
    "{{- range .Tools }}\n"
    "\n"
    "```python\n"
    "def {{ .Function.Name }}(\n"
    "{{- range $name, $property := .Function.Parameters.Properties }}{{ $name }}: {{ "
    "$property.Type }}, {{ end }}) -> List[Dict]:\n"
    "    '''{{ .Function.Description }}\n"
    "\n"
    "{{- if .Function.Parameters.Properties }}\n"
    "\n"
    "    Args:\n"
    "{{- range $name, $property := .Function.Parameters.Properties }}\n"
    "        {{ $name }} ({{ $property.Type }}): {{ $property.Description }}\n"
    "{{- end }}\n"
    "{{- end }}\n"
    "    '''\n"
    "    pass\n"
    "```\n"
    "{{- end }}\n"
    "{{- else if .System }}{{ .System }}\n"
    "{{- end }}<|END_OF_TURN_TOKEN|>\n"
    "{{- end }}\n"
    "{{- range .Messages }}\n"
    '{{- if eq .Role "system" }}\n'
    "{{- continue }}\n"
    "{{- end }}<|START_OF_TURN_TOKEN|>\n"
    '{{- if eq .Role "user" }}<|USER_TOKEN|>{{ .Content }}\n'
    "{{- if $.Tools }}<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>Write 'Action:' followed"
    " by a json-formatted list of actions that you want to perform in order to produc"
    "e a good response to the user's last input. You can use any of the supplied tool"
    "s any number of times, but you should aim to execute the minimum number of neces"
    "sary actions for the input. You should use the `directly-answer` tool if calling"
    " the other tools is unnecessary. The list of actions you want to call should be "
    "formatted as a list of json objects, for example:\n"
    "```json\n"
    "[\n"
    "    {\n"
    '        "tool_name": title of the tool in the specification,\n'
    '        "parameters": a dict of parameters to input into the tool as they are de'
    "fined in the specs, or {} if it takes no parameters\n"
    "    }\n"
    "]```\n"
    "{{- end }}\n"
    '{{- else if eq .Role "assistant" }}<|CHATBOT_TOKEN|>\n'
    "{{- if .Content }}{{ .Content }}\n"
    "{{- else if .ToolCalls }}\n"
    "Action: ```json\n"
    "[\n"
    "{{- range .ToolCalls }}\n"
    "    {\n"
    '        "tool_name": "{{ .Function.Name }}",\n'
    '        "parameters": {{ .Function.Arguments }}\n'
    "    }\n"
    "{{- end }}\n"
    "]```\n"
    "{{- end }}\n"
    '{{- else if eq .Role "tool" }}<|SYSTEM_TOKEN|><results>\n'
    "console_output: {{ .Content }}\n"
    "</results>\n"
    "{{- end }}<|END_OF_TURN_TOKEN|>\n"
    "{{- end }}<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>\n"
)


@dataclass
class Message:
    """Mirrors Ollama's templateMessage."""

    Role: str
    Content: str
    Thinking: str = ""
    Images: list[bytes] = field(default_factory=list)
    ToolCalls: list[Any] = field(default_factory=list)
    ToolName: str = ""
    ToolCallID: str = ""


HELLO = "Hello, how are you?"
GREAT = "I'm doing great. How can I help you today?"
SHOW = "I'd like to show off how chat templating works!"
SYSTEM = "You are a helpful assistant."
CONVERSATIONS = {
    "user": [("user", HELLO)],
    "user-assistant-user": [("user", HELLO), ("assistant", GREAT), ("user", SHOW)],
    "system-user-assistant-user": [
        ("system", SYSTEM),
        ("user", HELLO),
        ("assistant", GREAT),
        ("user", SHOW),
    ],
}


def values(conversation: str) -> dict[str, Any]:
    """The data Ollama passes in messages mode."""
    turns = CONVERSATIONS[conversation]
    return {
        "System": "\n\n".join(text for role, text in turns if role == "system"),
        "Messages": [Message(role, text) for role, text in turns],
        "Tools": None,
        "Response": "",
        "Think": False,
        "ThinkLevel": "",
        "IsThinkSet": False,
    }


GOLDEN = [
    (
        CHATML,
        "user",
        f"<|im_start|>user\n{HELLO}<|im_end|>\n<|im_start|>assistant\n",
    ),
    (
        CHATML,
        "user-assistant-user",
        f"<|im_start|>user\n{HELLO}<|im_end|>\n<|im_start|>assistant\n{GREAT}<|im_end|>\n"
        f"<|im_start|>user\n{SHOW}<|im_end|>\n<|im_start|>assistant\n",
    ),
    (
        CHATML,
        "system-user-assistant-user",
        f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{HELLO}<|im_end|>\n"
        f"<|im_start|>assistant\n{GREAT}<|im_end|>\n<|im_start|>user\n{SHOW}<|im_end|>\n"
        "<|im_start|>assistant\n",
    ),
    (
        LLAMA3,
        "user",
        f"<|start_header_id|>user<|end_header_id|>\n\n{HELLO}<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
    ),
    (
        LLAMA3,
        "user-assistant-user",
        f"<|start_header_id|>user<|end_header_id|>\n\n{HELLO}<|eot_id|>"
        f"<|start_header_id|>assistant<|end_header_id|>\n\n{GREAT}<|eot_id|>"
        f"<|start_header_id|>user<|end_header_id|>\n\n{SHOW}<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
    ),
    (
        LLAMA3,
        "system-user-assistant-user",
        f"<|start_header_id|>system<|end_header_id|>\n\n{SYSTEM}<|eot_id|>"
        f"<|start_header_id|>user<|end_header_id|>\n\n{HELLO}<|eot_id|>"
        f"<|start_header_id|>assistant<|end_header_id|>\n\n{GREAT}<|eot_id|>"
        f"<|start_header_id|>user<|end_header_id|>\n\n{SHOW}<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
    ),
    (MISTRAL, "user", f"[INST] {HELLO}[/INST]"),
    (
        MISTRAL,
        "user-assistant-user",
        f"[INST] {HELLO}[/INST] {GREAT}</s>[INST] {SHOW}[/INST]",
    ),
    (
        MISTRAL,
        "system-user-assistant-user",
        f"[INST] {SYSTEM}\n\n{HELLO}[/INST] {GREAT}</s>[INST] {SHOW}[/INST]",
    ),
    (
        GEMMA3,
        "user",
        f"<start_of_turn>user\n{HELLO}<end_of_turn>\n<start_of_turn>model\n\n",
    ),
    (
        GEMMA3,
        "user-assistant-user",
        f"<start_of_turn>user\n{HELLO}<end_of_turn>\n<start_of_turn>model\n{GREAT}<end_of_turn>\n"
        f"<start_of_turn>user\n{SHOW}<end_of_turn>\n<start_of_turn>model\n\n",
    ),
    (
        GEMMA3,
        "system-user-assistant-user",
        f"<start_of_turn>user\n{SYSTEM}\n\n{HELLO}<end_of_turn>\n<start_of_turn>model\n"
        f"{GREAT}<end_of_turn>\n<start_of_turn>user\n{SHOW}<end_of_turn>\n"
        "<start_of_turn>model\n\n",
    ),
    (
        COMMAND_R,
        "user",
        f"<|START_OF_TURN_TOKEN|><|USER_TOKEN|>{HELLO}<|END_OF_TURN_TOKEN|>"
        "<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>\n",
    ),
    (
        COMMAND_R,
        "system-user-assistant-user",
        f"<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>{SYSTEM}<|END_OF_TURN_TOKEN|>"
        f"<|START_OF_TURN_TOKEN|><|USER_TOKEN|>{HELLO}<|END_OF_TURN_TOKEN|>"
        f"<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>{GREAT}<|END_OF_TURN_TOKEN|>"
        f"<|START_OF_TURN_TOKEN|><|USER_TOKEN|>{SHOW}<|END_OF_TURN_TOKEN|>"
        "<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>\n",
    ),
]


@pytest.mark.parametrize(("text", "conversation", "expected"), GOLDEN)
def test_ollama_template_renders_exactly(text: str, conversation: str, expected: str) -> None:
    assert Template.parse(text).execute(values(conversation)) == expected


def test_messages_as_plain_dicts_render_the_same() -> None:
    data = values("system-user-assistant-user")
    as_dicts = dict(data, Messages=[vars(m) for m in data["Messages"]])
    t = Template.parse(LLAMA3)
    assert t.execute(as_dicts) == t.execute(data)


@dataclass
class ToolFunction:
    name: str = field(metadata={"json": "name"})
    description: str = field(metadata={"json": "description"})


@dataclass
class Tool:
    type: str = field(metadata={"json": "type"})
    function: ToolFunction = field(metadata={"json": "function"})


class Arguments(dict[str, Any]):
    """Like Ollama's templateArgs: a map that prints as JSON."""

    def String(self) -> str:
        return Template.parse("{{ json . }}").execute(dict(self))


@dataclass
class CallFunction:
    Name: str
    Arguments: Mapping[str, Any]


@dataclass
class ToolCall:
    Function: CallFunction


TOOLS_TEMPLATE = (
    "{{- if .Tools }}<tools>\n"
    "{{- range .Tools }}\n"
    "{{ json . }}\n"
    "{{- end }}\n"
    "</tools>\n"
    "{{ end }}\n"
    "{{- range $i, $m := .Messages }}\n"
    "{{- $last := eq (len (slice $.Messages $i)) 1 -}}\n"
    "<|{{ .Role }}|>\n"
    "{{- if .Content }}{{ .Content }}{{ end }}\n"
    '{{- range .ToolCalls }}<call>{"name": "{{ .Function.Name }}", '
    '"arguments": {{ .Function.Arguments }}}</call>{{ end }}\n'
    "{{- if $last }}<|assistant|>{{ end }}\n"
    "{{- end }}"
)


def test_tool_calling_template() -> None:
    call = ToolCall(CallFunction("get_weather", Arguments(unit="c", city="Paris")))
    data = {
        "Tools": [Tool("function", ToolFunction("get_weather", "Get weather"))],
        "Messages": [
            Message("user", "Weather in Paris?"),
            Message("assistant", "", ToolCalls=[call]),
            Message("tool", "20C"),
        ],
    }
    expected = (
        "<tools>\n"
        '{"type":"function","function":{"name":"get_weather","description":"Get weather"}}\n'
        "</tools>\n"
        "<|user|>Weather in Paris?"
        '<|assistant|><call>{"name": "get_weather", "arguments": {"city":"Paris","unit":"c"}}'
        "</call><|tool|>20C<|assistant|>"
    )
    t = Template.parse(TOOLS_TEMPLATE)
    assert t.execute(data) == expected
    assert t.uses("Tools") and t.uses("Messages") and not t.uses("System")


USES_CASES = [
    (CHATML, {"Messages", "Role", "Content"}),
    (LLAMA3, {"Messages", "Role", "Content"}),
    (GEMMA3, {"Messages", "Role", "Content", "System"}),
    (
        COMMAND_R,
        {"Tools", "System", "Function", "Messages", "Role", "Content", "ToolCalls"},
    ),
    (
        "{{ if .System }}<|system|>\n{{ .System }}<|end|>\n{{ end }}<|user|>\n{{ .Prompt }}"
        "<|end|>\n<|assistant|>\n{{ .Response }}<|end|>",
        {"System", "Prompt", "Response"},
    ),
    ('{{ define "x" }}{{ .Suffix }}{{ end }}{{ .Prompt }}', {"Suffix", "Prompt"}),
    ("{{ range .Messages }}{{ if $.Think }}t{{ end }}{{ end }}", {"Messages", "Think"}),
    ("{{ (index .Messages 0).Role }}", {"Messages"}),
    ("{{ with $m := .A }}{{ $m.Hidden }}{{ $.B }}{{ end }}", {"A", "B"}),
    ('{{ template "t" .Arg }}{{ block "b" .Blk }}{{ .In }}{{ end }}', {"Arg", "Blk", "In"}),
    ('{{ printf "%s" (print .P) }}{{ $x := .Q }}', {"P", "Q"}),
    ("plain text", set()),
]


@pytest.mark.parametrize(("text", "names"), USES_CASES)
def test_identifiers_and_uses(text: str, names: set[str]) -> None:
    t = Template.parse(text)
    assert t.identifiers() == frozenset(names)
    for name in names:
        assert t.uses(name)
    assert not t.uses("Nope")


VARS_CASES = [
    ("{{ .Prompt }}", ["prompt"]),
    ("{{ .System }} {{ .Prompt }} {{ .Response }}", ["prompt", "response", "system"]),
    ("{{ with .Tools }}{{ . }}{{ end }} {{ .System }}", ["system", "tools"]),
    ("{{ range .Messages }}{{ .Role }} {{ .Content }}{{ end }}", ["content", "messages", "role"]),
    ("{{ range $m := .Messages }}{{ $m.Role }}{{ end }}", ["$m", "messages", "role"]),
    ("{{ $.Messages }}", ["$", "messages"]),
    ("{{ (index .Messages 0).Role }}", []),
    ('{{ define "t" }}{{ .Suffix }}{{ end }}', ["suffix"]),
]


@pytest.mark.parametrize(("text", "expected"), VARS_CASES)
def test_vars_mirror_ollama(text: str, expected: list[str]) -> None:
    assert Template.parse(text).vars() == expected


def test_vars_reject_template_call_without_pipeline_like_ollama() -> None:
    t = Template.parse('{{ define "x" }}x{{ end }}{{ template "x" }}')
    assert t.execute(None) == "x"
    with pytest.raises(TemplateError, match="undefined template specified"):
        t.vars()


def test_twenty_message_chat_renders() -> None:
    messages = [Message("user" if i % 2 == 0 else "assistant", f"turn {i}") for i in range(20)]
    out = Template.parse(LLAMA3).execute({"Messages": messages})
    assert out.count("<|eot_id|>") == 20
    assert out.endswith("turn 19<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
