"""corral's OpenAPI document: served at ``/openapi.json``, checked in as ``openapi.json``, a
valid OpenAPI 3.1 document, and in step with the app's routes (issue 14)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from schemathesis.specs.openapi.definitions import OPENAPI_31
from starlette.routing import BaseRoute

from corral.api.types import ShowResponse
from corral.config import HostAddr, Settings
from corral.scheduler import Scheduler
from corral.server.app import create_app
from corral.server.openapi import document, render
from corral.server.openapi_table import OPERATIONS
from corral.service import Service
from corral.store import Store
from tests.fakerunner import Factory
from tests.server.conftest import CHAT_A

ROOT = Path(__file__).resolve().parents[2]
CHECKED_IN = ROOT / "openapi.json"
REGENERATE = ".venv/bin/python -m corral.server.openapi > openapi.json"
METHODS = {"get", "head", "post", "put", "patch", "delete", "options", "trace"}


def app_for(models: Path, **settings: Any) -> FastAPI:
    config = Settings(host=HostAddr(host="127.0.0.1", port=11434), models=models, **settings)
    return create_app(config, Service.build(config, Store(models), Scheduler(config, Factory())))


@pytest.fixture
def client(models: Path) -> Iterator[TestClient]:
    with TestClient(app_for(models), base_url="http://127.0.0.1") as c:
        yield c


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return document()


def test_served_spec_is_the_checked_in_file(client: TestClient) -> None:
    r = client.get("/openapi.json")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    checked_in = CHECKED_IN.read_text(encoding="utf-8") if CHECKED_IN.exists() else ""
    assert r.text == checked_in, f"openapi.json is stale: regenerate it with `{REGENERATE}`"
    assert client.get("/openapi.json").content == r.content  # built once


def test_spec_needs_the_api_key_like_other_routes(models: Path) -> None:
    with TestClient(app_for(models, api_key="k"), base_url="http://127.0.0.1") as c:
        assert c.get("/openapi.json").status_code == 401
        assert c.get("/openapi.json", headers={"Authorization": "Bearer k"}).status_code == 200


def test_spec_is_a_valid_openapi_3_1_document(doc: dict[str, Any]) -> None:
    assert doc["openapi"] == "3.1.0"
    errors = sorted(jsonschema.Draft202012Validator(OPENAPI_31).iter_errors(doc), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])


def schemas_in(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every Schema Object of the document, with where it is."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("schema", "contentSchema") or path.endswith("components/schemas"):
                yield f"{path}/{key}", value
            else:
                yield from schemas_in(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from schemas_in(value, f"{path}/{i}")


def refs_in(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs_in(value)


def test_every_schema_is_a_valid_json_schema(doc: dict[str, Any]) -> None:
    found = list(schemas_in(doc))
    assert len(found) > len(doc["components"]["schemas"])
    for where, schema in found:
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as e:
            raise AssertionError(f"{where}: {e.message}") from e


def test_every_reference_resolves(doc: dict[str, Any]) -> None:
    names = set(doc["components"]["schemas"])
    refs = set(refs_in(doc))
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in names, ref


def test_operations_are_unique_and_parameters_match_their_paths(doc: dict[str, Any]) -> None:
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids)) == len(OPERATIONS)
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert method in METHODS
            named = {p["name"] for p in op.get("parameters", [])}
            assert named == {seg[1:-1] for seg in path.split("/") if seg.startswith("{")}, path
            assert any(s.startswith("2") for s in op["responses"]), (method, path)
            assert {"403", "500"} <= set(op["responses"]), (method, path)


def route_operations(routes: Sequence[BaseRoute], prefix: str = "") -> set[tuple[str, str]]:
    """(method, path) of every route, through included routers (FastAPI keeps those whole)."""
    ops = set()
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            context = getattr(route, "include_context", None)
            ops |= route_operations(included.routes, prefix + getattr(context, "prefix", ""))
        elif isinstance(route, APIRoute):
            path = (prefix + route.path).replace(":path}", "}")
            ops |= {(m.lower(), path) for m in route.methods or ()}
    return ops


def test_every_route_is_in_the_spec_and_back(models: Path, doc: dict[str, Any]) -> None:
    served = route_operations(app_for(models).routes)
    assert ("post", "/api/chat") in served
    documented = {(m, path) for path, item in doc["paths"].items() for m in item}
    assert served - documented == set(), "routes missing from the spec (add rows to OPERATIONS)"
    assert documented - served == set(), "the spec documents routes the app does not serve"


def test_native_and_openai_errors_have_their_shapes(doc: dict[str, Any]) -> None:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for status, resp in op["responses"].items():
                if not status.startswith(("4", "5")) or method == "head":
                    continue
                ref = resp["content"]["application/json"]["schema"]["$ref"]
                want = "OpenAIErrorResponse" if path.startswith("/v1/") else "ErrorResponse"
                if path.startswith("/v1/messages"):
                    want = "AnthropicErrorOut"
                assert ref.endswith("/" + want), (method, path, status)


def test_show_answers_what_show_response_describes(client: TestClient) -> None:
    r = client.post("/api/show", json={"model": CHAT_A})
    assert r.status_code == 200, r.text
    shown = ShowResponse.model_validate(r.json())
    assert shown.capabilities and shown.details.format == "gguf"


def test_render_is_stable(doc: dict[str, Any]) -> None:
    text = render(doc)
    assert json.loads(text) == doc and text.endswith("}\n") and render(json.loads(text)) == text
