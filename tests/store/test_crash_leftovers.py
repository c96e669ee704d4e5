"""What a crash leaves in the store is never listed, and start-up pruning clears it; a model
whose tag merely ends in ``-partial`` is a model like any other."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from corral.names import parse_name
from corral.store import Layer, Manifest, Store
from corral.store.fsutil import temp_name
from corral.store.layout import PARTIAL_MAX_AGE
from corral.store.manifests import CONFIG_MEDIA_TYPE, MEDIA_SYSTEM
from tests.storecheck import check_store


def _model(store: Store, name: str, text: bytes) -> Manifest:
    with store.blob_writer() as w:
        w.write(b"{}")
        config, _ = w.commit()
    with store.blob_writer() as w:
        w.write(text)
        layer, _ = w.commit()
    m = Manifest(Layer(CONFIG_MEDIA_TYPE, config, 2), (Layer(MEDIA_SYSTEM, layer, len(text)),))
    store.write(parse_name(name), m)
    return m


def _age(path: Path, seconds: float) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "models")


def test_a_tag_ending_in_partial_is_listed_and_kept(store: Store) -> None:
    m = _model(store, "m:v1-partial", b"kept")
    assert [e.name.display_shortest() for e in store.entries()] == ["m:v1-partial"]
    store.prune_on_start()
    assert all(store.has_blob(d) for d in m.digests())
    assert check_store(store.root).models == ("registry.ollama.ai/library/m:v1-partial",)


def test_crash_leftovers_are_invisible_then_pruned(store: Store) -> None:
    kept = _model(store, "kept", b"kept")
    # what a kill -9 leaves: a blob write's temp file, a manifest write's temp file in a model
    # folder that has no manifest yet, and a half-downloaded blob with its part record
    blob_tmp = temp_name(store.blobs_dir, "sha256-")
    blob_tmp.write_bytes(b"half a blob")
    folder = store.manifests_dir / "registry.ollama.ai" / "library" / "during"
    folder.mkdir(parents=True)
    manifest_tmp = temp_name(folder, ".tmp-")
    manifest_tmp.write_bytes(b'{"schemaVersion": 2, "lay')
    download = store.blobs_dir / ("sha256-" + "ab" * 32 + "-partial")
    download.write_bytes(b"\0" * 16)
    record = Path(f"{download}-0")
    record.write_text('{"N": 0, "Offset": 0, "Size": 16, "Completed": 8}')

    assert [e.name.display_shortest() for e in store.entries()] == ["kept:latest"]
    report = check_store(store.root)
    assert len(report.temp_files) == 4 and report.models == (
        "registry.ollama.ai/library/kept:latest",
    )

    store.prune_on_start()  # young leftovers stay: a pull may resume them
    assert all(p.exists() for p in (blob_tmp, manifest_tmp, download, record))

    for path in (blob_tmp, manifest_tmp, download, record):
        _age(path, PARTIAL_MAX_AGE + 60)
    store.prune_on_start()
    assert not any(p.exists() for p in (blob_tmp, manifest_tmp, download, record))
    assert not folder.exists()  # the model folder the crashed write made is gone too
    assert folder.parent.is_dir()  # "kept" is still there
    assert all(store.has_blob(d) for d in kept.digests())
    assert check_store(store.root).temp_files == ()
