"""Small durable-file helpers: write-to-temp, fsync, rename, fsync the directory."""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

TMP_MARKER = "-partial"


def temp_name(directory: Path, prefix: str) -> Path:
    """A unique temp path in ``directory``; the ``-partial`` marker lets GC recognise leftovers."""
    return directory / f"{prefix}{uuid.uuid4().hex}{TMP_MARKER}"


def fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves either the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path.parent, ".tmp-")
    try:
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
