"""Malformed requests to the native inference routes are answered with a 4xx and Ollama's
``{"error": ...}`` body, before any model is loaded (issue 11). One server serves the table."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakerunner import Factory
from tests.server.conftest import SCRIPT, Served, serve

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def shared(
    template_store: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Served]:
    models = tmp_path_factory.mktemp("malformed") / "models"
    shutil.copytree(template_store, models)
    async with serve(models, Factory(script=SCRIPT)) as srv:
        yield srv


GEN, CHAT, EMBED, EMBEDDINGS = "/api/generate", "/api/chat", "/api/embed", "/api/embeddings"
USER = '[{"role": "user", "content": "hi"}]'

# id: (route, body, status, a piece of the error text)
TABLE = {
    "generate-empty-body": (GEN, "", 400, "missing request body"),
    "generate-truncated-json": (GEN, "{", 400, "unexpected EOF"),
    "generate-trailing-comma": (GEN, '{"model": "a", "prompt": "hi",}', 400, "invalid JSON"),
    "generate-array-body": (GEN, "[]", 400, "must be a JSON object"),
    "generate-string-body": (GEN, '"a"', 400, "must be a JSON object"),
    "generate-no-model": (GEN, '{"prompt": "hi"}', 400, "model is required"),
    "generate-prompt-number": (GEN, '{"model": "a", "prompt": 1}', 400, '"prompt"'),
    "generate-stream-array": (
        GEN,
        '{"model": "a", "prompt": "hi", "stream": [true]}',
        400,
        '"stream"',
    ),
    "generate-options-string": (
        GEN,
        '{"model": "a", "prompt": "hi", "options": "fast"}',
        400,
        '"options"',
    ),
    "generate-option-type": (
        GEN,
        '{"model": "a", "prompt": "hi", "options": {"top_k": "many"}}',
        400,
        "top_k",
    ),
    "generate-keep-alive": (
        GEN,
        '{"model": "a", "prompt": "hi", "keep_alive": "soon"}',
        400,
        "invalid duration",
    ),
    "generate-format": (
        GEN,
        '{"model": "a", "prompt": "hi", "format": "yaml"}',
        400,
        "invalid format",
    ),
    "generate-raw-system": (
        GEN,
        '{"model": "a", "prompt": "hi", "raw": true, "system": "s"}',
        400,
        "raw mode",
    ),
    "generate-embedding-model": (
        GEN,
        '{"model": "e", "prompt": "hi"}',
        400,
        "does not support generate",
    ),
    "generate-unknown-model": (
        GEN,
        '{"model": "nope", "prompt": "hi"}',
        404,
        "model 'nope' not found",
    ),
    "generate-unknown-model-whole": (
        GEN,
        '{"model": "nope", "prompt": "hi", "stream": false}',
        404,
        "model 'nope' not found",
    ),
    "chat-truncated-json": (CHAT, "{", 400, "unexpected EOF"),
    "chat-messages-string": (CHAT, '{"model": "a", "messages": "hi"}', 400, '"messages"'),
    "chat-message-no-role": (CHAT, '{"model": "a", "messages": [{"content": "hi"}]}', 400, "role"),
    "chat-unknown-role": (
        CHAT,
        '{"model": "a", "messages": [{"role": "wizard", "content": "hi"}]}',
        400,
        "wizard",
    ),
    "chat-tools-string": (
        CHAT,
        f'{{"model": "a", "messages": {USER}, "tools": "all"}}',
        400,
        '"tools"',
    ),
    "chat-think-value": (
        CHAT,
        f'{{"model": "a", "messages": {USER}, "think": "very"}}',
        400,
        "think",
    ),
    "chat-embedding-model": (
        CHAT,
        f'{{"model": "e", "messages": {USER}}}',
        400,
        "does not support chat",
    ),
    "chat-unknown-model": (
        CHAT,
        f'{{"model": "nope", "messages": {USER}}}',
        404,
        "model 'nope' not found",
    ),
    "embed-input-number": (EMBED, '{"model": "e", "input": 5}', 400, '"input"'),
    "embed-negative-dimensions": (
        EMBED,
        '{"model": "e", "input": "x", "dimensions": -1}',
        400,
        "dimensions",
    ),
    "embed-unknown-model": (
        EMBED,
        '{"model": "nope", "input": "x"}',
        404,
        "model 'nope' not found",
    ),
    "embeddings-prompt-list": (EMBEDDINGS, '{"model": "e", "prompt": ["x"]}', 400, '"prompt"'),
    "embeddings-unknown-model": (
        EMBEDDINGS,
        '{"model": "nope", "prompt": "x"}',
        404,
        "model 'nope' not found",
    ),
}
CASES = [pytest.param(*case, id=name) for name, case in TABLE.items()]


@pytest.mark.parametrize(("path", "body", "status", "text"), CASES)
async def test_malformed_input_is_a_4xx(
    shared: Served, path: str, body: str, status: int, text: str
) -> None:
    r = await shared.client.post(
        path, content=body.encode(), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    error = r.json()["error"]
    assert isinstance(error, str) and text in error
    assert shared.factory.loads == []  # nothing was loaded for a bad request
    assert shared.idle()
