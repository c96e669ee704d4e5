"""Capabilities on ``/api/tags`` and ``/api/show``, ``GET /api/status``, and ``shift``
(fake engine)."""

from __future__ import annotations

import pytest

from tests.server.conftest import CHAT_A, EMBED, Served

pytestmark = pytest.mark.anyio

TOO_LONG = (
    "the prompt is longer than the context length currently available to the model; shorten "
    "the prompt, adjust the context length in settings, or use a model with a longer context "
    "length"
)


async def test_tags_list_each_models_capabilities(srv: Served) -> None:
    models = {m["name"]: m for m in (await srv.client.get("/api/tags")).json()["models"]}
    assert models[f"{CHAT_A}:latest"]["capabilities"] == ["completion"]
    assert models[f"{EMBED}:latest"]["capabilities"] == ["embedding"]
    for name in models:  # the same list as show's
        show = (await srv.client.post("/api/show", json={"model": name})).json()
        assert show["capabilities"] == models[name]["capabilities"]


async def test_status(srv: Served) -> None:
    r = await srv.client.get("/api/status")
    assert r.status_code == 200
    assert r.json() == {"cloud": {"disabled": True, "source": "corral"}}


@pytest.mark.settings(no_cloud=True)
async def test_status_names_the_environment(srv: Served) -> None:
    assert (await srv.client.get("/api/status")).json()["cloud"]["source"] == "env"


@pytest.mark.parametrize("path", ["/api/generate", "/api/chat"])
async def test_a_prompt_too_long_without_shift_is_refused(srv: Served, path: str) -> None:
    text = "word " * 100
    body = {"model": CHAT_A, "stream": False, "options": {"num_ctx": 64}, "shift": False}
    if path == "/api/chat":
        body["messages"] = [{"role": "user", "content": text}]
    else:
        body["prompt"] = text
    r = await srv.client.post(path, json=body)
    assert r.status_code == 400
    assert r.json() == {"error": TOO_LONG}
    r = await srv.client.post(path, json={**body, "truncate": False})
    assert r.json() == {"error": "the input length exceeds the context length"}
    r = await srv.client.post(path, json={**body, "shift": True})
    assert r.status_code == 200  # truncated to fit, as by default


async def test_shift_must_be_a_boolean(srv: Served) -> None:
    r = await srv.client.post("/api/generate", json={"model": CHAT_A, "prompt": "x", "shift": 1})
    assert r.status_code == 400
    assert "shift" in r.json()["error"]
