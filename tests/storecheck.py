"""A store-consistency checker for crash tests, independent of corral's own store code.

:func:`check_store` reads an ``OLLAMA_MODELS`` directory as Ollama lays it out and fails (with
every problem found) unless:

- every manifest file parses as a schema-2 manifest whose config and layers name
  ``sha256:<64 hex>`` digests with integer sizes;
- every blob a manifest names exists, has the size the manifest says, and hashes to its digest;
- every complete blob (``blobs/sha256-<64 hex>``), referenced or not, hashes to its name;
- every other file in ``blobs/`` is a temporary one by corral's (and Ollama's) naming: a name
  containing ``-partial`` (blob writes, conversions, quantizations, downloads and their part
  records) or a part record's ``.<name>.tmp``; in ``manifests/`` only a name starting with ``.``
  (an atomic write's ``.tmp-<hex>-partial``) is temporary, since no tag starts with a dot.

:func:`check_api` then asks a running server: ``/api/tags`` lists exactly the manifests on disk,
``/api/show`` answers for each, ``HEAD /api/blobs`` finds every blob, and does not find the
blob of a download's partial data.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
BLOB_NAME = re.compile(r"sha256-[0-9a-f]{64}")
DOWNLOAD_DATA = re.compile(r"blobs/sha256-([0-9a-f]{64})-partial")
PART_RECORD_TMP = re.compile(r"\.sha256-[0-9a-f]{64}-partial-\d+\.tmp")


@dataclass(frozen=True)
class StoreReport:
    """What a consistent store holds."""

    models: tuple[str, ...]  # "host/namespace/model:tag" of every manifest
    blobs: tuple[str, ...]  # "sha256:<hex>" of every complete blob, each verified
    unreferenced: tuple[str, ...]  # complete blobs no manifest names (start-up prune removes)
    temp_files: tuple[str, ...]  # leftovers "blobs/..." or "manifests/..." (never listed)


def is_temp_name(name: str) -> bool:
    return "-partial" in name or PART_RECORD_TMP.fullmatch(name) is not None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return "sha256:" + h.hexdigest()


def _layers(doc: Any) -> list[tuple[str, int]]:
    """(digest, size) of the config and each layer; raises ValueError when malformed."""
    if not isinstance(doc, dict) or doc.get("schemaVersion") != 2:
        raise ValueError("not a schema-2 manifest")
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise ValueError("no layers")
    out = []
    for item in [doc.get("config"), *layers]:
        if not isinstance(item, dict):
            raise ValueError("a layer is not an object")
        digest, size = item.get("digest"), item.get("size")
        if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
            raise ValueError(f"bad digest {digest!r}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError(f"bad size {size!r}")
        out.append((digest, size))
    return out


def check_store(models: Path) -> StoreReport:
    """Check the store at ``models`` as described above; raises AssertionError listing every
    problem."""
    problems: list[str] = []
    temps: list[str] = []
    names: list[str] = []
    wanted: dict[str, set[int]] = {}  # digest -> sizes manifests give it
    manifests_dir, blobs_dir = models / "manifests", models / "blobs"

    for path in sorted(p for p in manifests_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(manifests_dir)
        if path.name.startswith("."):  # a tag never starts with "."; ".tmp-<hex>-partial" does
            temps.append(f"manifests/{rel.as_posix()}")
            continue
        if len(rel.parts) != 4:
            problems.append(f"manifest at an unexpected depth: {rel}")
            continue
        try:
            layers = _layers(json.loads(path.read_bytes()))
        except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            problems.append(f"manifest {rel} does not parse: {e}")
            continue
        host, namespace, model, tag = rel.parts
        names.append(f"{host}/{namespace}/{model}:{tag}")
        for digest, size in layers:
            wanted.setdefault(digest, set()).add(size)

    blobs: list[str] = []
    for path in sorted(p for p in blobs_dir.iterdir()) if blobs_dir.is_dir() else []:
        if not path.is_file():
            problems.append(f"not a file in blobs/: {path.name}")
        elif BLOB_NAME.fullmatch(path.name):
            digest = "sha256:" + path.name[7:]
            got = sha256_file(path)
            if got != digest:
                problems.append(f"blob {path.name} holds {got}")
            blobs.append(digest)
        elif is_temp_name(path.name):
            temps.append(f"blobs/{path.name}")
        else:
            problems.append(f"unexpected file in blobs/: {path.name}")

    present = set(blobs)
    for digest, sizes in sorted(wanted.items()):
        if digest not in present:
            problems.append(f"blob {digest} named by a manifest is missing")
            continue
        size = (blobs_dir / ("sha256-" + digest[7:])).stat().st_size
        if sizes != {size}:
            problems.append(f"blob {digest} is {size} bytes, manifests say {sorted(sizes)}")
    if problems:
        raise AssertionError("inconsistent store:\n  " + "\n  ".join(problems))
    return StoreReport(
        models=tuple(names),
        blobs=tuple(blobs),
        unreferenced=tuple(d for d in blobs if d not in wanted),
        temp_files=tuple(temps),
    )


def _short(full: str) -> str:
    """``host/namespace/model:tag`` as /api/tags spells it (Ollama's default host and
    namespace left out)."""
    host, namespace, rest = full.split("/", 2)
    if host == "registry.ollama.ai":
        return rest if namespace == "library" else f"{namespace}/{rest}"
    return full


def check_api(url: str, report: StoreReport) -> None:
    """The server at ``url`` lists exactly the store's models, and can show each of them."""
    with httpx.Client(base_url=url, timeout=60) as client:
        r = client.get("/api/tags")
        assert r.status_code == 200, r.text
        listed = sorted(m["model"] for m in r.json()["models"])
        assert listed == sorted(_short(n) for n in report.models), (listed, report.models)
        for name in listed:
            r = client.post("/api/show", json={"model": name})
            assert r.status_code == 200, (name, r.text)
        for digest in report.blobs:
            r = client.head(f"/api/blobs/{digest}")
            assert r.status_code == 200, digest
        for temp in report.temp_files:  # a download's partial data is no blob yet
            m = DOWNLOAD_DATA.fullmatch(temp)
            if m is not None and "sha256:" + m.group(1) not in report.blobs:
                r = client.head(f"/api/blobs/sha256:{m.group(1)}")
                assert r.status_code == 404, temp
