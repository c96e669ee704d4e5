"""kill -9 during a pull (each stage, several parts in flight) and a push, against Debian's
``docker-registry``; restart; the store is consistent, nothing half-made is listed, and the
repeated transfer completes (a pull resumes what is on disk: the registry serves only the rest).

Pulls go through :class:`tests.registry.proxy.CountingProxy`, which throttles the registry's
answers (so a kill lands while parts are in flight) and counts the bytes it served. Kills are
ordered by progress lines, by part records on disk, or by the test-only crash points of
:mod:`tests.crashkit`; never by sleeping. Each case records its matrix row with
``record_property`` (see ``--junitxml``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest

from tests.conditions import HANG_GUARD
from tests.crashkit import MANIFEST_TEMP, CrashBench, Request, stream_and_kill
from tests.registry.dockerregistry import DockerRegistry
from tests.registry.proxy import CountingProxy
from tests.serverproc import ServerProcess
from tests.storecheck import StoreReport, check_store, sha256_file

pytestmark = pytest.mark.slow

Record = Callable[[str, object], None]
REPO = "library/crash"
THROTTLE = 8e6  # bytes per second through the proxy while a pull is to be interrupted
SLACK = 256 << 10  # HTTP headers, the manifest and the small blobs
DOWNLOAD_TEMP = r"/blobs/sha256-[0-9a-f]{64}-partial'"  # a download's data file


@pytest.fixture(scope="module")
def published(
    tmp_path_factory: pytest.TempPathFactory, docker_registry: DockerRegistry, smollm2_gguf: Path
) -> bytes:
    """A SmolLM2 model pushed to the registry by a scratch server; its manifest's bytes."""
    server = ServerProcess(tmp_path_factory.mktemp("publish") / "models").start()
    try:
        client = ollama.Client(host=server.url)
        name = f"{docker_registry.host}/{REPO}:v1"
        client.create(model=name, files={"m.gguf": client.create_blob(smollm2_gguf)})
        client.push(name, insecure=True)
        path = server.models.joinpath("manifests", docker_registry.host, *REPO.split("/"), "v1")
        return path.read_bytes()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def proxy(docker_registry: DockerRegistry) -> Iterator[CountingProxy]:
    p = CountingProxy("127.0.0.1", docker_registry.port).start()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CrashBench]:
    b = CrashBench(tmp_path_factory.mktemp("crash-transfers"))
    yield b
    b.stop()


@pytest.fixture
def pulled(bench: CrashBench, proxy: CountingProxy, published: bytes) -> Iterator[str]:
    """The model's name through the proxy; the model is absent before the test and deleted
    (with its blobs) after it."""
    name = f"{proxy.host}/{REPO}:v1"
    assert not _has_model(bench, name)
    yield name
    proxy.rate = 0
    if _has_model(bench, name):
        r = httpx.request("DELETE", f"{bench.url}/api/delete", json={"model": name}, timeout=60)
        assert r.status_code == 200, r.text


def _has_model(bench: CrashBench, name: str) -> bool:
    r = httpx.post(f"{bench.url}/api/show", json={"model": name}, timeout=60)
    return r.status_code == 200


def _layers(manifest: bytes) -> list[dict[str, Any]]:
    doc = json.loads(manifest)
    return [*doc["layers"], doc["config"]]


def _model_layer(manifest: bytes) -> tuple[str, int]:
    layer = _layers(manifest)[0]
    return layer["digest"], layer["size"]


def _parts(models: Path, digest: str) -> list[dict[str, int]]:
    """The part records of a download in progress (none once it is finished)."""
    records = []
    for p in (models / "blobs").glob(f"sha256-{digest[7:]}-partial-*"):
        try:
            records.append(json.loads(p.read_bytes()))
        except ValueError:  # replaced while read; the next look sees it whole
            continue
    return records


def _recorded(models: Path, digest: str) -> int:
    return sum(r["Completed"] for r in _parts(models, digest))


def _pull_lines(bench: CrashBench, name: str) -> httpx.Response:
    return httpx.post(
        f"{bench.url}/api/pull", json={"model": name, "insecure": True}, timeout=HANG_GUARD
    )


def _pull_and_kill(bench: CrashBench, name: str, when: Callable[[dict[str, Any]], bool]) -> None:
    body = {"model": name, "insecure": True}
    stream_and_kill(bench, "/api/pull", body, lambda line: when(json.loads(line)))


def _repull(
    bench: CrashBench, proxy: CountingProxy, name: str, manifest: bytes
) -> tuple[StoreReport, int]:
    """Pull again at full speed; returns the checked store and the bytes the registry sent."""
    proxy.rate = 0
    before = proxy.served
    lines = [json.loads(x) for x in _pull_lines(bench, name).text.splitlines()]
    fetched = proxy.served - before
    assert lines[-1] == {"status": "success"}, lines[-3:]
    report = bench.restart()  # kill and restart: the store is checked again, blobs hashed
    host, _, rest = name.partition("/")
    assert f"{host}/{rest}" in report.models
    for layer in _layers(manifest):
        assert layer["digest"] in report.blobs  # present, hashed to its digest
    path = bench.models.joinpath("manifests", host, *REPO.split("/"), "v1")
    assert path.read_bytes() == manifest  # the registry's manifest, byte for byte
    assert not [p for p in (bench.models / "blobs").iterdir() if "partial" in p.name]
    return report, fetched


def _record(
    record: Record, bench: CrashBench, stage: str, outcome: str, case: str = "pull", **extra: Any
) -> None:
    row = {
        "case": case,
        "stage": stage,
        "outcome": outcome,
        "children_at_kill": len(bench.kills[-1].children),
        "children_leaked": 0,
        **extra,
    }
    record("crash", json.dumps(row))


# ---- pull ------------------------------------------------------------------------------------


def test_pull_killed_at_pulling_manifest(
    bench: CrashBench,
    proxy: CountingProxy,
    published: bytes,
    pulled: str,
    record_property: Record,
) -> None:
    proxy.rate = THROTTLE
    _pull_and_kill(bench, pulled, lambda p: p.get("status") == "pulling manifest")
    report = bench.restart()
    assert not any(m.startswith(proxy.host) for m in report.models)
    digest, size = _model_layer(published)
    recorded = _recorded(bench.models, digest)
    _, fetched = _repull(bench, proxy, pulled, published)
    assert size - recorded <= fetched <= size - recorded + SLACK
    _record(
        record_property,
        bench,
        "pulling manifest",
        "model absent; pull again completes",
        refetched=fetched,
        blob_size=size,
        temp_files=len(report.temp_files),
    )


def test_pull_killed_with_several_parts_in_flight(
    bench: CrashBench,
    proxy: CountingProxy,
    published: bytes,
    pulled: str,
    record_property: Record,
) -> None:
    digest, size = _model_layer(published)
    proxy.rate = THROTTLE

    def several_parts_in_flight(progress: dict[str, Any]) -> bool:
        if progress.get("digest") != digest:
            return False
        moving = [r for r in _parts(bench.models, digest) if 0 < r["Completed"] < r["Size"]]
        return len(moving) >= 2

    _pull_and_kill(bench, pulled, several_parts_in_flight)
    records = _parts(bench.models, digest)
    recorded = sum(r["Completed"] for r in records)
    assert len([r for r in records if r["Completed"] > 0]) >= 2
    assert 0 < recorded < size
    report = bench.restart()
    assert not any(m.startswith(proxy.host) for m in report.models)
    assert digest not in report.blobs
    assert f"blobs/sha256-{digest[7:]}-partial" in report.temp_files
    _, fetched = _repull(bench, proxy, pulled, published)
    assert size - recorded <= fetched <= size - recorded + SLACK, (fetched, size, recorded)
    assert fetched < size
    _record(
        record_property,
        bench,
        f"pulling {digest[7:19]}: {len(records)} parts, {recorded} of {size} bytes on disk",
        "model absent; pull again resumes",
        refetched=fetched,
        blob_size=size,
        temp_files=len(report.temp_files),
    )


def test_pull_killed_before_a_verified_blob_is_renamed(
    bench: CrashBench,
    proxy: CountingProxy,
    published: bytes,
    pulled: str,
    record_property: Record,
) -> None:
    digest, size = _model_layer(published)
    proxy.rate = 0
    bench.points.arm("os:replace", DOWNLOAD_TEMP)
    req = Request(lambda: _pull_lines(bench, pulled))
    bench.points.wait_reached()
    bench.kill()
    req.join()
    report = bench.restart()
    assert digest not in report.blobs
    assert _recorded(bench.models, digest) == size  # every byte recorded, not yet published
    _, fetched = _repull(bench, proxy, pulled, published)
    assert fetched <= SLACK  # nothing of the blob was fetched again
    _record(
        record_property,
        bench,
        "model blob downloaded and verified, not renamed",
        "model absent; pull again fetches no blob bytes",
        refetched=fetched,
        blob_size=size,
        temp_files=len(report.temp_files),
    )


def test_pull_killed_before_the_manifest_is_written(
    bench: CrashBench,
    proxy: CountingProxy,
    published: bytes,
    pulled: str,
    record_property: Record,
) -> None:
    digest, size = _model_layer(published)
    proxy.rate = 0
    bench.points.arm("os:replace", MANIFEST_TEMP)
    req = Request(lambda: _pull_lines(bench, pulled))
    bench.points.wait_reached()
    assert sha256_file(bench.models / "blobs" / f"sha256-{digest[7:]}") == digest
    bench.kill()
    req.join()
    report = bench.restart()
    # every blob was in place, but no manifest named them: start-up pruning removed them,
    # as Ollama's does, so this pull starts over
    assert not any(m.startswith(proxy.host) for m in report.models)
    assert digest not in report.blobs
    _, fetched = _repull(bench, proxy, pulled, published)
    assert size <= fetched <= size + SLACK
    _record(
        record_property,
        bench,
        "all blobs in, manifest in its temp file, not renamed",
        "model absent; blobs pruned at start-up; pull again fetches all",
        refetched=fetched,
        blob_size=size,
        temp_files=len(report.temp_files),
    )


def test_pull_killed_at_verifying(
    bench: CrashBench,
    proxy: CountingProxy,
    published: bytes,
    pulled: str,
    record_property: Record,
) -> None:
    _, size = _model_layer(published)
    proxy.rate = 0
    _pull_and_kill(bench, pulled, lambda p: p.get("status") == "verifying sha256 digest")
    report = bench.restart()
    complete = any(m.startswith(proxy.host) for m in report.models)
    _, fetched = _repull(bench, proxy, pulled, published)
    _record(
        record_property,
        bench,
        "verifying sha256 digest",
        ("model complete" if complete else "model absent") + "; pull again completes",
        refetched=fetched,
        blob_size=size,
        temp_files=len(report.temp_files),
    )


# ---- push ------------------------------------------------------------------------------------


def _push(bench: CrashBench, name: str) -> list[dict[str, Any]]:
    body = {"model": name, "insecure": True}
    r = httpx.post(f"{bench.url}/api/push", json=body, timeout=HANG_GUARD)
    return [json.loads(x) for x in r.text.splitlines()]


def _check_registry(registry: DockerRegistry, repo: str, manifest: bytes) -> None:
    """The registry holds the manifest byte for byte, and blobs that hash to their digests."""
    with httpx.Client(base_url=registry.url, timeout=60) as reg:
        accept = {"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
        assert reg.get(f"/v2/{repo}/manifests/v1", headers=accept).content == manifest
        for layer in _layers(manifest):
            got = hashlib.sha256(reg.get(f"/v2/{repo}/blobs/{layer['digest']}").content)
            assert "sha256:" + got.hexdigest() == layer["digest"]


@pytest.mark.parametrize("stage", ["mid-upload", "pushing manifest"])
def test_push_killed(
    bench: CrashBench,
    docker_registry: DockerRegistry,
    published: bytes,
    stage: str,
    record_property: Record,
) -> None:
    repo = f"library/pushed-{stage.split()[0]}"
    name = f"{docker_registry.host}/{repo}:v1"
    source = f"{docker_registry.host}/{REPO}:v1"
    if not _has_model(bench, source):
        assert _pull_lines(bench, source).text.splitlines()[-1] == '{"status":"success"}'
    r = httpx.post(f"{bench.url}/api/copy", json={"source": source, "destination": name})
    assert r.status_code == 200
    manifest = bench.models.joinpath("manifests", docker_registry.host, repo, "v1").read_bytes()
    before = check_store(bench.models)
    if stage == "mid-upload":  # 10 MiB of the model blob read into the upload's body
        bench.points.arm("corral.registry.upload:_Progress.add", "", 10)
        req = Request(lambda: _push(bench, name))
        bench.points.wait_reached()
        bench.kill()
        req.join()
    else:
        body = {"model": name, "insecure": True}
        stream_and_kill(bench, "/api/push", body, '"status":"pushing manifest"')
    after = bench.restart()
    assert after.models == before.models and after.blobs == before.blobs  # a push only reads
    assert _push(bench, name)[-1] == {"status": "success"}
    _check_registry(docker_registry, repo, manifest)
    _record(
        record_property,
        bench,
        "10 MiB of the model blob sent" if stage == "mid-upload" else stage,
        "store unchanged; push again completes, registry verified",
        case="push",
    )
