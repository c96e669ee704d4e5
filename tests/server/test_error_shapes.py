"""Errors that no route handler makes (an unmatched path, a wrong method, a foreign Host, an
unexpected exception) come in the shape of the API the path belongs to: OpenAI's error object
under ``/v1``, Ollama's ``{"error": ...}`` elsewhere (issue 14: found by the fuzz test, where
``GET /v1/models/<a name with a newline>`` matched no route and answered a native 404)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from corral.config import HostAddr, Settings
from corral.scheduler import Scheduler
from corral.server.app import create_app
from corral.service import Service
from corral.store import Store
from tests.fakerunner import Factory

OPENAI_KEYS = {"message", "type", "param", "code"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    models = tmp_path / "models"
    models.mkdir()
    config = Settings(host=HostAddr(host="127.0.0.1", port=11434), models=models)
    app = create_app(config, Service.build(config, Store(models), Scheduler(config, Factory())))
    with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as c:
        yield c


def openai_error(body: Any) -> dict[str, Any]:
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict) and set(error) == OPENAI_KEYS, body
    return error


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/models/a%0Ab", 404),  # the fuzz test's finding: no route matches
        ("GET", "/v1/nothing", 404),
        ("GET", "/v1/chat/completions", 405),
        ("DELETE", "/v1/models", 405),
    ],
)
def test_unrouted_v1_errors_are_openai_objects(
    client: TestClient, method: str, path: str, status: int
) -> None:
    r = client.request(method, path)
    assert r.status_code == status
    error = openai_error(r.json())
    assert error["type"] == ("not_found_error" if status == 404 else "api_error")
    assert str(status) in error["message"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/api/nothing", 404), ("GET", "/api/generate", 405), ("GET", "/nothing", 404)],
)
def test_unrouted_native_errors_stay_ollamas(
    client: TestClient, method: str, path: str, status: int
) -> None:
    r = client.request(method, path)
    assert r.status_code == status
    assert r.json() == {
        "error": f"{status} page not found" if status == 404 else "405 method not allowed"
    }


def test_foreign_host_is_refused_in_each_apis_shape(client: TestClient) -> None:
    evil = {"Host": "evil.example"}
    native = client.get("/api/tags", headers=evil)
    assert native.status_code == 403 and native.json() == {"error": "forbidden"}
    v1 = client.get("/v1/models", headers=evil)
    assert v1.status_code == 403
    assert openai_error(v1.json())["message"] == "forbidden"
