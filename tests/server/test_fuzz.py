"""schemathesis against corral's own OpenAPI document, in process, with the fake engine.

The app is the real one (``create_app``: routes, services, scheduler) with in-process fake
runners and a store copied from the session's template store (models ``a``, ``b``: chat; ``e``:
embeddings). The spec is loaded from the app's ``GET /openapi.json``. Every operation gets
positive and negative cases (hypothesis, derandomized: the same cases every run), steered by
:class:`tests.fuzzkit.Steer` (model names, scratch names for what is created or deleted, pull
and push to an in-process registry, never the internet). Every answer must pass the checks of
:mod:`tests.fuzzkit`: no 5xx, a documented status and media type, a body valid against the spec
(streams included), and each API's error shape.

A hung request fails its case after :data:`REQUEST_TIMEOUT` seconds (the ASGI client's read
timeout); nothing here waits on a clock otherwise.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import Case, GenerationMode

from corral.config import HostAddr, Settings
from corral.names import parse_name
from corral.scheduler import Scheduler
from corral.server.app import create_app
from corral.server.openapi_table import OPERATIONS, Operation
from corral.service import Service
from corral.store import Store
from corral.store.manifests import Manifest
from tests.fakerunner import Factory
from tests.fuzzkit import CHECKS, Steer, error_shape
from tests.registry.fakeregistry import FakeRegistry
from tests.server.conftest import CHAT_A, CHAT_B, EMBED

MAX_EXAMPLES = int(os.environ.get("CORRAL_FUZZ_EXAMPLES", "12"))  # per operation and mode
REQUEST_TIMEOUT = 30.0  # seconds; only a hung request waits this long
HOST = {"Host": "127.0.0.1"}  # a loopback Host, as the DNS-rebinding check wants
MODEL_LAYER = "application/vnd.ollama.image.model"


@pytest.fixture(scope="module")
def registry(gguf_files: dict[str, Path]) -> Iterator[FakeRegistry]:
    """An in-process registry serving ``library/tiny:latest`` (a tiny GGUF)."""
    reg = FakeRegistry().start()
    reg.add_model("library/tiny", "latest", [(MODEL_LAYER, gguf_files[CHAT_B].read_bytes())])
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def steer(registry: FakeRegistry) -> Steer:
    return Steer(models=(CHAT_A, EMBED), registry=registry.host)


@pytest.fixture(scope="module")
def models(template_store: Path, tmp_path_factory: pytest.TempPathFactory, steer: Steer) -> Path:
    """The store the whole module fuzzes (scratch models come and go in it)."""
    models = tmp_path_factory.mktemp("fuzz") / "models"
    shutil.copytree(template_store, models)
    store = Store(models)
    # What push sends: a copy of ``a`` under the registry's name.
    entry = store.read(parse_name(CHAT_A))
    store.write(parse_name(steer.remote_name), Manifest.from_bytes(entry.manifest.to_bytes()))
    return models


def make_app(models: Path) -> FastAPI:
    config = Settings(host=HostAddr(host="127.0.0.1", port=11434), models=models)
    return create_app(config, Service.build(config, Store(models), Scheduler(config, Factory())))


@pytest.fixture
def app(models: Path) -> FastAPI:
    """A fresh app per test: schemathesis' pytest plugin ends an ASGI app's lifespan (which
    closes its scheduler) after each test."""
    return make_app(models)


@pytest.fixture(scope="module")
def api(models: Path) -> schemathesis.BaseSchema:
    """The spec as the app serves it."""
    return schemathesis.openapi.from_asgi("/openapi.json", make_app(models), headers=HOST)


def negatable(op: Operation) -> bool:
    """Whether any input of ``op`` can be invalid (a body, a path parameter with a pattern)."""
    patterns = any("pattern" in schema for _, schema in op.params.values())
    return op.request is not None or patterns


CASES = [
    pytest.param(op.method, op.path, mode, id=f"{op.method.upper()} {op.path} {mode.value}")
    for op in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or negatable(op)
]


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_fuzz(
    api: schemathesis.BaseSchema,
    app: FastAPI,
    steer: Steer,
    method: str,
    path: str,
    mode: GenerationMode,
    record_property: Callable[[str, object], None],
) -> None:
    operation = api[path][method]

    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure shows as generated
    )
    def run(case: Case[Any]) -> None:
        sent.append(case)
        steer.path_parameters(path, case.path_parameters)
        case.body = steer.body(path, case.body)
        case.call_and_validate(
            app=app,
            headers=HOST,
            checks=CHECKS,
            additional_checks=[error_shape],
            timeout=REQUEST_TIMEOUT,
        )

    sent: list[Case[Any]] = []
    run()
    assert sent, "no request was sent"
    record_property("requests", len(sent))
