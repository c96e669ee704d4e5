"""Tool-call recognition in model output, learnt from each family's template."""

from __future__ import annotations

from typing import Any

import pytest

from corral.prompt import PromptTemplate
from corral.template.catalogue import get_family
from corral.tools import ToolCallFormat, ToolParser, infer_format


@pytest.mark.parametrize(
    ("family", "prefix"),
    [("qwen", "<tool_call>"), ("llama3", ""), ("mistral", "[TOOL_CALLS]"), ("chatml", None)],
)
def test_infer_format(family: str, prefix: str | None) -> None:
    fmt = infer_format(PromptTemplate(get_family(family).template))
    assert (fmt.prefix if fmt else None) == prefix


def _run(fmt: ToolCallFormat, text: str, step: int) -> tuple[str, list[dict[str, Any]]]:
    parser = ToolParser(fmt, ["get_weather", "add"])
    content, calls = "", []
    for i in range(0, len(text), step):
        c, k = parser.feed(text[i : i + step])
        content += c
        calls += k
    c, k = parser.finish()
    return content + c, calls + k


CASES = [
    (
        "<tool_call>",
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
        "",
        [("get_weather", {"city": "Paris"})],
    ),
    (
        "<tool_call>",
        '<tool_call>{"name": "add", "arguments": {"a": 1}}</tool_call>\n'
        '<tool_call>{"name": "add", "arguments": {"a": 2}}</tool_call>',
        "",
        [("add", {"a": 1}), ("add", {"a": 2})],
    ),
    ("<tool_call>", "The weather is nice.", "The weather is nice.", []),
    ("<tool_call>", "<tool", "<tool", []),
    (
        "",
        '{"name": "get_weather", "parameters": {"city": "Oslo"}}',
        "",
        [("get_weather", {"city": "Oslo"})],
    ),
    ("", "Hello {there}", "Hello {there}", []),
    (
        "",
        '{"name": "unknown_tool", "parameters": {}}',
        '{"name": "unknown_tool", "parameters": {}}',
        [],
    ),
    (
        "[TOOL_CALLS]",
        '[TOOL_CALLS] [{"name": "add", "arguments": {"a": 5}}]',
        "",
        [("add", {"a": 5})],
    ),
    ("[TOOL_CALLS]", "Sure! [TOOL_CALLS]", "Sure! [TOOL_CALLS]", []),
    ("", '{"name": "add", "arguments": "{\\"a\\": 3}"}', "", [("add", {"a": 3})]),
]


@pytest.mark.parametrize(("prefix", "text", "content", "calls"), CASES)
@pytest.mark.parametrize("step", [1, 3, 1000])
def test_parse(
    prefix: str, text: str, content: str, calls: list[tuple[str, dict[str, Any]]], step: int
) -> None:
    got_content, got_calls = _run(ToolCallFormat(prefix), text, step)
    assert got_content == content
    assert [(c["function"]["name"], c["function"]["arguments"]) for c in got_calls] == calls
    assert [c["function"]["index"] for c in got_calls] == list(range(len(calls)))
