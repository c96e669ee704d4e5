"""``create`` FROM a model that is not in the store pulls it first, with its progress, as Ollama
does: against a real registry served over HTTPS (no ``insecure``), with the official client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import ollama
import pytest

from tests.registry.dockerregistry import DockerRegistry, registry_binary
from tests.serverproc import ServerProcess

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerRegistry]:
    if registry_binary() is None:
        pytest.skip("docker-registry is not installed (apt-get install docker-registry)")
    reg = DockerRegistry(tmp_path_factory.mktemp("tls-registry"), tls=True).start()
    yield reg
    reg.stop()


def trusting(reg: DockerRegistry, root: Path) -> ServerProcess:
    """A corral server that trusts the registry's certificate, as a machine trusts a real CA."""
    assert reg.cert is not None
    return ServerProcess(root / "models", env={"SSL_CERT_FILE": str(reg.cert)}).start()


@pytest.fixture(scope="module")
def published(
    tls_registry: DockerRegistry, tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path
) -> Iterator[str]:
    """SmolLM2 pushed to the registry by another corral server."""
    server = trusting(tls_registry, tmp_path_factory.mktemp("publisher"))
    try:
        client = ollama.Client(host=server.url)
        remote = f"{tls_registry.host}/library/smol:latest"
        client.create(model=remote, files={"m.gguf": client.create_blob(smollm2_gguf)})
        assert client.push(remote, stream=False).status == "success"
        yield remote
    finally:
        server.stop()


@pytest.fixture
def fresh(tls_registry: DockerRegistry, tmp_path: Path) -> Iterator[ollama.Client]:
    server = trusting(tls_registry, tmp_path)
    try:
        yield ollama.Client(host=server.url)
    finally:
        server.stop()


def test_create_from_a_missing_model_pulls_it(fresh: ollama.Client, published: str) -> None:
    lines = list(fresh.create(model="derived", from_=published, system="Be brief.", stream=True))
    statuses = [line.status or "" for line in lines]
    assert statuses[0] == "pulling manifest"
    pulled = [line for line in lines if line.digest and (line.status or "").startswith("pulling ")]
    assert pulled and all(line.total for line in pulled)
    assert pulled[-1].completed == pulled[-1].total
    assert "verifying sha256 digest" in statuses
    assert statuses[-1] == "success"
    names = {m.model for m in fresh.list().models}
    assert {published, "derived:latest"} <= names
    assert "SYSTEM Be brief." in (fresh.show("derived").modelfile or "")
    r = fresh.generate(model="derived", prompt="Hi", options={"num_predict": 2})
    assert r.done


def test_create_from_a_model_the_registry_lacks(fresh: ollama.Client, published: str) -> None:
    missing = published.replace("/smol:", "/absent:")
    with pytest.raises(ollama.ResponseError) as e:
        list(fresh.create(model="derived", from_=missing, stream=True))
    assert "pull model manifest" in e.value.error
    assert fresh.list().models == []


def test_create_from_a_local_model_pulls_nothing(fresh: ollama.Client, published: str) -> None:
    fresh.pull(published)
    lines = list(fresh.create(model="again", from_=published, stream=True))
    assert not any((line.status or "").startswith("pulling") for line in lines)
    assert lines[-1].status == "success"
