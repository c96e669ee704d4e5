"""Ollama's prompt semantics: collation, legacy templates, truncation, images, tools."""

from __future__ import annotations

import asyncio

import pytest

from corral.errors import BadRequest, TemplateError
from corral.prompt import ChatMessage, PromptTemplate, chat_prompt, collate, go_json, tag_images
from corral.template.catalogue import get_family

U, A, S = "user", "assistant", "system"


def test_collate_merges_same_role() -> None:
    system, merged = collate(
        [
            ChatMessage(S, "a"),
            ChatMessage(S, "b"),
            ChatMessage(U, "x"),
            ChatMessage(U, "y"),
            ChatMessage("tool", "1"),
            ChatMessage("tool", "2"),
        ]
    )
    assert system == "a\n\nb"
    assert [(m.role, m.content) for m in merged] == [
        (S, "a\n\nb"),
        (U, "x\n\ny"),
        ("tool", "1"),
        ("tool", "2"),
    ]


CHATML = get_family("chatml").template


def test_chat_style_template() -> None:
    t = PromptTemplate(CHATML)
    out = t.render(
        [
            ChatMessage(S, "Be brief."),
            ChatMessage(U, "Hi"),
            ChatMessage(A, "Hello!"),
            ChatMessage(U, "Bye"),
        ]
    )
    assert out == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


LEGACY = "{{ if .System }}S:{{ .System }}\n{{ end }}U:{{ .Prompt }}\nA:{{ .Response }}\n"


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        ([ChatMessage(U, "hi")], "U:hi\nA:"),
        ([ChatMessage(S, "sys"), ChatMessage(U, "hi")], "S:sys\nU:hi\nA:"),
        ([ChatMessage(U, "a"), ChatMessage(A, "b"), ChatMessage(U, "c")], "U:a\nA:b\nU:c\nA:"),
        ([ChatMessage(S, "s"), ChatMessage(U, "a"), ChatMessage(A, "b")], "S:s\nU:a\nA:b"),
    ],
)
def test_legacy_template_turn_by_turn(messages: list[ChatMessage], expected: str) -> None:
    assert PromptTemplate(LEGACY).render(messages) == expected


def test_template_without_response_gets_it_appended() -> None:
    t = PromptTemplate("Q: {{ .Prompt }} A:")
    assert t.render([ChatMessage(U, "x"), ChatMessage(A, "y"), ChatMessage(U, "z")]) == (
        "Q: x A:yQ: z A:"
    )


def test_suffix_mode() -> None:
    t = PromptTemplate("<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>")
    assert t.supports_suffix
    assert t.render([], prompt="def f(", suffix="return x") == "<PRE> def f( <SUF>return x <MID>"


def test_template_errors_are_400() -> None:
    with pytest.raises(TemplateError, match="template error"):
        PromptTemplate("{{ .Prompt ")
    t = PromptTemplate("{{ index .Messages 5 }}")
    with pytest.raises(BadRequest, match="template error"):
        t.render([ChatMessage(U, "x")])


def test_tools_print_as_go_json() -> None:
    t = PromptTemplate(
        "{{ .Tools }}|{{ range .Messages }}{{ range .ToolCalls }}"
        "{{ .Function.Name }}{{ .Function.Arguments }}{{ end }}{{ end }}"
    )
    tool = {
        "type": "function",
        "function": {
            "name": "f",
            "description": "<d>",
            "parameters": {
                "properties": {"b": {"type": "string"}, "a": {"type": "integer"}},
                "required": ["a"],
                "type": "object",
            },
        },
    }
    call = {"function": {"name": "f", "arguments": {"z": 1, "a": "&"}}}
    out = t.render([ChatMessage(U, "x"), ChatMessage(A, "", tool_calls=(call,))], [tool])
    assert out == (
        '[{"type":"function","function":{"name":"f","description":"\\u003cd\\u003e",'
        '"parameters":{"type":"object","required":["a"],"properties":{"a":{"type":"integer"},'
        '"b":{"type":"string"}}}}}]|f{"a":"\\u0026","z":1}'
    )


def test_go_json_escapes_html() -> None:
    assert go_json({"b": "<&>", "a": [1, 2.5]}) == '{"b":"\\u003c\\u0026\\u003e","a":[1,2.5]}'


def test_images_become_markers() -> None:
    msgs, images = tag_images(
        [ChatMessage(U, "look", images=("a", "b")), ChatMessage(U, "and [img] here", images=("c",))]
    )
    assert images == ("a", "b", "c")
    assert [m.content for m in msgs] == ["[img-0][img-1]look", "and [img-2] here"]


async def _words(text: str) -> list[int]:
    return list(range(len(text.split())))


def test_truncation_keeps_system_and_last() -> None:
    t = PromptTemplate("{{ range .Messages }}{{ .Role }}: {{ .Content }}\n{{ end }}")
    msgs = [
        ChatMessage(S, "rules"),
        ChatMessage(U, "one two three four"),
        ChatMessage(A, "five six seven"),
        ChatMessage(U, "eight nine"),
    ]
    full, _ = asyncio.run(chat_prompt(t, msgs, [], None, _words, 100))
    assert full.count("\n") == 4
    cut, _ = asyncio.run(chat_prompt(t, msgs, [], None, _words, 9))
    assert cut == "system: rules\nassistant: five six seven\nuser: eight nine\n"
    last, _ = asyncio.run(chat_prompt(t, msgs, [], None, _words, 3))
    assert last == "system: rules\nuser: eight nine\n"
    with pytest.raises(BadRequest, match="exceeds the context length"):
        asyncio.run(chat_prompt(t, msgs, [], None, _words, 9, truncate=False))
