"""Upload one blob from the store to a registry: HEAD, cross-repository mount, chunked upload.

A blob the registry already has is skipped. Otherwise an upload is started (asking to mount the
blob from the repository named in the layer's ``from`` when there is one), the file is sent in
``PATCH`` chunks with ``Content-Range``, and the upload is closed by a ``PUT ?digest=``. A
failure part-way (a dropped connection, a 5xx) starts the upload afresh after a back-off, up to
the retry limit, since a registry's half-received chunk cannot be trusted.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Any, Final

import httpx

from corral.errors import InvalidModelName
from corral.names import parse_name
from corral.registry.client import RegistryClient, RegistryError, backoff_delay, is_transient
from corral.registry.download import progress, short_digest
from corral.store import Layer, Store

log = logging.getLogger(__name__)

Emit = Callable[[dict[str, Any]], None]

READ_BLOCK: Final = 1 << 20
MIN_CHUNK: Final = 100 << 20
MAX_CHUNK: Final = 1000 << 20
CHUNKS: Final = 16
PROGRESS_INTERVAL: Final = 0.1


def chunk_size(total: int) -> int:
    """Ollama's upload part size: ``total/16`` clamped to 100 MB .. 1000 MB."""
    return min(max(total // CHUNKS, MIN_CHUNK), MAX_CHUNK)


def mount_source(layer: Layer) -> str:
    """``namespace/model`` of the repository the layer says it came from, or ``""``."""
    if not layer.from_:
        return ""
    try:
        name = parse_name(layer.from_)
    except InvalidModelName:
        return ""
    return f"{name.namespace}/{name.model}"


class _Progress:
    """Counts bytes sent and emits throttled progress objects."""

    def __init__(self, emit: Emit, layer: Layer) -> None:
        self.emit, self.layer = emit, layer
        self.status = f"pushing {short_digest(layer.digest)}"
        self.completed = 0
        self._last = 0.0

    def add(self, n: int) -> None:
        self.completed += n
        now = time.monotonic()
        if now - self._last >= PROGRESS_INTERVAL:
            self._last = now
            self.report()

    def report(self, completed: int | None = None) -> None:
        done = self.completed if completed is None else completed
        self.emit(progress(self.status, self.layer.digest, self.layer.size, done))


def push_blob(client: RegistryClient, store: Store, layer: Layer, emit: Emit) -> None:
    """Make sure the registry has ``layer``'s blob, uploading it if needed."""
    prog = _Progress(emit, layer)
    if client.blob_exists(layer.digest):
        prog.report(layer.size)
        return
    path = store.blob_path(layer.digest)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise RegistryError(f"blob {layer.digest} is missing from the store") from e
    attempt = 0
    while True:
        prog.completed = 0
        try:
            _upload(client, path, size, layer, prog)
            prog.report(size)
            return
        except (RegistryError, httpx.TransportError) as e:
            status = e.http_status if isinstance(e, RegistryError) else None
            if not is_transient(status) or attempt >= client.options.max_retries:
                if isinstance(e, RegistryError):
                    raise
                raise RegistryError(f"uploading {short_digest(layer.digest)}: {e}") from e
            delay = backoff_delay(attempt, client.options)
            log.info(
                "upload of %s failed: %s; retrying in %.1fs", short_digest(layer.digest), e, delay
            )
            attempt += 1
            prog.report(0)
            client.sleep(delay)


def _upload(
    client: RegistryClient, path: os.PathLike[str], size: int, layer: Layer, prog: _Progress
) -> None:
    location = client.start_upload(layer.digest, mount_source(layer))
    if location is None:  # mounted from another repository
        return
    step = chunk_size(size)
    with open(path, "rb") as f:
        fd = f.fileno()
        offset = 0
        while offset < size:
            n = min(step, size - offset)
            sent_before = prog.completed

            def body(
                start: int = offset, length: int = n, before: int = sent_before
            ) -> Iterator[bytes]:
                prog.completed = before  # a resent body (after an auth challenge) counts once
                yield from _read_range(fd, start, length, prog)

            location = client.upload_chunk(location, body, offset, n)
            offset += n
    client.finish_upload(location, layer.digest)


def _read_range(fd: int, start: int, length: int, prog: _Progress) -> Iterator[bytes]:
    pos, end = start, start + length
    while pos < end:
        block = os.pread(fd, min(READ_BLOCK, end - pos), pos)
        if not block:
            raise OSError("blob file is shorter than its manifest says")
        pos += len(block)
        prog.add(len(block))
        yield block
