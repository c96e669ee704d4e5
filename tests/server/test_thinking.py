"""Thinking on the native and ``/v1`` routes with the fake engine: the model's reasoning comes
back apart from its answer, streamed as its own chunks, as Ollama's ``think`` does."""

from __future__ import annotations

import json
from typing import Any

import pytest

from corral.engine.fake import Reply
from tests.fakerunner import Factory
from tests.server.conftest import CHAT_A, SCRIPT, Served, create_model

pytestmark = pytest.mark.anyio

# A template in the shape Ollama learns think tags from; the second one opens the block itself.
THINKER = (
    "{{ range .Messages }}<|{{ .Role }}|>"
    "{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Content }}\n{{ end }}"
    "<|assistant|>level={{ .ThinkLevel }} set={{ .IsThinkSet }} on={{ .Think }}\n"
)
OPENER = THINKER + "{{ if .Think }}<think>{{ end }}"

ONE_TEXT = "ONE"  # the default script's one-token answer
TAGGED = "TAGGED"  # the model writes a whole think block, then its answer
INSIDE = "INSIDE"  # the model continues a block its prompt opened
THINKING_SCRIPT: dict[str, Reply] = {
    **SCRIPT,
    TAGGED: "<think>\nI ponder the question.</think>\n\nThe answer.",
    INSIDE: "still pondering</think>Done.",
}


@pytest.fixture
def factory() -> Factory:
    return Factory(script=THINKING_SCRIPT)


@pytest.fixture
async def thinker(srv: Served, gguf_files: dict[str, Any]) -> Served:
    await create_model(srv.client, "thinker", gguf_files[CHAT_A], THINKER)
    await create_model(srv.client, "opener", gguf_files[CHAT_A], OPENER)
    return srv


def chat_body(model: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def ndjson(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


async def test_show_lists_the_thinking_capability(thinker: Served) -> None:
    r = await thinker.client.post("/api/show", json={"model": "thinker"})
    assert "thinking" in r.json()["capabilities"]
    r = await thinker.client.post("/api/show", json={"model": CHAT_A})
    assert "thinking" not in r.json()["capabilities"]


async def test_chat_separates_thinking_from_the_answer(thinker: Served) -> None:
    r = await thinker.client.post("/api/chat", json=chat_body("thinker", TAGGED, stream=False))
    assert r.status_code == 200, r.text
    msg = r.json()["message"]
    assert msg["thinking"] == "I ponder the question."
    assert msg["content"] == "The answer."


async def test_streamed_thinking_comes_first_in_chunks_of_its_own(thinker: Served) -> None:
    r = await thinker.client.post("/api/chat", json=chat_body("thinker", TAGGED))
    lines = ndjson(r.text)
    assert lines[-1]["done"] is True
    kinds = [
        "thinking" if m.get("thinking") else "content"
        for m in (x["message"] for x in lines[:-1])
        if m.get("thinking") or m.get("content")
    ]
    assert kinds[0] == "thinking" and kinds[-1] == "content"
    assert kinds == sorted(kinds, key=lambda k: k != "thinking")  # never interleaved
    assert "".join(x["message"].get("thinking") or "" for x in lines) == "I ponder the question."
    assert "".join(x["message"]["content"] for x in lines) == "The answer."
    for x in lines:  # no chunk carries a tag
        assert "think>" not in x["message"]["content"]


async def test_generate_has_a_thinking_field(thinker: Served) -> None:
    body = {"model": "thinker", "prompt": TAGGED, "stream": False}
    r = await thinker.client.post("/api/generate", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["thinking"] == "I ponder the question."
    assert r.json()["response"] == "The answer."
    r = await thinker.client.post("/api/generate", json={**body, "stream": True})
    lines = ndjson(r.text)
    assert "".join(x.get("thinking") or "" for x in lines) == "I ponder the question."


async def test_think_false_leaves_the_text_as_the_model_wrote_it(thinker: Served) -> None:
    body = chat_body("thinker", TAGGED, stream=False, think=False)
    msg = (await thinker.client.post("/api/chat", json=body)).json()["message"]
    assert "thinking" not in msg
    assert msg["content"] == THINKING_SCRIPT[TAGGED]


async def test_a_prompt_that_opens_the_block(thinker: Served) -> None:
    body = chat_body("opener", INSIDE, stream=False)
    msg = (await thinker.client.post("/api/chat", json=body)).json()["message"]
    assert msg == {"role": "assistant", "content": "Done.", "thinking": "still pondering"}


@pytest.mark.parametrize(
    ("think", "rendered"),
    [
        (None, "level=medium set=true on=true"),  # a thinking model thinks by default
        (True, "level=medium set=true on=true"),
        (False, "level= set=true on=false"),
        ("high", "level=high set=true on=true"),
        ("max", "level=max set=true on=true"),
    ],
)
async def test_the_template_sees_the_think_level(
    thinker: Served, think: bool | str | None, rendered: str
) -> None:
    extra: dict[str, Any] = {"_debug_render_only": True, "stream": False}
    if think is not None:
        extra["think"] = think
    r = await thinker.client.post("/api/chat", json=chat_body("thinker", "hi", **extra))
    assert rendered in r.json()["_debug_info"]["rendered_template"]


@pytest.mark.parametrize(
    ("think", "error"),
    [
        (
            "extreme",
            'invalid think value: "extreme" (must be "high", "medium", "low", "max", true, '
            "or false)",
        ),
        (3, 'think must be a boolean or string ("high", "medium", "low", "max", true, or false)'),
        (
            [True],
            'think must be a boolean or string ("high", "medium", "low", "max", true, or false)',
        ),
    ],
)
@pytest.mark.parametrize("path", ["/api/chat", "/api/generate"])
async def test_bad_think_values(thinker: Served, path: str, think: Any, error: str) -> None:
    body = (
        chat_body("thinker", "hi", think=think)
        if path == "/api/chat"
        else {"model": "thinker", "prompt": "hi", "think": think}
    )
    r = await thinker.client.post(path, json=body)
    assert r.status_code == 400
    assert r.json() == {"error": error}


@pytest.mark.parametrize("think", [True, "low"])
async def test_a_model_without_thinking_refuses_think(thinker: Served, think: Any) -> None:
    r = await thinker.client.post("/api/chat", json=chat_body(CHAT_A, "hi", think=think))
    assert r.status_code == 400
    assert r.json() == {"error": f'"{CHAT_A}" does not support thinking'}
    r = await thinker.client.post("/api/chat", json=chat_body(CHAT_A, ONE_TEXT, think=False))
    assert r.status_code == 200


async def test_openai_returns_reasoning(thinker: Served) -> None:
    body = chat_body("thinker", TAGGED, stream=False, reasoning_effort="high")
    r = await thinker.client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    msg = r.json()["choices"][0]["message"]
    assert msg["reasoning"] == "I ponder the question."
    assert msg["content"] == "The answer."
    r = await thinker.client.post("/v1/chat/completions", json={**body, "stream": True})
    events = [e.removeprefix("data: ") for e in r.text.split("\n\n") if e]
    deltas = [json.loads(e)["choices"][0]["delta"] for e in events[:-1] if json.loads(e)["choices"]]
    assert "".join(d.get("reasoning") or "" for d in deltas) == "I ponder the question."
    assert "".join(d.get("content") or "" for d in deltas) == "The answer."


async def test_openai_reasoning_effort_none_turns_thinking_off(thinker: Served) -> None:
    body = chat_body("thinker", TAGGED, stream=False, reasoning_effort="none")
    msg = (await thinker.client.post("/v1/chat/completions", json=body)).json()["choices"][0]
    assert "reasoning" not in msg["message"]
    assert msg["message"]["content"] == THINKING_SCRIPT[TAGGED]
