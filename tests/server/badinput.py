"""The endpoints, bodies and checks shared by the bad-input tables (``test_bad_input.py``,
``test_bad_values.py``): one server per test module (the fake engine) over its own copy of the
template store, whose files every case must leave exactly as they were."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakerunner import Factory
from tests.server.conftest import HANG_GUARD, SCRIPT, Served, serve


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def store_root(template_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    models = tmp_path_factory.mktemp("bad-input") / "models"
    shutil.copytree(template_store, models)
    return models


@pytest.fixture(scope="module")
async def shared(store_root: Path) -> AsyncIterator[Served]:
    async with serve(store_root, Factory(script=SCRIPT)) as srv:
        yield srv


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and link under ``root`` with its size and modification time."""
    out: dict[str, tuple[int, int]] = {}
    for dirpath, dirs, files in os.walk(root):
        for name in files + dirs:
            st = os.lstat(Path(dirpath, name))
            out[str(Path(dirpath, name).relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


# ---- the endpoints -------------------------------------------------------------------------------

USER = [{"role": "user", "content": "ONE"}]
NO_BLOB = "sha256:" + "0" * 64


@dataclass(frozen=True)
class Endpoint:
    """A JSON endpoint, a base body it answers without changing the store, and the JSON kinds
    each of its fields accepts (``float`` includes integers)."""

    name: str
    method: str
    path: str
    base: dict[str, Any]
    fields: dict[str, frozenset[str]] = field(default_factory=dict)

    @property
    def openai(self) -> bool:
        return self.path.startswith("/v1/")

    def error(self, r: httpx.Response) -> str:
        """The message of an error answer, after checking the error's shape."""
        assert r.headers["content-type"].startswith("application/json"), r.text
        body = r.json()
        assert isinstance(body, dict) and set(body) == {"error"}, body
        error = body["error"]
        if self.openai:
            assert isinstance(error, dict) and {"message", "type"} <= set(error), body
            message = error["message"]
        else:
            message = error
        assert isinstance(message, str) and message, body
        return message


def kinds(*names: str) -> frozenset[str]:
    return frozenset(names)


STR, BOOL, INT, FLOAT, OBJ, LIST = "str", "bool", "int", "float", "obj", "list"
DURATION = kinds(FLOAT, INT, STR)
SAMPLING = {
    "stream": kinds(BOOL),
    "max_tokens": kinds(INT),
    "temperature": kinds(FLOAT, INT),
    "top_p": kinds(FLOAT, INT),
    "seed": kinds(INT),
    "stop": kinds(STR, LIST),
    "response_format": kinds(OBJ),
    "stream_options": kinds(OBJ),
    "num_ctx": kinds(INT),
    "keep_alive": DURATION,
}

ENDPOINTS = [
    Endpoint(
        "generate",
        "POST",
        "/api/generate",
        {"model": "a", "prompt": "ONE", "stream": False},
        {
            "model": kinds(STR),
            "prompt": kinds(STR),
            "suffix": kinds(STR),
            "system": kinds(STR),
            "template": kinds(STR),
            "images": kinds(LIST),
            "format": kinds(STR, OBJ),
            "options": kinds(OBJ),
            "context": kinds(LIST),
            "stream": kinds(BOOL),
            "raw": kinds(BOOL),
            "keep_alive": DURATION,
            "think": kinds(BOOL, STR),
            "truncate": kinds(BOOL),
        },
    ),
    Endpoint(
        "chat",
        "POST",
        "/api/chat",
        {"model": "a", "messages": USER, "stream": False},
        {
            "model": kinds(STR),
            "messages": kinds(LIST),
            "tools": kinds(LIST),
            "format": kinds(STR, OBJ),
            "options": kinds(OBJ),
            "stream": kinds(BOOL),
            "keep_alive": DURATION,
            "think": kinds(BOOL, STR),
            "truncate": kinds(BOOL),
        },
    ),
    Endpoint(
        "embed",
        "POST",
        "/api/embed",
        {"model": "e", "input": "x"},
        {
            "model": kinds(STR),
            "input": kinds(STR, LIST),
            "truncate": kinds(BOOL),
            "dimensions": kinds(INT),
            "options": kinds(OBJ),
            "keep_alive": DURATION,
        },
    ),
    Endpoint(
        "embeddings",
        "POST",
        "/api/embeddings",
        {"model": "e", "prompt": "x"},
        {
            "model": kinds(STR),
            "prompt": kinds(STR),
            "options": kinds(OBJ),
            "keep_alive": DURATION,
        },
    ),
    Endpoint(
        "show", "POST", "/api/show", {"model": "a"}, {"model": kinds(STR), "verbose": kinds(BOOL)}
    ),
    Endpoint(
        "copy",
        "POST",
        "/api/copy",
        {"source": "nope", "destination": "dst"},
        {"source": kinds(STR), "destination": kinds(STR)},
    ),
    Endpoint("delete", "DELETE", "/api/delete", {"model": "nope"}, {"model": kinds(STR)}),
    Endpoint(
        "create",
        "POST",
        "/api/create",
        {"model": "new", "files": {"m.gguf": NO_BLOB}, "stream": False},
        {
            "model": kinds(STR),
            "from": kinds(STR),
            "files": kinds(OBJ),
            "adapters": kinds(OBJ),
            "template": kinds(STR),
            "system": kinds(STR),
            "license": kinds(STR, LIST),
            "parameters": kinds(OBJ),
            "messages": kinds(LIST),
            "quantize": kinds(STR),
            "modelfile": kinds(STR),
            "stream": kinds(BOOL),
        },
    ),
    # an invalid name: nothing valid may reach a registry from this test
    Endpoint(
        "pull",
        "POST",
        "/api/pull",
        {"model": "../x", "stream": False},
        {"model": kinds(STR), "insecure": kinds(BOOL), "stream": kinds(BOOL)},
    ),
    Endpoint(
        "push",
        "POST",
        "/api/push",
        {"model": "nope", "stream": False},
        {"model": kinds(STR), "insecure": kinds(BOOL), "stream": kinds(BOOL)},
    ),
    Endpoint(
        "openai-chat",
        "POST",
        "/v1/chat/completions",
        {"model": "a", "messages": USER},
        {"model": kinds(STR), "messages": kinds(LIST), "tools": kinds(LIST), **SAMPLING},
    ),
    Endpoint(
        "openai-completions",
        "POST",
        "/v1/completions",
        {"model": "a", "prompt": "ONE"},
        {
            "model": kinds(STR),
            "prompt": kinds(STR, LIST),
            "suffix": kinds(STR),
            "echo": kinds(BOOL),
            **SAMPLING,
        },
    ),
    Endpoint(
        "openai-embeddings",
        "POST",
        "/v1/embeddings",
        {"model": "e", "input": "x"},
        {
            "model": kinds(STR),
            "input": kinds(STR, LIST),
            "encoding_format": kinds(STR),
            "dimensions": kinds(INT),
            "keep_alive": DURATION,
        },
    ),
]
BY_NAME = {e.name: e for e in ENDPOINTS}

# One value of each JSON kind; a field given a kind it does not accept must be a 400.
SAMPLES: dict[str, Any] = {
    STR: "x",
    BOOL: True,
    INT: 7,
    FLOAT: 1.5,
    OBJ: {"k": 1},
    LIST: [1],
}


async def ask(srv: Served, ep: Endpoint, body: bytes | dict[str, Any]) -> httpx.Response:
    """One request, bounded: a hang fails the test at the guard instead of stalling the run."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    async with asyncio.timeout(HANG_GUARD):
        return await srv.client.request(ep.method, ep.path, content=content, headers=headers)


@pytest.fixture
def intact(shared: Served, store_root: Path) -> Iterator[None]:
    """The store's files (and the model list) are the same after the test as before it."""
    before = snapshot(store_root)
    yield
    assert snapshot(store_root) == before


async def check(srv: Served, ep: Endpoint, body: bytes | dict[str, Any]) -> httpx.Response:
    """Send ``body``; the answer must be a success or a 4xx in the endpoint's error shape."""
    r = await ask(srv, ep, body)
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        ep.error(r)
    return r


async def refused(srv: Served, ep: Endpoint, body: bytes | dict[str, Any], status: int) -> str:
    r = await ask(srv, ep, body)
    assert r.status_code == status, r.text
    return ep.error(r)


# ---- body builders -------------------------------------------------------------------------------


def chat_with(**message: Any) -> dict[str, Any]:
    return {
        "model": "a",
        "stream": False,
        "messages": [{"role": "user", "content": "ONE", **message}],
    }


def assistant_calls(calls: Any) -> dict[str, Any]:
    return {
        "model": "a",
        "stream": False,
        "messages": [*USER, {"role": "assistant", "content": "", "tool_calls": calls}, *USER],
    }


def with_tools(tools: Any, ep: str = "chat") -> dict[str, Any]:
    return {**BY_NAME[ep].base, "tools": tools}


def parts(content: Any) -> dict[str, Any]:
    return {"model": "a", "messages": [{"role": "user", "content": content}]}


async def models_all_there(srv: Served) -> None:
    """The store's models are all still listed and readable."""
    r = await srv.client.get("/api/tags")
    assert sorted(m["name"] for m in r.json()["models"]) == ["a:latest", "b:latest", "e:latest"]
    for name in ("a", "e"):
        assert (await srv.client.post("/api/show", json={"model": name})).status_code == 200
