"""The store: ``blobs/sha256-<hex>`` and ``manifests/<host>/<namespace>/<model>/<tag>``.

All paths are derived from validated names and digests, so nothing a client sends can point
outside the store root. Manifest writes are atomic; deleting a model removes its manifest first
and then collects the blobs no other manifest references.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from corral.errors import Forbidden, ModelNotFound
from corral.names import (
    ModelName,
    blob_filename,
    existing_spelling,
    find_case_insensitive,
    parse_digest,
    parse_manifest_relpath,
)
from corral.store.blobs import BlobWriter
from corral.store.fsutil import TMP_MARKER, atomic_write, fsync_dir
from corral.store.manifests import Manifest, ManifestEntry, manifest_digest

log = logging.getLogger(__name__)

PARTIAL_MAX_AGE = 3600.0


class Store:
    """One model store rooted at ``OLLAMA_MODELS``. Thread-safe for use from worker threads."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs_dir = root / "blobs"
        self.manifests_dir = root / "manifests"
        self.blobs_dir.mkdir(parents=True, exist_ok=True)
        self.manifests_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._pins: dict[str, int] = {}

    # ---- blobs -------------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        """The path of a blob; ``digest`` is validated (``sha256:<hex>`` or ``sha256-<hex>``)."""
        return self.blobs_dir / blob_filename(parse_digest(digest))

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def blob_writer(self) -> BlobWriter:
        return BlobWriter(self.blobs_dir)

    @contextlib.contextmanager
    def pinned(self, digests: Iterable[str] = ()) -> Iterator[PinSet]:
        """Keep blobs from garbage collection while a create or pull is still assembling them.

        More digests can be added to the yielded set as the work writes new blobs.
        """
        pins = PinSet(self)
        for d in digests:
            pins.add(d)
        try:
            yield pins
        finally:
            pins.release()

    def _pin(self, digest: str, delta: int) -> None:
        with self._lock:
            n = self._pins.get(digest, 0) + delta
            if n > 0:
                self._pins[digest] = n
            else:
                self._pins.pop(digest, None)

    # ---- manifests ---------------------------------------------------------------------------

    def manifest_path(self, name: ModelName) -> Path:
        """Where ``name``'s manifest is written; :class:`~corral.errors.Forbidden` if a symbolic
        link on the way leads out of ``manifests/`` (see :meth:`check_inside`)."""
        path = self.manifests_dir.joinpath(*name.manifest_relpath())
        self.check_inside(path)
        return path

    def check_inside(self, path: Path) -> None:
        """Refuse to create, replace or delete ``path`` if its directory, once symbolic links are
        followed, is not below ``manifests/`` (itself possibly a link). Links that the store's
        owner made are followed for reading, as Ollama follows them, but nothing outside the
        store is ever written or deleted through one."""
        directory = path.parent
        while not os.path.lexists(directory) and directory != self.manifests_dir:
            directory = directory.parent
        root = self.manifests_dir.resolve()
        real = directory.resolve()
        if real != root and root not in real.parents:
            rel = path.relative_to(self.manifests_dir).as_posix()
            raise Forbidden(f"refusing to change a file outside the model store: manifests/{rel}")

    def resolve(self, name: ModelName) -> ModelName:
        """``name`` respelled, part by part, as the store already spells it (Ollama's rule)."""
        return existing_spelling(self.root, name)

    def read(self, name: ModelName) -> ManifestEntry:
        path = find_case_insensitive(self.root, name)
        if path is None:
            raise ModelNotFound(name.display_shortest())
        try:
            data = path.read_bytes()
            mtime = path.stat().st_mtime
        except (FileNotFoundError, NotADirectoryError) as e:
            raise ModelNotFound(name.display_shortest()) from e
        real = parse_manifest_relpath(path.relative_to(self.manifests_dir).parts) or name
        return ManifestEntry(
            name=real,
            manifest=Manifest.from_bytes(data),
            digest=manifest_digest(data),
            modified_at=datetime.fromtimestamp(mtime, UTC),
        )

    def exists(self, name: ModelName) -> bool:
        return find_case_insensitive(self.root, name) is not None

    def write(self, name: ModelName, manifest: Manifest) -> ModelName:
        """Write a manifest atomically under the existing spelling of ``name``."""
        for digest in manifest.digests():
            if not self.has_blob(digest):
                raise FileNotFoundError(f"blob {digest} is missing")
        with self._lock:
            name = self.resolve(name)
            atomic_write(self.manifest_path(name), manifest.to_bytes())
        return name

    def entries(self) -> list[ManifestEntry]:
        """Every readable manifest in the store (unreadable ones are logged and skipped)."""
        out: list[ManifestEntry] = []
        for path in self._manifest_files():
            rel = path.relative_to(self.manifests_dir).parts
            name = parse_manifest_relpath(rel)
            if name is None:
                continue
            try:
                data = path.read_bytes()
                out.append(
                    ManifestEntry(
                        name=name,
                        manifest=Manifest.from_bytes(data),
                        digest=manifest_digest(data),
                        modified_at=datetime.fromtimestamp(path.stat().st_mtime, UTC),
                    )
                )
            except Exception as e:  # a damaged manifest must not hide the others
                log.warning("skipping unreadable manifest %s: %s", path, e)
        return out

    def _manifest_files(self) -> Iterator[Path]:
        for dirpath, _dirs, files in os.walk(self.manifests_dir):
            for f in files:
                # an atomic write's ".tmp-<hex>-partial"; no tag starts with a dot, while a tag
                # may well end with "-partial" (such a model must be listed and its blobs kept)
                if f.startswith("."):
                    continue
                yield Path(dirpath) / f

    def delete(self, name: ModelName, *, prune: bool = True) -> None:
        """Remove a model's manifest, then the blobs nothing else references."""
        with self._lock:
            path = find_case_insensitive(self.root, name)
            if path is None:
                raise ModelNotFound(name.display_shortest())
            try:
                old = Manifest.from_bytes(path.read_bytes()).digests()
            except Exception:
                old = set()
            self.check_inside(path)
            path.unlink()
            fsync_dir(path.parent)
            self._remove_empty_dirs(path.parent)
            if prune:
                self.collect_garbage(old)

    def _remove_empty_dirs(self, directory: Path) -> None:
        while directory != self.manifests_dir and self.manifests_dir in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent

    # ---- garbage collection ------------------------------------------------------------------

    def referenced_digests(self) -> set[str]:
        refs: set[str] = set()
        for entry in self.entries():
            refs |= entry.manifest.digests()
        return refs

    def collect_garbage(
        self, candidates: Iterable[str] | None = None, *, partial_max_age: float | None = None
    ) -> list[str]:
        """Delete unreferenced, unpinned blobs; returns the names of the files removed.

        With ``candidates`` (the layers of a manifest just deleted or replaced) only those are
        considered, so blobs a client uploaded for a create it has not sent yet survive, as in
        Ollama. With ``partial_max_age`` also temp files older than that many seconds.
        """
        removed: list[str] = []
        only = None if candidates is None else {parse_digest(d) for d in candidates}
        with self._lock:
            keep = self.referenced_digests() | set(self._pins)
            now = time.time()
            for path in self.blobs_dir.iterdir():
                fname = path.name
                if not path.is_file():
                    continue
                if fname.endswith(TMP_MARKER) or not _is_blob_name(fname):
                    if partial_max_age is None:
                        continue
                    with contextlib.suppress(OSError):
                        if now - path.stat().st_mtime > partial_max_age:
                            path.unlink()
                            removed.append(fname)
                    continue
                digest = "sha256:" + fname.removeprefix("sha256-")
                if digest not in keep and (only is None or digest in only):
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                        removed.append(fname)
        if removed:
            log.info("removed %d unused blob files", len(removed))
        return removed

    def prune_on_start(self) -> list[str]:
        """Start-up pruning: unreferenced blobs, temp files older than an hour (in ``blobs/``,
        and the ``.tmp-`` files of manifest writes a crash interrupted), and the manifest
        folders that are left empty."""
        removed = self._prune_manifest_temps(PARTIAL_MAX_AGE)
        return removed + self.collect_garbage(partial_max_age=PARTIAL_MAX_AGE)

    def _prune_manifest_temps(self, max_age: float) -> list[str]:
        removed: list[str] = []
        now = time.time()
        for dirpath, _dirs, files in os.walk(self.manifests_dir, topdown=False):
            directory = Path(dirpath)
            for f in files:
                if f.startswith("."):  # no tag starts with a dot
                    with contextlib.suppress(OSError):
                        if now - (directory / f).stat().st_mtime > max_age:
                            (directory / f).unlink()
                            removed.append(f)
            if directory != self.manifests_dir:
                with contextlib.suppress(OSError):
                    directory.rmdir()  # only an empty folder goes
        return removed


class PinSet:
    """Digests one piece of work holds against garbage collection."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._held: set[str] = set()

    def add(self, digest: str) -> None:
        key = parse_digest(digest)
        if key not in self._held:
            self._held.add(key)
            self._store._pin(key, 1)

    def digests(self) -> set[str]:
        return set(self._held)

    def release(self) -> None:
        for key in self._held:
            self._store._pin(key, -1)
        self._held.clear()


def _is_blob_name(fname: str) -> bool:
    hexpart = fname.removeprefix("sha256-")
    return (
        fname.startswith("sha256-")
        and len(hexpart) == 64
        and all(c in "0123456789abcdef" for c in hexpart)
    )
