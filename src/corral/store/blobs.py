"""Content-addressed blobs: streamed to a temp file, fsynced, verified, then renamed into place."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import BinaryIO

from corral.errors import DigestMismatch
from corral.store.fsutil import fsync_dir, temp_name

CHUNK = 1 << 20


class BlobWriter:
    """Write one blob incrementally. ``commit`` verifies and publishes it; ``abort`` discards.

    Only ``commit`` makes the blob visible under ``blobs/sha256-<hex>``, so a crash at any point
    leaves nothing but a ``-partial`` temp file that start-up pruning removes.
    """

    def __init__(self, blobs_dir: Path) -> None:
        blobs_dir.mkdir(parents=True, exist_ok=True)
        self._dir = blobs_dir
        self.tmp_path = temp_name(blobs_dir, "sha256-")
        self._file: BinaryIO | None = self.tmp_path.open("wb")
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        assert self._file is not None, "blob writer already closed"
        self._file.write(data)
        self._hash.update(data)
        self.size += len(data)

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def commit(self, expected: str | None = None) -> tuple[str, bool]:
        """Verify against ``expected`` (if given) and publish; returns (digest, created)."""
        assert self._file is not None, "blob writer already closed"
        f, self._file = self._file, None
        try:
            f.flush()
            os.fsync(f.fileno())
        finally:
            f.close()
        digest = self.digest
        if expected is not None and digest != expected:
            self.tmp_path.unlink(missing_ok=True)
            raise DigestMismatch(f'digest mismatch, expected "{expected}", got "{digest}"')
        target = self._dir / ("sha256-" + digest.removeprefix("sha256:"))
        if target.exists():
            self.tmp_path.unlink(missing_ok=True)
            os.utime(target, follow_symlinks=False)  # a link's own time, never its target's
            return digest, False
        os.chmod(self.tmp_path, 0o644)
        os.replace(self.tmp_path, target)
        fsync_dir(self._dir)
        return digest, True

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self.tmp_path.unlink(missing_ok=True)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self.abort()


def write_bytes(blobs_dir: Path, data: bytes) -> tuple[str, bool]:
    with BlobWriter(blobs_dir) as w:
        w.write(data)
        return w.commit()


def copy_file(blobs_dir: Path, src: Path) -> tuple[str, int, bool]:
    """Copy a file from anywhere on disk into the store; returns (digest, size, created)."""
    with BlobWriter(blobs_dir) as w, src.open("rb") as f:
        while block := f.read(CHUNK):
            w.write(block)
        digest, created = w.commit()
        return digest, w.size, created


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return "sha256:" + h.hexdigest()


def adopt_file(blobs_dir: Path, path: Path) -> tuple[str, int, bool]:
    """Move a finished file (on the store's file system) into the store under its digest."""
    digest = sha256_file(path)
    size = path.stat().st_size
    target = blobs_dir / ("sha256-" + digest.removeprefix("sha256:"))
    if target.exists():
        path.unlink()
        return digest, size, False
    with path.open("rb") as f:
        os.fsync(f.fileno())
    os.chmod(path, 0o644)
    os.replace(path, target)
    fsync_dir(blobs_dir)
    return digest, size, True
