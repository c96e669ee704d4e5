"""Tool call ids on ``/api/chat``: parsed calls get Ollama's ``call_`` ids, and a tool message's
``tool_call_id`` reaches the template as ``.ToolCallID`` (fake engine)."""

from __future__ import annotations

import re

import pytest

from corral.engine.fake import Reply
from tests.fakerunner import Factory
from tests.server.conftest import CHAT_A, SCRIPT, Served, create_model

pytestmark = pytest.mark.anyio

TOOLS_TEMPLATE = (
    "{{ if .Tools }}TOOLS{{ end }}{{ range .Messages }}<|{{ .Role }}|>"
    "{{ range .ToolCalls }}<tool_call>"
    '{"name": "{{ .Function.Name }}", "arguments": {{ json .Function.Arguments }}}'
    "</tool_call> id={{ .ID }}{{ end }}"
    "{{ if .ToolCallID }}result of {{ .ToolCallID }}: {{ end }}{{ .Content }}\n{{ end }}"
    "<|assistant|>"
)
TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": "d", "parameters": {"type": "object"}},
}


@pytest.fixture
def factory() -> Factory:
    script: dict[str, Reply] = {
        "CALL": '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>',
        **SCRIPT,
    }
    return Factory(script=script)


@pytest.fixture
async def tooled(srv: Served, gguf_files: dict[str, object]) -> Served:
    await create_model(srv.client, "tooled", gguf_files[CHAT_A], TOOLS_TEMPLATE)  # type: ignore[arg-type]
    return srv


async def test_parsed_calls_have_ids(tooled: Served) -> None:
    body = {
        "model": "tooled",
        "messages": [{"role": "user", "content": "CALL"}],
        "tools": [TOOL],
        "stream": False,
    }
    r = await tooled.client.post("/api/chat", json=body)
    calls = r.json()["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["get_weather"]
    assert re.fullmatch(r"call_[a-z0-9]{8}", calls[0]["id"])


async def test_tool_call_id_reaches_the_template(tooled: Served) -> None:
    history = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "call_abc", "function": {"name": "get_weather", "arguments": {}}}
            ],
        },
        {"role": "tool", "content": "sunny", "tool_call_id": "call_abc"},
    ]
    body = {"model": "tooled", "messages": history, "tools": [TOOL], "_debug_render_only": True}
    r = await tooled.client.post("/api/chat", json={**body, "stream": False})
    rendered = r.json()["_debug_info"]["rendered_template"]
    assert '{"name": "get_weather", "arguments": {}}</tool_call> id=call_abc' in rendered
    assert "<|tool|>result of call_abc: sunny" in rendered


async def test_tool_call_id_must_be_a_string(tooled: Served) -> None:
    msg = {"role": "tool", "content": "x", "tool_call_id": 5}
    r = await tooled.client.post("/api/chat", json={"model": "tooled", "messages": [msg]})
    assert r.status_code == 400
    assert "tool_call_id" in r.json()["error"]
