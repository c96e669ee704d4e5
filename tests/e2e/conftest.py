"""End-to-end fixtures: a real corral server on 127.0.0.1 with a temporary store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import ollama
import pytest

from tests.serverproc import ServerProcess


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("e2e") / "models").start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def client(server: ServerProcess) -> ollama.Client:
    return ollama.Client(host=server.url)


@pytest.fixture(scope="session")
def smollm2_digest(client: ollama.Client, smollm2_gguf: Path) -> str:
    """The SmolLM2 GGUF uploaded once as a blob."""
    return client.create_blob(smollm2_gguf)
