"""Tests of the template catalogue: rendered prompts per family and Jinja template detection."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest

from corral.template import Template
from corral.template.catalogue import FAMILIES, FamilyTemplate, detect_family, get_family

SYSTEM = "You are a helpful assistant."

TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {
            "type": "object",
            "required": ["city"],
            "properties": {"city": {"type": "string", "description": "The name of the city"}},
        },
    },
}
# The engine's `json` is Go's json.Marshal: a dict is a Go map, so its keys come out sorted.
# (Ollama's tools are structs and print in field order; whoever builds the template data decides.)
TOOL_JSON = (
    '{"function":{"description":"Get the current weather for a city","name":"get_weather",'
    '"parameters":{"properties":{"city":{"description":"The name of the city","type":"string"}},'
    '"required":["city"],"type":"object"}},"type":"function"}'
)
WEATHER = '{"temperature": 22, "condition": "sunny"}'


def msg(
    role: str, content: str = "", calls: tuple[tuple[str, dict[str, Any]], ...] = ()
) -> dict[str, Any]:
    return {
        "Role": role,
        "Content": content,
        "ToolCalls": [{"Function": {"Name": n, "Arguments": a}} for n, a in calls],
        "ToolName": "get_weather" if role == "tool" else "",
        "Images": [],
    }


def data(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    system = "\n\n".join(m["Content"] for m in messages if m["Role"] == "system")
    return {
        "System": system,
        "Messages": messages,
        "Tools": tools or [],
        "Prompt": "",
        "Response": "",
        "Suffix": "",
        "Think": False,
    }


def render(family: str, values: dict[str, Any]) -> str:
    return Template.parse(get_family(family).template).execute(values)


CHAT = [
    msg("system", SYSTEM),
    msg("user", "Hello!"),
    msg("assistant", "Hi! How can I help?"),
    msg("user", "Tell me a joke."),
]

TOOL_CHAT = [
    msg("system", SYSTEM),
    msg("user", "What is the weather in Paris?"),
    msg("assistant", calls=(("get_weather", {"city": "Paris"}),)),
    msg("tool", WEATHER),
    msg("assistant", "It is 22 degrees and sunny in Paris."),
    msg("user", "And in Rome?"),
]

CHATML_CHAT = """\
<|im_start|>system
You are a helpful assistant.<|im_end|>
<|im_start|>user
Hello!<|im_end|>
<|im_start|>assistant
Hi! How can I help?<|im_end|>
<|im_start|>user
Tell me a joke.<|im_end|>
<|im_start|>assistant
"""

LLAMA3_CHAT = """\
<|start_header_id|>system<|end_header_id|>

You are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>

Hello!<|eot_id|><|start_header_id|>assistant<|end_header_id|>

Hi! How can I help?<|eot_id|><|start_header_id|>user<|end_header_id|>

Tell me a joke.<|eot_id|><|start_header_id|>assistant<|end_header_id|>

"""

GEMMA_CHAT = """\
<start_of_turn>user
You are a helpful assistant.

Hello!<end_of_turn>
<start_of_turn>model
Hi! How can I help?<end_of_turn>
<start_of_turn>user
Tell me a joke.<end_of_turn>
<start_of_turn>model
"""

MISTRAL_CHAT = """\
[INST] Hello![/INST] Hi! How can I help?</s>[INST] You are a helpful assistant.

Tell me a joke.[/INST]"""

LLAMA2_CHAT = """\
[INST] <<SYS>>
You are a helpful assistant.
<</SYS>>

Hello! [/INST] Hi! How can I help? </s><s>[INST] Tell me a joke. [/INST]"""

PHI3_CHAT = """\
<|system|>
You are a helpful assistant.<|end|>
<|user|>
Hello!<|end|>
<|assistant|>
Hi! How can I help?<|end|>
<|user|>
Tell me a joke.<|end|>
<|assistant|>
"""

ZEPHYR_CHAT = """\
<|system|>
You are a helpful assistant.</s>
<|user|>
Hello!</s>
<|assistant|>
Hi! How can I help?</s>
<|user|>
Tell me a joke.</s>
<|assistant|>
"""

QWEN_TOOL_CHAT = f"""\
<|im_start|>system
You are a helpful assistant.

# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{TOOL_JSON}
</tools>

For each function call, return a json object with function name and arguments within \
<tool_call></tool_call> XML tags:
<tool_call>
{{"name": <function-name>, "arguments": <args-json-object>}}
</tool_call><|im_end|>
<|im_start|>user
What is the weather in Paris?<|im_end|>
<|im_start|>assistant
<tool_call>
{{"name": "get_weather", "arguments": {{"city":"Paris"}}}}
</tool_call><|im_end|>
<|im_start|>user
<tool_response>
{WEATHER}
</tool_response><|im_end|>
<|im_start|>assistant
It is 22 degrees and sunny in Paris.<|im_end|>
<|im_start|>user
And in Rome?<|im_end|>
<|im_start|>assistant
"""

LLAMA3_TOOL_CHAT = f"""\
<|start_header_id|>system<|end_header_id|>

You have access to the following functions. To call a function, please respond with JSON for a \
function call. Respond in the format {{"name": function name, "parameters": dictionary of \
argument name and its value}}. Do not use variables.

{TOOL_JSON}

When you receive a tool call response, use the output to format an answer to the original user \
question.

You are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>

What is the weather in Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>

{{"name": "get_weather", "parameters": {{"city":"Paris"}}}}<|eot_id|>\
<|start_header_id|>ipython<|end_header_id|>

{WEATHER}<|eot_id|><|start_header_id|>assistant<|end_header_id|>

It is 22 degrees and sunny in Paris.<|eot_id|><|start_header_id|>user<|end_header_id|>

And in Rome?<|eot_id|><|start_header_id|>assistant<|end_header_id|>

"""

MISTRAL_TOOL_CHAT = (
    "[INST] What is the weather in Paris?[/INST]"
    '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city":"Paris"}}]</s>'
    f'[TOOL_RESULTS] {{"content": {WEATHER}}}[/TOOL_RESULTS]'
    " It is 22 degrees and sunny in Paris.</s>"
    f"[AVAILABLE_TOOLS] [{TOOL_JSON}][/AVAILABLE_TOOLS]"
    "[INST] You are a helpful assistant.\n\nAnd in Rome?[/INST]"
)


@pytest.mark.parametrize(
    ("family", "expected"),
    [
        ("chatml", CHATML_CHAT),
        ("qwen", CHATML_CHAT),
        ("llama3", LLAMA3_CHAT),
        ("gemma", GEMMA_CHAT),
        ("gemma3", GEMMA_CHAT),
        ("mistral", MISTRAL_CHAT),
        ("llama2", LLAMA2_CHAT),
        ("phi-3", PHI3_CHAT),
        ("zephyr", ZEPHYR_CHAT),
    ],
)
def test_multi_turn_chat(family: str, expected: str) -> None:
    assert render(family, data(CHAT)) == expected


@pytest.mark.parametrize(
    ("family", "expected"),
    [
        ("qwen", QWEN_TOOL_CHAT),
        ("llama3", LLAMA3_TOOL_CHAT),
        ("mistral", MISTRAL_TOOL_CHAT),
    ],
)
def test_tool_chat(family: str, expected: str) -> None:
    assert render(family, data(TOOL_CHAT, [TOOL])) == expected


@pytest.mark.parametrize(
    ("family", "expected"),
    [
        ("chatml", "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nOnce upon"),
        ("qwen", "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nOnce upon"),
        (
            "llama3",
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nOnce upon",
        ),
        ("gemma", "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nOnce upon"),
        ("mistral", "[INST] Hi[/INST] Once upon"),
        ("llama2", "[INST] Hi [/INST] Once upon"),
        ("phi-3", "<|user|>\nHi<|end|>\n<|assistant|>\nOnce upon"),
        ("zephyr", "<|user|>\nHi</s>\n<|assistant|>\nOnce upon"),
    ],
)
def test_final_assistant_message_is_left_open(family: str, expected: str) -> None:
    assert render(family, data([msg("user", "Hi"), msg("assistant", "Once upon")])) == expected


@pytest.mark.parametrize(
    ("family", "expected"),
    [
        ("chatml", "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"),
        ("qwen", "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"),
        (
            "llama3",
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n",
        ),
        ("gemma3", "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"),
        ("mistral", "[INST] Hi[/INST]"),
        ("llama2", "[INST] Hi [/INST]"),
        ("phi-3", "<|user|>\nHi<|end|>\n<|assistant|>\n"),
        ("zephyr", "<|user|>\nHi</s>\n<|assistant|>\n"),
    ],
)
def test_single_user_message_without_system(family: str, expected: str) -> None:
    assert render(family, data([msg("user", "Hi")])) == expected


def test_qwen_groups_consecutive_tool_results_and_lists_parallel_calls() -> None:
    messages = [
        msg("user", "Weather in Paris and Rome?"),
        msg(
            "assistant",
            "Let me check.",
            calls=(("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})),
        ),
        msg("tool", "22"),
        msg("tool", "25"),
    ]
    assert render("qwen", data(messages, [TOOL])).endswith(
        "<|im_start|>user\nWeather in Paris and Rome?<|im_end|>\n"
        "<|im_start|>assistant\nLet me check.\n"
        '<tool_call>\n{"name": "get_weather", "arguments": {"city":"Paris"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_weather", "arguments": {"city":"Rome"}}\n</tool_call>'
        "<|im_end|>\n"
        "<|im_start|>user\n<tool_response>\n22\n</tool_response>\n"
        "<tool_response>\n25\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_qwen_tools_without_system() -> None:
    out = render("qwen", data([msg("user", "Hi")], [TOOL]))
    assert out.startswith("<|im_start|>system\n# Tools\n\nYou may call one or more functions")


def test_llama3_and_mistral_list_parallel_calls() -> None:
    calls = (("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"}))
    messages = [msg("user", "Weather?"), msg("assistant", calls=calls), msg("tool", "22")]
    assert (
        '{"name": "get_weather", "parameters": {"city":"Paris"}}\n'
        '{"name": "get_weather", "parameters": {"city":"Rome"}}<|eot_id|>'
    ) in render("llama3", data(messages, [TOOL]))
    assert (
        '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city":"Paris"}}, '
        '{"name": "get_weather", "arguments": {"city":"Rome"}}]</s>'
    ) in render("mistral", data(messages, [TOOL]))


def test_gemma_joins_every_system_message_into_the_first_user_turn() -> None:
    messages = [msg("system", "One."), msg("system", "Two."), msg("user", "Hi")]
    assert render("gemma", data(messages)) == (
        "<start_of_turn>user\nOne.\n\nTwo.\n\nHi<end_of_turn>\n<start_of_turn>model\n"
    )


def test_empty_conversation_is_a_generation_prompt() -> None:
    assert render("chatml", data([])) == "<|im_start|>assistant\n"
    assert render("gemma3", data([])) == "<start_of_turn>model\n"


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_tool_support_is_declared_by_the_template(family: FamilyTemplate) -> None:
    assert Template.parse(family.template).uses("Tools") == (
        family.name in {"qwen", "llama3", "mistral"}
    )


def test_catalogue_shape() -> None:
    names = [f.name for f in FAMILIES]
    assert len(names) == len(set(names))
    assert isinstance(FAMILIES, tuple)
    assert len(set(FAMILIES)) == len(FAMILIES)
    for family in FAMILIES:
        assert isinstance(family.parameters["stop"], tuple)
        with pytest.raises(TypeError):
            family.parameters["stop"] = ()  # type: ignore[index]


def test_stop_words_follow_ollama() -> None:
    assert get_family("chatml").parameters == {"stop": ("<|im_start|>", "<|im_end|>")}
    assert get_family("llama3").parameters["stop"] == (
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eot_id|>",
    )
    assert get_family("gemma3").parameters == {"stop": ("<end_of_turn>",), "temperature": 0.1}
    assert get_family("phi-3").parameters["stop"] == (
        "<|end|>",
        "<|system|>",
        "<|user|>",
        "<|assistant|>",
    )


def test_get_family_accepts_ollama_names() -> None:
    assert get_family("llama3-instruct") is get_family("llama3")
    assert get_family("gemma3-instruct").name == "gemma3"
    with pytest.raises(KeyError):
        get_family("nope")


# --- detection -------------------------------------------------------------------------------

SMOLLM2 = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)

QWEN25 = """\
{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query." }}
    {{- "\\n\\nYou are provided with function signatures within <tools></tools> XML tags:" }}
    {{- "\\n<tools>" }}
    {%- for tool in tools %}
        {{- "\\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and \
arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, \
\\"arguments\\": <args-json-object>}\\n</tool_call><|im_end|>\\n" }}
{%- endif %}
{%- for message in messages %}
    {%- if message.role == "user" or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "tool" %}
        {{- '\\n<tool_response>\\n' }}
        {{- message.content }}
        {{- '\\n</tool_response>' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""

CHATML_HERMES = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)

LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)

LLAMA31 = """\
{{- bos_token }}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{%- if tools is not none %}
    {{- "Environment: ipython\\n" }}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {%- if 'tool_calls' in message %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
        {{- '{"name": "' + tool_call.name + '", "parameters": ' }}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\\n\\n" }}
    {%- endif %}
{%- endfor %}
"""

GEMMA2 = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}{% if (message['role'] == 'assistant') %}"
    "{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)

GEMMA3 = """\
{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- set role = "model" if message['role'] == 'assistant' else message['role'] -%}
    {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else "") }}
    {{ message['content'] | trim }}<end_of_turn>
{%- endfor -%}
{%- if add_generation_prompt -%}{{'<start_of_turn>model\\n'}}{%- endif -%}
"""

MISTRAL_V1 = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
    "{% endif %}{% endfor %}"
)

MISTRAL_V3 = (
    "{{- bos_token }}{%- for message in loop_messages %}{%- if message['role'] == 'user' %}"
    "{%- if tools is not none and (message == user_messages[-1]) %}"
    '{{- "[AVAILABLE_TOOLS] [" }}{{- tool|tojson }}{{- "[/AVAILABLE_TOOLS]" }}{%- endif %}'
    '{{- "[INST] " + message["content"] + "[/INST]" }}'
    '{%- elif message.tool_calls is defined %}{{- "[TOOL_CALLS] [" }}'
    '{%- elif message["role"] == "tool" %}{{- \'[TOOL_RESULTS] {"content": \' }}'
    "{%- endif %}{%- endfor %}"
)

LLAMA2 = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}"
    "{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
    "{% for message in loop_messages %}{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}"
    "{% endif %}{% endfor %}"
)

PHI3 = (
    "{% for message in messages %}{% if message['role'] == 'system' %}"
    "{{'<|system|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'assistant' %}"
    "{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)

PHI3_ROLE_CONCAT = (
    "{{ bos_token }}{% for message in messages %}{{'<|' + message['role'] + '|>' + '\n' + "
    "message['content'] + '<|end|>\n' }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)

ZEPHYR = (
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n"
    "{{ '<|user|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'system' %}\n"
    "{{ '<|system|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n"
    "{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n"
    "{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"
)

PHI4 = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '<|im_sep|>' + "
    "message['content'] + '<|im_end|>'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant<|im_sep|>' }}{% endif %}"
)

COMMAND_R = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ '<|START_OF_TURN_TOKEN|><|USER_TOKEN|>' + message['content'] + '<|END_OF_TURN_TOKEN|>' }}"
    "{% endif %}{% endfor %}{{ '<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>' }}"
)

ALPACA = (
    "{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ '### Instruction:\n' + message['content'] + '\n\n' }}{% else %}"
    "{{ '### Response:\n' + message['content'] + eos_token + '\n\n' }}{% endif %}{% endfor %}"
)

GLM4 = (
    "[gMASK]<sop>{% for item in messages %}{% if item['role'] == 'user' %}"
    "<|user|>\n{{ item['content'] }}{% elif item['role'] == 'assistant' %}"
    "<|assistant|>\n{{ item['content'] }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@pytest.mark.parametrize(
    ("jinja", "family"),
    [
        (SMOLLM2, "chatml"),
        (CHATML_HERMES, "chatml"),
        (QWEN25, "qwen"),
        (LLAMA3, "llama3"),
        (LLAMA31, "llama3"),
        (GEMMA2, "gemma"),
        (GEMMA3, "gemma3"),
        (MISTRAL_V1, "mistral"),
        (MISTRAL_V3, "mistral"),
        (LLAMA2, "llama2"),
        (PHI3, "phi-3"),
        (PHI3_ROLE_CONCAT, "phi-3"),
        (ZEPHYR, "zephyr"),
        (PHI4, None),
        (COMMAND_R, None),
        (ALPACA, None),
        (GLM4, None),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_detect_family(jinja: str | None, family: str | None) -> None:
    detected = detect_family(jinja)
    assert (detected.name if detected else None) == family


_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def _read_chat_template(path: Path) -> str | None:
    """The ``tokenizer.chat_template`` of a GGUF file, reading only its header."""
    with path.open("rb") as f:

        def unpack(fmt: str) -> Any:
            return struct.unpack("<" + fmt, f.read(struct.calcsize(fmt)))[0]

        def string() -> bytes:
            return f.read(unpack("Q"))

        def skip(kind: int) -> None:
            if kind == 8:
                f.seek(unpack("Q"), 1)
            elif kind == 9:
                inner, count = unpack("I"), unpack("Q")
                if inner in _SCALAR_SIZES:
                    f.seek(_SCALAR_SIZES[inner] * count, 1)
                else:
                    for _ in range(count):
                        skip(inner)
            else:
                f.seek(_SCALAR_SIZES[kind], 1)

        assert f.read(4) == b"GGUF"
        _version, _tensors, kv_count = unpack("I"), unpack("Q"), unpack("Q")
        for _ in range(kv_count):
            key, kind = string(), unpack("I")
            if key == b"tokenizer.chat_template" and kind == 8:
                return string().decode()
            skip(kind)
    return None


def test_detect_family_on_the_bundled_smollm2(smollm2_gguf: Path) -> None:
    chat_template = _read_chat_template(smollm2_gguf)
    assert chat_template == SMOLLM2
    family = detect_family(chat_template)
    assert family is not None
    assert family.name == "chatml"
