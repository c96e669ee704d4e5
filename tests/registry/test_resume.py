"""Interrupted pulls resume: a vanished client, and a server killed with SIGKILL.

The model is pushed to Debian's ``docker-registry`` and pulled through a throttling proxy that
counts the bytes served, so the test can check that the second pull fetched only what the first
one had not recorded on disk, and that the result verifies.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import ollama
import pytest

from tests.registry.dockerregistry import DockerRegistry
from tests.registry.proxy import CountingProxy
from tests.serverproc import ServerProcess

pytestmark = pytest.mark.slow

RATE = 16e6  # bytes per second through the proxy while the first pull runs
SLACK = 256 << 10  # headers, the manifest and the small blobs


@pytest.fixture
def proxy(docker_registry: DockerRegistry) -> Iterator[CountingProxy]:
    p = CountingProxy("127.0.0.1", docker_registry.port, rate=RATE).start()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def published(
    tmp_path_factory: pytest.TempPathFactory, docker_registry: DockerRegistry, smollm2_gguf: Path
) -> tuple[str, str]:
    """A SmolLM2 model pushed to the registry by a scratch server: (repository:tag, blob)."""
    repo = "library/resume:v1"
    server = ServerProcess(tmp_path_factory.mktemp("publish") / "models").start()
    try:
        client = ollama.Client(host=server.url)
        digest = client.create_blob(smollm2_gguf)
        client.create(model=f"{docker_registry.host}/{repo}", files={"m.gguf": digest})
        client.push(f"{docker_registry.host}/{repo}", insecure=True)
        return repo, digest
    finally:
        server.stop()


def _recorded(models: Path, digest: str) -> int:
    """Bytes the partial state of ``digest`` says are on disk (0 when there is none)."""
    base = "sha256-" + digest[7:] + "-partial"
    blobs = models / "blobs"
    assert (blobs / base).is_file(), "the interrupted pull left no partial data file"
    return sum(json.loads(p.read_text())["Completed"] for p in blobs.glob(base + "-*"))


def _settled_recorded(models: Path, digest: str, timeout: float = 10.0) -> int:
    """Wait until the partial records stop changing (the download has stopped)."""
    last, since = -1, time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = _recorded(models, digest)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since > 1.5:
            return now
        time.sleep(0.1)
    raise AssertionError("the interrupted download kept going")


def _pull_progress_until(client: ollama.Client, name: str, digest: str, at_least: int) -> None:
    stream = client.pull(name, insecure=True, stream=True)
    for p in stream:
        if p.digest == digest and (p.completed or 0) >= at_least:
            break
    else:
        raise AssertionError("the pull ended before the interruption point")
    stream.close()  # type: ignore[attr-defined]


def _check_resumed_pull(
    client: ollama.Client,
    models: Path,
    name: str,
    digest: str,
    size: int,
    recorded: int,
    proxy: CountingProxy,
) -> None:
    proxy.rate = 0
    before = proxy.served
    statuses = [p.status for p in client.pull(name, insecure=True, stream=True)]
    fetched = proxy.served - before
    assert statuses[-1] == "success"
    assert size - recorded <= fetched <= size - recorded + SLACK, (fetched, size, recorded)
    blob = models / "blobs" / ("sha256-" + digest[7:])
    h = hashlib.sha256()
    with blob.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    assert "sha256:" + h.hexdigest() == digest
    assert not [p for p in (models / "blobs").iterdir() if "partial" in p.name]
    assert name in {m.model for m in client.list().models}
    assert client.show(name).details is not None


def test_pull_resumes_after_the_client_goes_away(
    tmp_path: Path, published: tuple[str, str], proxy: CountingProxy, smollm2_gguf: Path
) -> None:
    repo, digest = published
    size = smollm2_gguf.stat().st_size
    name = f"{proxy.host}/{repo}"
    server = ServerProcess(tmp_path / "models").start()
    try:
        client = ollama.Client(host=server.url)
        _pull_progress_until(client, name, digest, 1)
        # The server notices the client is gone, stops the download and records its parts.
        recorded = _settled_recorded(server.models, digest)
        assert 0 < recorded < size
        _check_resumed_pull(client, server.models, name, digest, size, recorded, proxy)
    finally:
        server.stop()


def test_pull_resumes_after_the_server_is_killed(
    tmp_path: Path, published: tuple[str, str], proxy: CountingProxy, smollm2_gguf: Path
) -> None:
    repo, digest = published
    size = smollm2_gguf.stat().st_size
    name = f"{proxy.host}/{repo}"
    models = tmp_path / "models"
    first = ServerProcess(models).start()
    try:
        client = ollama.Client(host=first.url)
        stream = client.pull(name, insecure=True, stream=True)
        for p in stream:
            if p.digest == digest and (p.completed or 0) >= size // 4:
                first.kill()
                break
        stream.close()  # type: ignore[attr-defined]
    finally:
        first.kill()
    recorded = _recorded(models, digest)
    assert 0 < recorded < size
    second = ServerProcess(models).start()  # start-up pruning keeps the young partial files
    try:
        client = ollama.Client(host=second.url)
        _check_resumed_pull(client, models, name, digest, size, recorded, proxy)
    finally:
        second.stop()
