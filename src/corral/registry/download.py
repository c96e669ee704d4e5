"""Resumable, parallel, verified download of one blob into the store.

A blob is fetched in ranged parts (several for a large blob, a bounded number in flight) into
``blobs/sha256-<hex>-partial``; each part's progress is recorded next to it (see
:mod:`corral.registry.partial`: Ollama's names and format). The records are rewritten every few
MiB and whenever a part stops, so a pull interrupted by a vanished client, a killed server or a
network error resumes where it stopped. All of these names end in ``-partial`` or are no blob
names, which the store's start-up pruning treats as temporary files (after an hour).

While parts arrive, a hasher thread follows the contiguous downloaded prefix, so verification
overlaps the transfer. Only a file whose sha256 matches is fsynced and renamed into
``blobs/sha256-<hex>``; a mismatch deletes the partial state (after one fresh retry when resumed
bytes were involved) and fails with Ollama's message.

:class:`DownloadManager` keeps the running downloads of one server so that concurrent pulls of
the same blob share one download; it is cancelled when its last waiter goes away.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any, Final

from corral.registry.client import (
    RegistryClient,
    RegistryError,
    TransferCancelled,
    is_transient,
)
from corral.registry.partial import Flusher, Hasher, Part, PartialState, plan_parts
from corral.registry.rangeget import NetworkError, RangeFetcher
from corral.store import Store
from corral.store.fsutil import fsync_dir

log = logging.getLogger(__name__)

Emit = Callable[[dict[str, Any]], None]

SAVE_EVERY_BYTES: Final = 8 << 20
SAVE_EVERY_SECONDS: Final = 0.5
READ_BUFFER: Final = 512 << 10
PROGRESS_INTERVAL: Final = 0.1

MISMATCH_MESSAGE: Final = "digest mismatch, file must be downloaded again"


def short_digest(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]


def progress(status: str, digest: str = "", total: int = 0, completed: int = 0) -> dict[str, Any]:
    """A progress object as Ollama writes it: empty fields are left out."""
    out: dict[str, Any] = {"status": status}
    if digest:
        out["digest"] = digest
    if total:
        out["total"] = total
    if completed:
        out["completed"] = completed
    return out


class BlobDownload:
    """One blob being downloaded into the store; run :meth:`run` in its own thread."""

    def __init__(
        self,
        store: Store,
        digest: str,
        total: int,
        client: RegistryClient,
        on_finish: Callable[[BlobDownload], None] | None = None,
    ) -> None:
        self.store, self.digest, self.total = store, digest, total
        self.on_finish = on_finish
        self.client = client
        self.options = client.options
        self.cancel = client.cancel
        self.state = PartialState(store.blobs_dir, digest)
        self.parts: list[Part] = []
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.refs = 0

    @property
    def completed(self) -> int:
        return sum(p.completed for p in self.parts)

    def run(self) -> None:
        try:
            self._run()
        except BaseException as e:
            self.error = e
            if not isinstance(e, TransferCancelled):
                log.info("download of %s failed: %s", short_digest(self.digest), e)
        finally:
            self.client.close()
            if self.on_finish is not None:
                self.on_finish(self)
            self.done.set()

    def _run(self) -> None:
        for fresh_retry in (False, True):
            parts = None if fresh_retry else self.state.load(self.total)
            resumed = parts is not None and any(p.completed for p in parts)
            if parts is None:
                self.state.discard()
                parts = plan_parts(self.total, self.options)
                for part in parts:
                    self.state.save(part)
            self.parts = parts
            if resumed:
                log.info(
                    "resuming %s at %d of %d bytes",
                    short_digest(self.digest),
                    self.completed,
                    self.total,
                )
            got = self._download()
            if got == self.digest:
                self._publish()
                return
            self.state.discard()
            self.parts = []
            if not resumed:
                break
            log.warning("resumed download of %s failed verification; starting over", self.digest)
        raise RegistryError(f"{MISMATCH_MESSAGE}: want {self.digest}, got {got}")

    def _download(self) -> str:
        """Fetch every incomplete part and return the sha256 of the whole file.

        A flusher writes the file back to disk as it grows and syncs it once more at the end
        (while the hasher finishes), so a verified blob is durable before it enters the store.
        """
        fd = os.open(self.state.data_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.fstat(fd).st_size != self.total:
                os.ftruncate(fd, self.total)
            hasher = Hasher(fd, self.parts, self.total)
            flusher = Flusher(fd, lambda: self.completed)
            hasher.start()
            flusher.start()
            fetched = False
            try:
                self._fetch_parts(fd)
                fetched = True
            finally:
                flusher.finish.set()  # its last sync overlaps the hasher's tail
                if not fetched:
                    hasher.stop.set()
                hasher.join()
                flusher.join()
            got = hasher.digest()
            if flusher.error is not None:
                raise flusher.error
            return got
        finally:
            os.close(fd)

    def _fetch_parts(self, fd: int) -> None:
        todo = [p for p in self.parts if not p.done]
        if not todo:
            return
        # Where the bytes come from: the registry, or the location it redirects to, which
        # the parts use directly once one of them has been redirected there.
        url = [self.client.blob_url(self.digest)]
        workers = max(1, min(self.options.parallel, len(todo)))
        log.info(
            "downloading %s in %d part(s) of %d bytes, %d at a time",
            short_digest(self.digest),
            len(self.parts),
            self.parts[0].size,
            workers,
        )
        fetcher = RangeFetcher(self.client)
        try:
            with ThreadPoolExecutor(workers, thread_name_prefix="corral-part") as pool:
                futures = [pool.submit(self._fetch_part, fd, part, url, fetcher) for part in todo]
                wait(futures, return_when=FIRST_EXCEPTION)
                if any(f.done() and f.exception() is not None for f in futures):
                    self.cancel.set()  # one part failed for good: stop the others
        finally:
            fetcher.close()
        errors = [e for e in (f.exception() for f in futures) if e is not None]
        if errors:
            real = [e for e in errors if not isinstance(e, TransferCancelled)]
            raise (real or errors)[0]

    def _fetch_part(self, fd: int, part: Part, url: list[str], fetcher: RangeFetcher) -> None:
        """Download one part, retrying transient failures; a stall is a transient failure."""
        attempt = 0
        while not part.done:
            self.client.check_cancelled()
            before = part.completed
            try:
                self._stream_part(fd, part, url, fetcher)
                continue
            except NetworkError as e:
                reason = "stalled" if e.stalled else str(e)
            except RegistryError as e:
                if not is_transient(e.http_status):
                    blob_url = self.client.blob_url(self.digest)
                    if url[0] == blob_url or attempt > 0:
                        raise
                    url[0] = blob_url  # a pre-signed location may have expired: ask again
                reason = str(e)
            finally:
                self.state.save(part)
            if part.completed > before:
                attempt = 0
            if attempt >= self.options.max_retries:
                raise RegistryError(f"max retries exceeded: {reason}")
            delay = min(self.options.backoff * (2.0**attempt), self.options.max_backoff)
            log.info(
                "%s part %d attempt %d failed: %s; retrying in %.1fs",
                short_digest(self.digest),
                part.n,
                attempt,
                reason,
                delay,
            )
            attempt += 1
            self.client.sleep(delay)

    def _stream_part(self, fd: int, part: Part, url: list[str], fetcher: RangeFetcher) -> None:
        body = fetcher.open(url[0], part.start, part.stop)
        url[0] = body.url  # after a redirect, the other parts go there directly
        buf = memoryview(bytearray(READ_BUFFER))
        try:
            skip, pos = body.skip, part.start
            saved_at, saved_bytes = time.monotonic(), part.completed
            while not part.done:
                if self.cancel.is_set():
                    raise TransferCancelled()
                got = body.readinto(buf[: min(len(buf), skip + part.stop - pos)])
                if not got:
                    raise NetworkError("connection closed before the part was complete")
                view = buf[:got]
                if skip:
                    cut = min(skip, got)
                    view, skip = view[cut:], skip - cut
                while view:
                    n = os.pwrite(fd, view, pos)
                    view, pos = view[n:], pos + n
                    part.completed += n
                now = time.monotonic()
                if (
                    part.completed - saved_bytes >= SAVE_EVERY_BYTES
                    or now - saved_at >= SAVE_EVERY_SECONDS
                ):
                    self.state.save(part)
                    saved_at, saved_bytes = now, part.completed
        finally:
            body.close()

    def _publish(self) -> None:
        target = self.store.blob_path(self.digest)
        os.chmod(self.state.data_path, 0o644)
        os.replace(self.state.data_path, target)
        fsync_dir(self.store.blobs_dir)
        for path in self.state.part_files():
            path.unlink(missing_ok=True)


class DownloadManager:
    """The downloads running in this server, by digest, shared by concurrent pulls."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._active: dict[str, BlobDownload] = {}

    def fetch(
        self,
        client: RegistryClient,
        digest: str,
        size: int,
        emit: Emit,
        cancel: threading.Event,
    ) -> bool:
        """Bring one blob into the store, reporting progress; True if it was there already."""
        status = f"pulling {short_digest(digest)}"
        while True:
            with self._lock:
                if self.store.has_blob(digest):
                    path = self.store.blob_path(digest)
                    have = path.stat().st_size
                    emit(progress(status, digest, have, have))
                    return True
                dl = self._active.get(digest)
                if dl is not None and (dl.cancel.is_set() or dl.done.is_set()):
                    winding_down: BlobDownload | None = dl
                else:
                    winding_down = None
                    if dl is None:
                        dl = self._start(client, digest, size)
                    dl.refs += 1
            if winding_down is None:
                break
            # A cancelled download is still recording its parts: let it finish, then resume.
            while not winding_down.done.wait(0.05):
                if cancel.is_set():
                    raise TransferCancelled()
        try:
            emit(progress(status, digest, dl.total, dl.completed))
            while not dl.done.wait(PROGRESS_INTERVAL):
                if cancel.is_set():
                    raise TransferCancelled()
                emit(progress(status, digest, dl.total, dl.completed))
        finally:
            with self._lock:
                dl.refs -= 1
                if dl.refs == 0 and not dl.done.is_set():
                    dl.cancel.set()
        if dl.error is not None:
            raise dl.error
        emit(progress(status, digest, dl.total, dl.total))
        return False

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no download runs (cancelled ones have recorded their parts)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                running = list(self._active.values())
            if not running:
                return True
            left = deadline - time.monotonic()
            if left <= 0 or not running[0].done.wait(left):
                return False

    def _start(self, client: RegistryClient, digest: str, size: int) -> BlobDownload:
        clone = client.clone(threading.Event())
        dl = BlobDownload(self.store, digest, size, clone, on_finish=self._finished)
        self._active[digest] = dl
        name = f"corral-pull-{short_digest(digest)}"
        threading.Thread(target=dl.run, name=name, daemon=True).start()
        return dl

    def _finished(self, dl: BlobDownload) -> None:
        """Called by a download just before it reports done: it no longer takes waiters."""
        with self._lock:
            if self._active.get(dl.digest) is dl:
                del self._active[dl.digest]
