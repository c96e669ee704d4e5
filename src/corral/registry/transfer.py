"""Pull and push of whole models, with Ollama's progress stream.

Pull: ``pulling manifest`` -> one ``pulling <12 hex>`` stream per blob (``digest``, ``total``,
``completed``) -> ``verifying sha256 digest`` -> ``writing manifest`` -> ``removing unused
layers`` (when an older version of the model left blobs nothing uses any more, unless
``OLLAMA_NOPRUNE``) -> ``success``. Blobs come in through :mod:`corral.registry.download`, which
verifies each before it enters the store; the registry's manifest bytes are written last,
atomically, so the model's digest is the registry's and a failed pull leaves no manifest.

Push: ``retrieving manifest`` -> ``pushing <12 hex>`` per blob -> ``pushing manifest`` ->
``success``; the local manifest file is sent byte for byte.

Both run in a worker thread; ``cancel`` is set when the client has gone away.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from corral.errors import BadRequest, CorralError, ModelNotFound
from corral.names import ModelName, find_case_insensitive, parse_digest
from corral.registry.client import HttpPool, RegistryClient, RegistryError, RegistryOptions
from corral.registry.download import DownloadManager, progress
from corral.registry.upload import push_blob
from corral.store import Layer, Manifest, Store
from corral.store.fsutil import atomic_write

log = logging.getLogger(__name__)

Emit = Callable[[dict[str, Any]], None]


@dataclass
class Transfers:
    """What pulls and pushes share within one server: running downloads, HTTP connections."""

    store: Store
    downloads: DownloadManager = field(init=False)
    _pool: HttpPool | None = field(init=False, default=None)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.downloads = DownloadManager(self.store)

    def pool(self) -> HttpPool:
        """The shared HTTP pool, made on first use (in a worker thread: it loads CA files)."""
        with self._lock:
            if self._pool is None:
                self._pool = HttpPool()
            return self._pool


def _blobs_of(manifest: Manifest) -> list[Layer]:
    """The layers, then the config (Ollama's order), each digest once."""
    seen: set[str] = set()
    out: list[Layer] = []
    for layer in (*manifest.layers, manifest.config):
        if layer.digest and layer.digest not in seen:
            seen.add(layer.digest)
            out.append(layer)
    return out


def pull_model(
    transfers: Transfers,
    name: ModelName,
    options: RegistryOptions,
    emit: Emit,
    *,
    cancel: threading.Event | None = None,
    prune: bool = True,
) -> None:
    """Pull ``name`` from its registry into the store."""
    store = transfers.store
    cancel = cancel or threading.Event()
    old: set[str] = set()
    try:
        old = store.read(name).manifest.digests()
    except ModelNotFound:
        pass
    except CorralError as e:
        log.warning("pulling %s over an unreadable manifest: %s", name, e)

    with RegistryClient(name, options, cancel, transfers.pool()) as client:
        emit(progress("pulling manifest"))
        try:
            raw = client.get_manifest(name.tag)
            manifest = Manifest.from_bytes(raw)
            layers = _blobs_of(manifest)
            for layer in layers:
                parse_digest(layer.digest)
        except (RegistryError, BadRequest) as e:
            status = e.http_status if isinstance(e, RegistryError) else None
            raise RegistryError(f"pull model manifest: {e}", status) from e

        with store.pinned(layer.digest for layer in layers):
            for layer in layers:
                transfers.downloads.fetch(client, layer.digest, layer.size, emit, cancel)
            # Every blob was verified before it entered the store (or was there already).
            emit(progress("verifying sha256 digest"))
            emit(progress("writing manifest"))
            _write_manifest(store, name, raw, manifest)

    unused = old - manifest.digests()
    if prune and unused:
        emit(progress("removing unused layers"))
        _remove_unused(store, unused)
    emit(progress("success"))


def _write_manifest(store: Store, name: ModelName, raw: bytes, manifest: Manifest) -> None:
    for digest in {layer.digest for layer in _blobs_of(manifest)}:
        if not store.has_blob(digest):
            raise RegistryError(f"blob {digest} is missing after the download")
    target = store.manifest_path(store.resolve(name))
    atomic_write(target, raw)


def _remove_unused(store: Store, candidates: set[str]) -> None:
    """Delete the blobs among ``candidates`` that no manifest references any more."""
    try:
        store.collect_garbage(candidates)
    except (OSError, CorralError) as e:
        log.info("couldn't remove unused blobs: %s", e)


def read_local_manifest(store: Store, name: ModelName) -> tuple[bytes, Manifest]:
    """The raw bytes and the parsed manifest of a local model."""
    path = find_case_insensitive(store.root, name)
    if path is None:
        raise ModelNotFound(name.display_shortest())
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ModelNotFound(name.display_shortest()) from e
    return raw, Manifest.from_bytes(raw)


def push_model(
    transfers: Transfers,
    name: ModelName,
    options: RegistryOptions,
    emit: Emit,
    *,
    cancel: threading.Event | None = None,
) -> None:
    """Push the local model ``name`` to the registry its name points at."""
    store = transfers.store
    emit(progress("retrieving manifest"))
    with RegistryClient(name, options, cancel, transfers.pool()) as client:
        try:
            raw, manifest = read_local_manifest(store, name)
        except CorralError:
            emit(progress("couldn't retrieve manifest"))
            raise
        layers = _blobs_of(manifest)
        with store.pinned(layer.digest for layer in layers):
            for layer in layers:
                push_blob(client, store, layer, emit)
        emit(progress("pushing manifest"))
        client.put_manifest(name.tag, raw)
    emit(progress("success"))
