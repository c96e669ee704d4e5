"""Push and pull against a real registry with the official ``ollama`` client.

A model made from SmolLM2 is pushed to Debian's ``docker-registry``, deleted locally, pulled
back, and checked: progress stream, listing, ``show``, generation, and that every blob's bytes
hash to the digests the registry holds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest

from tests.registry.dockerregistry import DockerRegistry
from tests.serverproc import ServerProcess

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("roundtrip") / "models").start()
    yield proc
    proc.stop()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return "sha256:" + h.hexdigest()


def _manifest_file(models: Path, host: str, repo: str, tag: str) -> Path:
    return models.joinpath("manifests", host, *repo.split("/"), tag)


def test_push_delete_pull_round_trip(
    server: ServerProcess, docker_registry: DockerRegistry, smollm2_gguf: Path
) -> None:
    client = ollama.Client(host=server.url)
    blob = client.create_blob(smollm2_gguf)
    client.create(model="smol-rt", files={"m.gguf": blob})
    remote = f"{docker_registry.host}/library/smol-rt:test"
    client.copy("smol-rt", remote)
    local_manifest = _manifest_file(server.models, docker_registry.host, "library/smol-rt", "test")
    raw = local_manifest.read_bytes()
    doc = json.loads(raw)
    digests = [layer["digest"] for layer in doc["layers"]] + [doc["config"]["digest"]]

    pushed = list(client.push(remote, insecure=True, stream=True))
    statuses = [p.status for p in pushed]
    assert statuses[0] == "retrieving manifest"
    assert statuses[-2:] == ["pushing manifest", "success"]
    for digest in digests:
        assert f"pushing {digest[7:19]}" in statuses
    model_progress = [p for p in pushed if p.digest == blob]
    assert model_progress[-1].completed == model_progress[-1].total == smollm2_gguf.stat().st_size

    # The registry holds the manifest byte for byte, and blobs that hash to their digests.
    reg = httpx.Client(base_url=docker_registry.url, timeout=60)
    accept = {"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
    assert reg.get("/v2/library/smol-rt/manifests/test", headers=accept).content == raw
    for digest in digests:
        got = reg.get(f"/v2/library/smol-rt/blobs/{digest}").content
        assert "sha256:" + hashlib.sha256(got).hexdigest() == digest

    # A second push finds every blob in place.
    again = [p.status for p in client.push(remote, insecure=True, stream=True)]
    assert again[-1] == "success"

    client.delete(remote)
    client.delete("smol-rt")
    assert not (server.models / "blobs" / ("sha256-" + blob[7:])).exists()

    pulled = list(client.pull(remote, insecure=True, stream=True))
    statuses = [p.status for p in pulled]
    assert statuses[0] == "pulling manifest"
    assert statuses[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    for digest in digests:
        assert f"pulling {digest[7:19]}" in statuses
    last = [p for p in pulled if p.digest == blob][-1]
    assert last.completed == last.total == smollm2_gguf.stat().st_size

    assert local_manifest.read_bytes() == raw
    for digest in digests:
        assert _sha256(server.models / "blobs" / ("sha256-" + digest[7:])) == digest
    leftovers = [p.name for p in (server.models / "blobs").iterdir() if "partial" in p.name]
    assert leftovers == []

    listed = {m.model: m for m in client.list().models}
    assert remote in listed
    info = client.show(remote)
    assert info.details is not None and info.details.family == "llama"
    out = client.generate(model=remote, prompt="Hello", options={"num_predict": 2})
    assert out.done

    # Pulling again downloads nothing; stream=false answers the last object only.
    final = client.pull(remote, insecure=True, stream=False)
    assert final.status == "success"


def test_pull_errors_from_a_real_registry(
    server: ServerProcess, docker_registry: DockerRegistry
) -> None:
    client = ollama.Client(host=server.url)
    missing = f"{docker_registry.host}/library/nothing-here:latest"
    with pytest.raises(ollama.ResponseError) as err:
        list(client.pull(missing, insecure=True, stream=True))
    assert err.value.error == "pull model manifest: file does not exist"
    with pytest.raises(ollama.ResponseError) as err:
        client.pull(missing, insecure=True, stream=False)
    assert err.value.error == "pull model manifest: file does not exist"
    assert err.value.status_code == 500
    # Without insecure, an http:// name is refused.
    with pytest.raises(ollama.ResponseError) as err:
        client.pull(f"http://{docker_registry.host}/library/x:latest", stream=False)
    assert err.value.error == "insecure protocol http"


def test_request_validation(server: ServerProcess) -> None:
    r = httpx.post(f"{server.url}/api/pull", json={"model": "bad name!"})
    assert r.status_code == 400 and r.json() == {"error": "invalid model name"}
    r = httpx.post(f"{server.url}/api/push", json={"model": "bad name!"})
    assert r.status_code == 400 and r.json() == {"error": "invalid model name"}
    r = httpx.post(f"{server.url}/api/push", json={})
    assert r.status_code == 400 and r.json() == {"error": "model is required"}
    r = httpx.post(f"{server.url}/api/push", json={"model": "127.0.0.1:1/library/none:x"})
    assert r.status_code == 404
    assert "not found" in r.json()["error"]
    r = httpx.post(f"{server.url}/api/pull", json={"model": "x", "insecure": "yes"})
    assert r.status_code == 400
