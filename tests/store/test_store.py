"""The store: atomic digest-verified blobs, atomic manifests, case-insensitive names, GC."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from corral.errors import BadRequest, DigestMismatch, ModelNotFound
from corral.names import parse_name
from corral.store import Layer, Manifest, Store
from corral.store.manifests import CONFIG_MEDIA_TYPE, MEDIA_MODEL, MEDIA_SYSTEM


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _put(store: Store, data: bytes) -> str:
    with store.blob_writer() as w:
        w.write(data)
        digest, _ = w.commit()
    return digest


def _model(store: Store, name: str, *payloads: bytes) -> Manifest:
    config = _put(store, b'{"model_format":"gguf"}')
    layers = []
    for i, data in enumerate(payloads):
        layers.append(Layer(MEDIA_MODEL if i == 0 else MEDIA_SYSTEM, _put(store, data), len(data)))
    m = Manifest(Layer(CONFIG_MEDIA_TYPE, config, 23), tuple(layers))
    store.write(parse_name(name), m)
    return m


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "models")


def test_blob_is_verified_and_renamed(store: Store) -> None:
    data = b"hello world"
    with store.blob_writer() as w:
        w.write(data)
        digest, created = w.commit(_digest(data))
    assert created and digest == _digest(data)
    path = store.blob_path(digest)
    assert path.name == "sha256-" + digest[7:]
    assert path.read_bytes() == data
    assert [p.name for p in store.blobs_dir.iterdir()] == [path.name]


def test_blob_digest_mismatch_leaves_nothing(store: Store) -> None:
    with store.blob_writer() as w:
        w.write(b"abc")
        with pytest.raises(DigestMismatch, match="digest mismatch"):
            w.commit(_digest(b"xyz"))
    assert list(store.blobs_dir.iterdir()) == []


def test_aborted_blob_leaves_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError), store.blob_writer() as w:
        w.write(b"partial")
        raise RuntimeError("client went away")
    assert list(store.blobs_dir.iterdir()) == []


def test_existing_blob_is_reused(store: Store) -> None:
    d1 = _put(store, b"same")
    with store.blob_writer() as w:
        w.write(b"same")
        d2, created = w.commit()
    assert d1 == d2 and not created


@pytest.mark.parametrize(
    "digest",
    ["sha256:../../etc/passwd", "../x", "sha256:" + "g" * 64, "md5:abc", "", "sha256-" + "0" * 63],
)
def test_bad_digests_rejected(store: Store, digest: str) -> None:
    with pytest.raises(BadRequest):
        store.blob_path(digest)


def test_manifest_round_trip_and_listing(store: Store) -> None:
    m = _model(store, "foo:bar", b"weights")
    entry = store.read(parse_name("foo:bar"))
    assert entry.manifest == m
    raw = store.manifest_path(parse_name("foo:bar")).read_bytes()
    assert entry.digest == hashlib.sha256(raw).hexdigest()
    assert b'"schemaVersion":2' in raw
    assert b"application/vnd.docker.distribution.manifest.v2+json" in raw
    names = [e.name.display_shortest() for e in store.entries()]
    assert names == ["foo:bar"]
    path = store.manifest_path(parse_name("foo:bar"))
    assert path == store.root / "manifests/registry.ollama.ai/library/foo/bar"


def test_case_insensitive_lookup_and_write(store: Store) -> None:
    _model(store, "Foo:Latest", b"w1")
    assert store.read(parse_name("foo:latest")).name.display_shortest() == "Foo:Latest"
    _model(store, "FOO:LATEST", b"w2")
    files = [p for p in store.manifests_dir.rglob("*") if p.is_file()]
    assert len(files) == 1


def test_manifest_needs_its_blobs(store: Store) -> None:
    missing = Layer(MEDIA_MODEL, _digest(b"never written"), 13)
    config = _put(store, b"{}")
    with pytest.raises(FileNotFoundError):
        store.write(parse_name("x"), Manifest(Layer(CONFIG_MEDIA_TYPE, config, 2), (missing,)))
    assert not store.exists(parse_name("x"))


def test_delete_collects_only_unshared_blobs(store: Store) -> None:
    _model(store, "a", b"shared weights", b"system a")
    _model(store, "b", b"shared weights", b"system b")
    store.delete(parse_name("a"))
    assert not store.has_blob(_digest(b"system a"))
    assert store.has_blob(_digest(b"shared weights"))
    assert store.has_blob(_digest(b"system b"))
    assert not (store.manifests_dir / "registry.ollama.ai/library/a").exists()
    store.delete(parse_name("b"))
    assert sorted(p.name for p in store.blobs_dir.iterdir()) == []
    with pytest.raises(ModelNotFound):
        store.delete(parse_name("b"))


def test_delete_without_prune_keeps_blobs(store: Store) -> None:
    _model(store, "a", b"w", b"s")
    store.delete(parse_name("a"), prune=False)
    assert store.has_blob(_digest(b"w"))


def test_pinned_blobs_survive_gc(store: Store) -> None:
    d = _put(store, b"in flight")
    with store.pinned([d]):
        store.collect_garbage()
        assert store.has_blob(d)
    store.collect_garbage()
    assert not store.has_blob(d)


def test_prune_on_start_removes_old_partials_only(store: Store) -> None:
    old = store.blobs_dir / "sha256-abc-partial"
    new = store.blobs_dir / "sha256-def-partial"
    old.write_bytes(b"x")
    new.write_bytes(b"y")
    past = time.time() - 7200
    os.utime(old, (past, past))
    orphan = _put(store, b"orphan")
    kept = _model(store, "keep", b"kept weights")
    store.prune_on_start()
    assert not old.exists() and new.exists()
    assert not store.has_blob(orphan)
    assert all(store.has_blob(d) for d in kept.digests())


def test_damaged_manifest_is_skipped(store: Store) -> None:
    _model(store, "good", b"w")
    bad = store.manifests_dir / "registry.ollama.ai/library/bad/latest"
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    assert [e.name.display_shortest() for e in store.entries()] == ["good:latest"]
    # GC must not delete blobs because of a damaged manifest elsewhere
    store.collect_garbage()
    assert store.has_blob(_digest(b"w"))


def test_temp_manifest_files_are_not_listed(store: Store) -> None:
    _model(store, "good", b"w")
    tmp = store.manifests_dir / "registry.ollama.ai/library/good/.tmp-123-partial"
    tmp.write_text("{}")
    assert [e.name.display_shortest() for e in store.entries()] == ["good:latest"]


def test_delete_keeps_blobs_uploaded_for_a_later_create(store: Store) -> None:
    uploaded = _put(store, b"uploaded, create not sent yet")
    _model(store, "a", b"w", b"s")
    store.delete(parse_name("a"))
    assert store.has_blob(uploaded)
    assert not store.has_blob(_digest(b"s"))
    store.prune_on_start()
    assert not store.has_blob(uploaded)
