"""The on-disk state of a partial blob download, and the threads that follow it.

- :class:`Part` / :func:`plan_parts`: a blob split into ranged parts.
- :class:`PartialState`: ``blobs/sha256-<hex>-partial`` (the data) and one record per part,
  ``sha256-<hex>-partial-<N>`` holding ``{"N", "Offset", "Size", "Completed"}`` — Ollama's names
  and format, so either program resumes the other's download. Records are replaced atomically.
- :class:`Hasher`: sha256 of the contiguous downloaded prefix, read through a memory map while
  the parts arrive, so verification overlaps the transfer.
- :class:`Flusher`: syncs the data file as it grows, so the final sync before the blob enters
  the store is short.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from corral.registry.client import RegistryOptions

HASH_BLOCK: Final = 4 << 20
FLUSH_EVERY: Final = 32 << 20


@dataclass
class Part:
    """Bytes ``[offset, offset + size)`` of a blob, of which ``completed`` are on disk."""

    n: int
    offset: int
    size: int
    completed: int = 0

    @property
    def start(self) -> int:
        return self.offset + self.completed

    @property
    def stop(self) -> int:
        return self.offset + self.size

    @property
    def done(self) -> bool:
        return self.completed >= self.size

    def to_json(self) -> dict[str, int]:
        return {"N": self.n, "Offset": self.offset, "Size": self.size, "Completed": self.completed}


def plan_parts(total: int, options: RegistryOptions) -> list[Part]:
    """Split ``total`` bytes into parts of ``total/target_parts``, clamped to the size limits."""
    size = min(
        max(total // max(1, options.target_parts), options.min_part_size), options.max_part_size
    )
    size = max(size, 1)
    return [Part(i, off, min(size, total - off)) for i, off in enumerate(range(0, total, size))]


class PartialState:
    """The partial data file of one blob and its per-part records."""

    def __init__(self, blobs_dir: Path, digest: str) -> None:
        self.dir = blobs_dir
        self.base = "sha256-" + digest.removeprefix("sha256:")
        self.data_path = blobs_dir / f"{self.base}-partial"
        self._part_re = re.compile(re.escape(self.base) + r"-partial-(\d+)")

    def part_path(self, n: int) -> Path:
        return self.dir / f"{self.base}-partial-{n}"

    def part_files(self) -> list[Path]:
        with contextlib.suppress(OSError):
            return [p for p in self.dir.iterdir() if self._part_re.fullmatch(p.name)]
        return []

    def load(self, total: int) -> list[Part] | None:
        """The recorded parts, if they exactly tile ``[0, total)`` next to a data file."""
        files = self.part_files()
        if not files or not self.data_path.is_file():
            return None
        parts: list[Part] = []
        try:
            for path in files:
                doc = json.loads(path.read_bytes())
                part = Part(int(doc["N"]), int(doc["Offset"]), int(doc["Size"]))
                part.completed = min(max(0, int(doc["Completed"])), part.size)
                parts.append(part)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        parts.sort(key=lambda p: p.offset)
        offset = 0
        for i, part in enumerate(parts):
            if part.n != i or part.offset != offset or part.size <= 0:
                return None
            offset += part.size
        return parts if offset == total else None

    def save(self, part: Part) -> None:
        """Record a part's progress (write a temp file, then rename over the record)."""
        path = self.part_path(part.n)
        tmp = self.dir / f".{path.name}.tmp"
        tmp.write_bytes(json.dumps(part.to_json()).encode() + b"\n")
        os.replace(tmp, path)

    def discard(self) -> None:
        for path in [self.data_path, *self.part_files()]:
            path.unlink(missing_ok=True)


class Hasher(threading.Thread):
    """Hashes the contiguous downloaded prefix of the partial file as it grows.

    It reads through a shared memory map, so hashing costs no copy; hashlib releases the GIL,
    so it runs on another core than the part workers.
    """

    def __init__(self, fd: int, parts: list[Part], total: int) -> None:
        super().__init__(name="corral-hash", daemon=True)
        self.fd, self.parts, self.total = fd, parts, total
        self.sha = hashlib.sha256()
        self.pos = 0
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def frontier(self) -> int:
        for part in self.parts:
            if not part.done:
                return part.start
        return self.total

    def run(self) -> None:
        if self.total == 0:
            return
        try:
            with mmap.mmap(self.fd, self.total, prot=mmap.PROT_READ) as mapped:
                view = memoryview(mapped)
                try:
                    self._hash(view)
                finally:
                    view.release()
        except BaseException as e:
            self.error = e

    def _hash(self, view: memoryview) -> None:
        while self.pos < self.total and not self.stop.is_set():
            end = self.frontier()
            if end - self.pos < HASH_BLOCK and end < self.total:
                self.stop.wait(0.005)
                continue
            while self.pos < end and not self.stop.is_set():
                n = min(HASH_BLOCK, end - self.pos)
                self.sha.update(view[self.pos : self.pos + n])
                self.pos += n

    def digest(self) -> str:
        self.join()
        if self.error is not None:
            raise self.error
        return "sha256:" + self.sha.hexdigest()


class Flusher(threading.Thread):
    """Syncs the partial file every ``FLUSH_EVERY`` new bytes, and once more at ``finish``."""

    def __init__(self, fd: int, written: Callable[[], int]) -> None:
        super().__init__(name="corral-flush", daemon=True)
        self.fd, self.written = fd, written
        self.finish = threading.Event()
        self.error: OSError | None = None

    def run(self) -> None:
        flushed = self.written()
        while True:
            finished = self.finish.wait(0.05)
            now = self.written()
            try:
                if finished or now - flushed >= FLUSH_EVERY:
                    os.fdatasync(self.fd)
                    flushed = now
            except OSError as e:
                self.error = e
                return
            if finished:
                return
