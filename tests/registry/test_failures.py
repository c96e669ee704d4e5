"""Pull and push against the in-process fake registry: auth flows and failure paths.

The transfer functions run in-process with short timings (back-off, stall timeout) so that
retries and stalls take milliseconds. No test is ordered by sleeping or judged by a clock: where
a transfer has to be caught half-way, the fake's stall fault holds it (the stalled answers wait
on ``fake.release``, which the test sets) and the test waits for the pull's own progress events.
``HANG_GUARD`` only turns a hang into a failure.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from corral.errors import CorralError
from corral.names import parse_name
from corral.registry.client import RegistryOptions
from corral.registry.partial import PartialState, plan_parts
from corral.registry.transfer import Transfers, pull_model, push_model
from corral.store import Layer, Manifest, Store
from tests.registry.fakeregistry import FakeRegistry

MODEL = "application/vnd.ollama.image.model"
TEMPLATE = "application/vnd.ollama.image.template"
SIZE = 1 << 20

FAST = RegistryOptions(
    insecure=True,
    backoff=0.01,
    max_backoff=0.05,
    stall_timeout=0.5,
    connect_timeout=2,
    max_retries=3,
    min_part_size=64 << 10,
)
# Stalls are never detected: a stalled answer holds its part until the test releases it.
HOLD = replace(FAST, stall_timeout=120.0)
IN_FLIGHT = min(FAST.parallel, len(plan_parts(SIZE, FAST)))  # parts of the 1 MiB blob at once
STALL_AFTER = 10_000  # bytes each stalled answer sends before it stops
HANG_GUARD = 30.0  # seconds; never reached unless a transfer hangs


class Held(threading.Event):
    """``fake.release`` for stalls that last until the test ends (the fake caps them at 60 s)."""

    def wait(self, timeout: float | None = None) -> bool:
        return super().wait()


class Progress:
    """A pull's ``emit``: keeps its events and lets the test wait for one."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.changed = threading.Condition()

    def __call__(self, event: dict[str, Any]) -> None:
        with self.changed:
            self.events.append(event)
            self.changed.notify_all()

    def wait_for(self, what: str, pred: Callable[[dict[str, Any]], bool]) -> None:
        with self.changed:
            ok = self.changed.wait_for(lambda: any(pred(e) for e in self.events), HANG_GUARD)
        assert ok, f"{what}: not within {HANG_GUARD} s; events: {self.events[-5:]}"


def _in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any], list[BaseException]]:
    """Start ``fn`` in a thread; its result or its exception lands in the returned lists."""
    results: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(fn())
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, results, errors


def _joined(t: threading.Thread) -> None:
    t.join(HANG_GUARD)
    assert not t.is_alive(), f"the pull did not end within {HANG_GUARD} s"


@pytest.fixture
def fake() -> Iterator[FakeRegistry]:
    reg = FakeRegistry().start()
    yield reg
    reg.stop()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "models")


def _seed(fake: FakeRegistry, repo: str = "library/m", tag: str = "latest") -> tuple[str, str]:
    """A model with a 1 MiB weights blob; returns (its name, the weights digest)."""
    weights = os.urandom(SIZE)
    fake.add_model(repo, tag, [(MODEL, weights), (TEMPLATE, b"{{ .Prompt }}")])
    digest = next(d for d, b in fake.blobs.items() if b == weights)
    return f"{fake.host}/{repo}:{tag}", digest


def _pull(
    store: Store,
    name: str,
    options: RegistryOptions = FAST,
    transfers: Transfers | None = None,
    cancel: threading.Event | None = None,
) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    pull_model(
        transfers or Transfers(store), parse_name(name), options, events.append, cancel=cancel
    )
    return events


def _assert_clean_failure(store: Store, name: str, digest: str) -> None:
    """Nothing unverified in the store: no manifest and no blob for ``digest``."""
    assert not store.exists(parse_name(name))
    assert not store.has_blob(digest)


def test_pull_success_progress(fake: FakeRegistry, store: Store) -> None:
    name, digest = _seed(fake)
    events = _pull(store, name)
    statuses = [e["status"] for e in events]
    assert statuses[0] == "pulling manifest"
    assert statuses[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    mine = [e for e in events if e.get("digest") == digest]
    assert mine[0]["status"] == f"pulling {digest[7:19]}"
    assert mine[-1]["total"] == mine[-1]["completed"] == SIZE
    assert store.has_blob(digest)
    assert (
        store.manifest_path(parse_name(name)).read_bytes()
        == fake.manifests[("library/m", "latest")]
    )
    assert fake.served[digest] == SIZE
    assert not [p for p in store.blobs_dir.iterdir() if "partial" in p.name]


def test_bearer_challenge_and_token(store: Store) -> None:
    fake = FakeRegistry(auth="bearer").start()
    try:
        name, digest = _seed(fake)
        assert _pull(store, name)[-1] == {"status": "success"}
        assert fake.token_requests
        first = fake.token_requests[0]
        assert first["service"] == ["fake-registry"]
        assert first["scope"] == ["repository:library/m:pull,push"]
        assert store.has_blob(digest)
    finally:
        fake.stop()


def test_bearer_token_with_basic_credentials(store: Store) -> None:
    fake = FakeRegistry(auth="bearer+basic").start()
    try:
        name, _ = _seed(fake)
        with pytest.raises(CorralError) as err:
            _pull(store, name)
        assert str(err.value) == "pull model manifest: unauthorized: access denied"
        opts = replace(FAST, username="user", password="secret")
        assert _pull(store, name, opts)[-1]["status"] == "success"
    finally:
        fake.stop()


def test_basic_auth(store: Store) -> None:
    fake = FakeRegistry(auth="basic").start()
    try:
        name, digest = _seed(fake)
        with pytest.raises(CorralError) as err:
            _pull(store, name)
        assert str(err.value) == "pull model manifest: unauthorized: access denied"
        opts = replace(FAST, username="user", password="wrong")
        with pytest.raises(CorralError):
            _pull(store, name, opts)
        opts = replace(FAST, username="user", password="secret")
        assert _pull(store, name, opts)[-1]["status"] == "success"
        assert store.has_blob(digest)
    finally:
        fake.stop()


def test_manifest_not_found(fake: FakeRegistry, store: Store) -> None:
    with pytest.raises(CorralError) as err:
        _pull(store, f"{fake.host}/library/missing:latest")
    assert str(err.value) == "pull model manifest: file does not exist"
    assert not store.exists(parse_name(f"{fake.host}/library/missing:latest"))


def test_insecure_required_for_http(fake: FakeRegistry, store: Store) -> None:
    name, _ = _seed(fake)
    opts = replace(FAST, insecure=False)
    with pytest.raises(CorralError) as err:
        _pull(store, f"http://{name}", opts)
    assert str(err.value) == "insecure protocol http"


def test_corrupted_blob_fails_and_leaves_nothing(fake: FakeRegistry, store: Store) -> None:
    name, digest = _seed(fake)
    fake.faults.corrupt.add(digest)
    with pytest.raises(CorralError) as err:
        _pull(store, name)
    msg = str(err.value)
    assert msg.startswith(f"digest mismatch, file must be downloaded again: want {digest}, got ")
    _assert_clean_failure(store, name, digest)
    assert not [p for p in store.blobs_dir.iterdir() if "partial" in p.name]


def test_corrupted_resume_state_restarts_once(fake: FakeRegistry, store: Store) -> None:
    """Recorded progress over wrong bytes: the pull starts over instead of failing."""
    name, digest = _seed(fake)
    state = PartialState(store.blobs_dir, digest)
    state.data_path.write_bytes(b"\0" * SIZE)
    for n in range(16):
        state.part_path(n).write_text(
            json.dumps({"N": n, "Offset": n * (64 << 10), "Size": 64 << 10, "Completed": 64 << 10})
        )
    assert _pull(store, name)[-1]["status"] == "success"
    assert store.has_blob(digest)


def test_500s_then_success(fake: FakeRegistry, store: Store) -> None:
    name, digest = _seed(fake)
    fake.faults.manifest_500s = 2
    fake.faults.blob_500s[digest] = 3
    assert _pull(store, name)[-1]["status"] == "success"
    assert store.has_blob(digest)
    assert fake.faults.manifest_500s == 0 and fake.faults.blob_500s[digest] == 0


def test_500s_forever_fail_with_the_status(fake: FakeRegistry, store: Store) -> None:
    name, _ = _seed(fake)
    fake.faults.manifest_500s = 100
    with pytest.raises(CorralError) as err:
        _pull(store, name)
    assert str(err.value).startswith("pull model manifest: 500: ")
    assert "INTERNAL" in str(err.value)


def test_stalled_connection_is_retried_where_it_stopped(fake: FakeRegistry, store: Store) -> None:
    name, digest = _seed(fake)
    fake.release = Held()  # the stalled answers never end: only stall detection gets past them
    fake.faults.stall[digest] = 2
    fake.faults.stall_after = STALL_AFTER
    t, results, errors = _in_thread(lambda: _pull(store, name))
    _joined(t)
    assert not errors and results[0][-1]["status"] == "success"
    assert not fake.release.is_set()  # both stalled answers were still open when it finished
    assert fake.faults.stall[digest] == 0
    assert store.has_blob(digest)
    # The stalled parts continued from their last byte: nothing was fetched twice.
    assert fake.served[digest] == SIZE


def test_dropped_connection_resumes(fake: FakeRegistry, store: Store) -> None:
    name, digest = _seed(fake)
    fake.faults.drop[digest] = 5
    fake.faults.drop_after = 5000
    assert _pull(store, name)[-1]["status"] == "success"
    assert fake.served[digest] == SIZE


def test_redirected_blobs_get_no_credentials(store: Store) -> None:
    fake = FakeRegistry(auth="bearer").start()
    try:
        fake.faults.redirect_host = "localhost"  # another host name for the same server
        name, digest = _seed(fake)
        assert _pull(store, name)[-1]["status"] == "success"
        cdn = [h for m, p, h in fake.log if p.startswith("/cdn/")]
        assert cdn and all("Authorization" not in h for h in cdn)
        assert store.has_blob(digest)
    finally:
        fake.stop()


def test_server_that_ignores_range(fake: FakeRegistry, store: Store) -> None:
    name, digest = _seed(fake)
    fake.faults.ignore_range = True
    assert _pull(store, name)[-1]["status"] == "success"
    assert store.has_blob(digest)


def test_cancelled_pull_resumes_without_refetching(fake: FakeRegistry, store: Store) -> None:
    name, digest = _seed(fake)
    # Every part in flight gets STALL_AFTER bytes, then its answer holds: the pull is frozen
    # half-way, with an exactly known amount downloaded, until the test lets go.
    fake.faults.stall[digest] = IN_FLIGHT
    fake.faults.stall_after = STALL_AFTER
    held = IN_FLIGHT * STALL_AFTER
    cancel = threading.Event()
    transfers = Transfers(store)
    progress = Progress()
    t, _, errors = _in_thread(
        lambda: pull_model(transfers, parse_name(name), HOLD, progress, cancel=cancel)
    )
    progress.wait_for(
        "the held bytes arrived", lambda e: e.get("digest") == digest and e.get("completed") == held
    )
    cancel.set()
    _joined(t)  # the pull gave up its download, which is now cancelled too
    assert errors and "cancelled" in str(errors[0])
    fake.release.set()  # the held answers end; the cancelled download records its parts and stops
    assert transfers.downloads.wait_idle(HANG_GUARD)
    state = PartialState(store.blobs_dir, digest)
    parts = state.load(SIZE)
    assert parts is not None
    assert sum(p.completed for p in parts) == held == fake.served[digest]
    assert fake.faults.stall[digest] == 0
    assert _pull(store, name)[-1]["status"] == "success"
    assert fake.served[digest] == SIZE  # the resumed pull fetched only what was missing
    assert store.has_blob(digest)
    assert state.part_files() == [] and not state.data_path.exists()


def test_concurrent_pulls_share_one_download(fake: FakeRegistry, store: Store) -> None:
    name, digest = _seed(fake)
    # The download is held half-way until all three pulls wait on it.
    fake.faults.stall[digest] = IN_FLIGHT
    fake.faults.stall_after = STALL_AFTER
    transfers = Transfers(store)
    recorders = [Progress() for _ in range(3)]
    pulls = [
        _in_thread(partial(pull_model, transfers, parse_name(name), HOLD, p)) for p in recorders
    ]
    for p in recorders:
        p.wait_for("every pull waits on the blob", lambda e: e.get("digest") == digest)
    assert not store.has_blob(digest)
    fake.release.set()  # the held parts fail, are retried from where they stopped, and finish
    for t, _, errors in pulls:
        _joined(t)
        assert not errors
    assert all(p.events[-1]["status"] == "success" for p in recorders)
    assert fake.served[digest] == SIZE


def test_pull_replaces_old_version_and_prunes(fake: FakeRegistry, store: Store) -> None:
    name, old_digest = _seed(fake)
    _pull(store, name)
    new_name, new_digest = _seed(fake)
    assert new_name == name
    statuses = [e["status"] for e in _pull(store, name)]
    assert statuses[-2:] == ["removing unused layers", "success"]
    assert store.has_blob(new_digest) and not store.has_blob(old_digest)


def _local_model(store: Store, name: str) -> tuple[Manifest, bytes]:
    weights = os.urandom(300_000)
    layers = []
    for media, data in ((MODEL, weights), (TEMPLATE, b"{{ .Prompt }}")):
        with store.blob_writer() as w:
            w.write(data)
            digest, _ = w.commit()
        layers.append(Layer(media, digest, len(data)))
    with store.blob_writer() as w:
        w.write(b"{}")
        cdigest, _ = w.commit()
    manifest = Manifest(
        Layer("application/vnd.docker.container.image.v1+json", cdigest, 2), tuple(layers)
    )
    store.write(parse_name(name), manifest)
    return manifest, weights


def test_push_with_auth_and_retries(store: Store) -> None:
    fake = FakeRegistry(auth="bearer").start()
    try:
        name = f"{fake.host}/library/pushed:v1"
        manifest, _ = _local_model(store, name)
        fake.faults.patch_500s = 2
        events: list[dict[str, Any]] = []
        push_model(Transfers(store), parse_name(name), FAST, events.append)
        statuses = [e["status"] for e in events]
        assert statuses[0] == "retrieving manifest"
        assert statuses[-2:] == ["pushing manifest", "success"]
        for digest in manifest.digests():
            assert fake.blobs.get(digest) == store.blob_path(digest).read_bytes()
        assert (
            fake.manifests[("library/pushed", "v1")]
            == store.manifest_path(parse_name(name)).read_bytes()
        )
        assert fake.faults.patch_500s == 0
        # A second push: every blob is there already (HEAD), nothing is uploaded.
        uploads = sum(1 for m, _p, _h in fake.log if m == "PATCH")
        push_model(Transfers(store), parse_name(name), FAST, events.append)
        assert sum(1 for m, _p, _h in fake.log if m == "PATCH") == uploads
    finally:
        fake.stop()


def test_push_mounts_from_another_repository(fake: FakeRegistry, store: Store) -> None:
    name = f"{fake.host}/library/target:v1"
    manifest, weights = _local_model(store, name)
    weights_layer = next(layer for layer in manifest.layers if layer.media_type == MODEL)
    fake.add_blob(weights)  # the registry has it (in another repository)
    fake.faults.head_miss.add(weights_layer.digest)
    source = f"{fake.host}/library/source:v1"
    layers = tuple(
        replace(la, from_=source) if la == weights_layer else la for la in manifest.layers
    )
    store.write(parse_name(name), Manifest(manifest.config, layers))
    push_model(Transfers(store), parse_name(name), FAST, lambda e: None)
    posts = [parse_qs(urlsplit(p).query) for m, p, _h in fake.log if m == "POST"]
    assert {"mount": [weights_layer.digest], "from": ["library/source"]} in posts
    # Only the small config and template blobs were sent; the weights were mounted.
    sent = [int(h.get("Content-Length", "0")) for m, _p, h in fake.log if m == "PATCH"]
    assert sent and max(sent) < 1000
    assert fake.manifests[("library/target", "v1")]


def test_empty_layer_and_429s(fake: FakeRegistry, store: Store) -> None:
    fake.add_model("library/e", "latest", [(MODEL, os.urandom(1000)), (TEMPLATE, b"")])
    empty = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    fake.faults.blob_429s = 2
    events = _pull(store, f"{fake.host}/library/e:latest")
    assert events[-1]["status"] == "success"
    assert store.has_blob(empty) and store.blob_path(empty).stat().st_size == 0


def test_missing_blob_fails_without_a_manifest(fake: FakeRegistry, store: Store) -> None:
    name, digest = _seed(fake)
    del fake.blobs[digest]
    with pytest.raises(CorralError) as err:
        _pull(store, name)
    assert str(err.value) == "file does not exist"
    _assert_clean_failure(store, name, digest)


def test_resumes_a_download_ollama_started(fake: FakeRegistry, store: Store) -> None:
    """Partial files in Ollama's layout (its part sizes, its JSON) are picked up as they are."""
    name, digest = _seed(fake)
    data = fake.blobs[digest]
    state = PartialState(store.blobs_dir, digest)
    have = [300_000, 10_000]  # bytes Ollama had written of its two parts
    layout = [(0, 600_000), (600_000, SIZE - 600_000)]
    partial = bytearray(SIZE)
    for (off, _size), done in zip(layout, have, strict=True):
        partial[off : off + done] = data[off : off + done]
    state.data_path.write_bytes(bytes(partial))
    for n, ((off, size), done) in enumerate(zip(layout, have, strict=True)):
        doc = {"N": n, "Offset": off, "Size": size, "Completed": done}
        state.part_path(n).write_text(json.dumps(doc) + "\n")
    assert _pull(store, name)[-1]["status"] == "success"
    assert fake.served[digest] == SIZE - sum(have)
    assert store.blob_path(digest).read_bytes() == data
