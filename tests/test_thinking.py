"""The think-tag splitter and tag inference, as table tests (no server)."""

from __future__ import annotations

import itertools

import pytest

from corral.template import Template
from corral.thinking import ThinkingSplitter, ThinkTags, infer_tags, split_all, strip_thinking

TAGS = ThinkTags("<think>", "</think>")

# (model text, thinking, answer)
CASES = [
    ("<think>I ponder</think>Hello", "I ponder", "Hello"),
    ("  \n<think>\n  I ponder\n</think>\n\n  Hello there", "I ponder\n", "Hello there"),
    ("Hello <think>not a block</think>", "", "Hello <think>not a block</think>"),
    ("  Hello", "", "  Hello"),  # no think block: the answer keeps its whitespace
    ("<think>only thinking", "only thinking", ""),
    ("<think>a </thin b</think>c", "a </thin b", "c"),
    ("<think>x</think></think>y", "x", "</think>y"),
    ("<think></think>answer", "", "answer"),
    ("<thinking>no</thinking>", "", "<thinking>no</thinking>"),
    ("", "", ""),
]


@pytest.mark.parametrize(("text", "thinking", "answer"), CASES)
def test_whole_text(text: str, thinking: str, answer: str) -> None:
    assert split_all([text], TAGS) == (thinking, answer)


@pytest.mark.parametrize(("text", "thinking", "answer"), CASES)
def test_split_at_every_pair_of_positions(text: str, thinking: str, answer: str) -> None:
    for i, j in itertools.combinations_with_replacement(range(len(text) + 1), 2):
        pieces = [text[:i], text[i:j], text[j:]]
        assert split_all(pieces, TAGS) == (thinking, answer), pieces


@pytest.mark.parametrize(("text", "thinking", "answer"), CASES)
def test_one_character_at_a_time(text: str, thinking: str, answer: str) -> None:
    assert split_all(list(text), TAGS) == (thinking, answer)


def test_nothing_is_held_longer_than_it_is_ambiguous() -> None:
    s = ThinkingSplitter(TAGS)
    assert s.feed("<thi") == ("", "")  # could still be the opening tag
    assert s.feed("nk>abc</") == ("abc", "")  # "</" could start the closing tag
    assert s.feed("x") == ("</x", "")
    assert s.feed("</think>  ") == ("", "")  # whitespace after the block is dropped
    assert s.feed(" ok") == ("", "ok")
    assert s.feed(" more") == ("", " more")


def test_a_prompt_that_opened_the_block() -> None:
    assert split_all(["\n reasoning</th", "ink> answer"], TAGS, opened=True) == (
        "reasoning",
        "answer",
    )


def test_an_unfinished_closing_tag_at_the_end_is_thinking() -> None:
    assert split_all(["<think>abc</thi"], TAGS) == ("abc</thi", "")


def test_other_markers() -> None:
    tags = ThinkTags("<|begin_of_thought|>", "<|end_of_thought|>")
    text = "<|begin_of_thought|>plan<|end_of_thought|>done"
    for cut in range(len(text) + 1):
        assert split_all([text[:cut], text[cut:]], tags) == ("plan", "done")


def test_strip_thinking_keeps_the_answer() -> None:
    assert strip_thinking("<think>why</think>\n\nBecause.", TAGS) == "Because."
    assert strip_thinking("Plain answer", TAGS) == "Plain answer"


QWEN3_LIKE = (
    "{{- range $i, $_ := .Messages }}"
    '{{- if eq .Role "user" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n'
    '{{ else if eq .Role "assistant" }}<|im_start|>assistant\n'
    "{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Content }}<|im_end|>\n"
    "{{ end }}{{ end }}<|im_start|>assistant\n"
)


@pytest.mark.parametrize(
    ("template", "tags"),
    [
        (QWEN3_LIKE, TAGS),
        (
            "{{ range .Messages }}{{ if .Thinking }}<|begin_of_thought|>\n{{ .Thinking }}\n"
            "<|end_of_thought|>{{ end }}{{ .Content }}{{ end }}",
            ThinkTags("<|begin_of_thought|>", "<|end_of_thought|>"),
        ),
        # .Thinking outside a range over .Messages, or without text around it: no tags
        ("{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Prompt }}", None),
        ("{{ range .Messages }}{{ .Thinking }}{{ .Content }}{{ end }}", None),
        ("{{ range .Messages }}{{ .Content }}{{ end }}", None),
    ],
)
def test_infer_tags(template: str, tags: ThinkTags | None) -> None:
    assert infer_tags(Template.parse(template)) == tags
