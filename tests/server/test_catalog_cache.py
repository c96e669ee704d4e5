"""``/api/tags``, ``/api/show`` and inference resolve models from the catalog's digest-keyed
caches: an unchanged model's GGUF header is parsed once, a re-created model is seen at once
(issue 11)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import corral.service.models
from corral.gguf_info import GGUFFile, read_gguf
from tests.server.conftest import (
    CHAT_A,
    EMBED,
    ONE_REPLY,
    Served,
    create_model,
    write_tiny_llama,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The GGUF files the catalog parses, in order."""
    calls: list[Path] = []
    real = read_gguf

    def counting(path: Path) -> GGUFFile:
        calls.append(Path(path))
        return real(path)

    monkeypatch.setattr(corral.service.models, "read_gguf", counting)
    return calls


async def show(srv: Served, name: str) -> dict[str, Any]:
    r = await srv.client.post("/api/show", json={"model": name})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def tags(srv: Served) -> dict[str, str]:
    r = await srv.client.get("/api/tags")
    assert r.status_code == 200, r.text
    return {m["name"]: m["digest"] for m in r.json()["models"]}


async def test_an_unchanged_model_is_parsed_once(srv: Served, parsed: list[Path]) -> None:
    first = await show(srv, CHAT_A)
    assert parsed == [Path(srv.model_path(CHAT_A))]
    assert await show(srv, CHAT_A) == first
    assert len(parsed) == 1

    listed = await tags(srv)
    assert set(listed) == {"a:latest", "b:latest", "e:latest"}
    assert len(parsed) == 3  # b and e once each; a from the cache
    assert await tags(srv) == listed
    r = await srv.ask(CHAT_A)  # inference resolves through the same cache
    assert r.status_code == 200 and r.json()["response"] == ONE_REPLY
    r = await srv.client.post("/api/embed", json={"model": EMBED, "input": "x"})
    assert r.status_code == 200, r.text
    await show(srv, "b")
    assert len(parsed) == 3


async def test_a_recreated_model_is_seen(
    srv: Served, parsed: list[Path], gguf_files: dict[str, Path], tmp_path: Path
) -> None:
    before = await show(srv, CHAT_A)
    digest = (await tags(srv))["a:latest"]
    assert len(parsed) == 3

    # A new template: a new manifest digest over the same model blob (no new parse needed).
    await create_model(srv.client, CHAT_A, gguf_files[CHAT_A], "NEW {{ .Prompt }}")
    after = await show(srv, CHAT_A)
    assert after["template"] == "NEW {{ .Prompt }}" != before["template"]
    assert (await tags(srv))["a:latest"] != digest
    assert len(parsed) == 3

    # A new model file: its header is parsed, and what it says is shown.
    assert before["model_info"]["llama.context_length"] == 1 << 20
    other = write_tiny_llama(tmp_path / "a2.gguf", context_length=2048, tokens=["<s>", "z"])
    await create_model(srv.client, CHAT_A, other)
    assert (await show(srv, CHAT_A))["model_info"]["llama.context_length"] == 2048
    assert parsed[3:] == [Path(srv.model_path(CHAT_A))] and len(parsed) == 4
    await show(srv, CHAT_A)
    await tags(srv)
    assert len(parsed) == 4
