"""``corral create``: turn a Modelfile into an ``/api/create`` request, as Ollama's client does.

The Modelfile is parsed here. A ``FROM`` or ``ADAPTER`` that names a file or directory on this
machine is hashed, uploaded as blobs (``POST /api/blobs/sha256:...``, skipped when the server has
the blob already) and sent as ``files``/``adapters``; any other ``FROM`` is sent as ``from``.
``TEMPLATE``, ``SYSTEM``, ``PARAMETER``, ``MESSAGE`` and ``LICENSE`` go in their own fields.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral.api.client import Client
from corral.cli.progress import ProgressView
from corral.create.modelfile import Modelfile, parse_modelfile

__all__ = ["CreatePlan", "CreateUsageError", "plan_create", "read_modelfile", "run_create"]

MODELFILE_NOT_FOUND = "specified Modelfile wasn't found"
NO_MODEL_FILES = "no Modelfile or safetensors files found"


class CreateUsageError(Exception):
    """A problem with the local files named by the command or the Modelfile."""


@dataclass
class CreatePlan:
    """What to upload and what to send: ``files``/``adapters`` map local paths to digests."""

    request: dict[str, Any]
    files: dict[Path, str] = field(default_factory=dict)
    adapters: dict[Path, str] = field(default_factory=dict)


def read_modelfile(file: str | None) -> tuple[str, Path]:
    """The Modelfile's text and the directory its relative paths start from.

    Without ``-f``, ``./Modelfile`` is used, or ``FROM .`` when there is none.
    """
    path = Path(file or "Modelfile").expanduser().absolute()
    if not path.is_file():
        if file:
            raise CreateUsageError(MODELFILE_NOT_FOUND)
        return "FROM .\n", Path.cwd()
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CreateUsageError(f"{path}: {e.strerror or e}") from e
    text = _decode(data)
    return text, path.parent


def _decode(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    return data.decode("utf-8", errors="replace")


def expand_path(arg: str, base_dir: Path) -> Path:
    """Ollama's ``expandPath``: absolute, ``~``/``~user`` or relative to the Modelfile."""
    if arg.startswith("~"):
        return Path(os.path.expanduser(arg)).absolute()
    p = Path(arg)
    return (p if p.is_absolute() else base_dir / p).absolute()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return "sha256:" + h.hexdigest()


def _glob(directory: Path, pattern: str) -> list[Path]:
    return sorted(p for p in directory.glob(pattern) if p.is_file())


def files_for_model(directory: Path) -> list[Path]:
    """The files of a model directory that Ollama's client uploads (weights first)."""
    weights: list[Path] = []
    for patterns in (
        ("model*.safetensors", "*/model*.safetensors"),
        ("consolidated*.safetensors",),
        ("pytorch_model*.bin",),
        ("consolidated*.pth",),
        ("*.gguf",),
        ("*.bin",),
    ):
        if _glob(directory, patterns[0]):
            weights = [p for pattern in patterns for p in _glob(directory, pattern)]
            break
    if not weights:
        raise CreateUsageError(NO_MODEL_FILES)
    extra = _glob(directory, "*.json") + _glob(directory, "*/*.json")
    extra += _glob(directory, "chat_template.jinja")
    extra += _glob(directory, "tokenizer.model") or _glob(directory, "*/tokenizer.model")
    return list(dict.fromkeys(weights + extra))


def file_digest_map(path: Path) -> dict[Path, str]:
    """Every file ``path`` stands for (itself, or a model directory's files) with its digest."""
    if path.is_dir():
        root = path.resolve()
        files = []
        for f in files_for_model(path):
            real = f.resolve()
            if not real.is_relative_to(root):
                raise CreateUsageError(f"insecure path: {os.path.relpath(real, root)}")
            files.append(real)
    else:
        files = [path.resolve()]
    return {f: _sha256(f) for f in files}


def request_file_names(files: dict[Path, str]) -> dict[Path, str]:
    """Names for the uploaded files: base names, or paths below their common directory."""
    names = {f: f.name for f in files}
    if len(files) >= 2:
        root = Path(os.path.commonpath([str(f.parent) for f in files]))
        for f in files:
            rel = f.relative_to(root)
            if rel.parts and ".." not in rel.parts:
                names[f] = rel.as_posix()
    return names


def _local(arg: str, base_dir: Path) -> Path | None:
    path = expand_path(arg, base_dir)
    if path.exists():
        return path
    if arg.startswith(("/", "./", "../", "~")):
        raise CreateUsageError(f"stat {path}: no such file or directory")
    return None


def plan_create(name: str, modelfile: Modelfile, base_dir: Path, quantize: str = "") -> CreatePlan:
    """The create request for ``modelfile`` (``files`` still keyed by local path)."""
    plan = CreatePlan(request={"model": name})
    req = plan.request
    for cmd in modelfile.commands:
        if cmd.name == "model":
            path = _local(cmd.args, base_dir)
            if path is None:
                req["from"] = cmd.args
            else:
                plan.files.update(file_digest_map(path))
        elif cmd.name == "adapter":
            path = expand_path(cmd.args, base_dir)
            if not path.exists():
                raise CreateUsageError(f"stat {path}: no such file or directory")
            plan.adapters = file_digest_map(path)
        elif cmd.name in ("template", "system"):
            req[cmd.name] = cmd.args
        elif cmd.name == "draft":
            raise CreateUsageError("DRAFT models are not supported by corral")
    licenses = modelfile.values("license")
    if licenses:
        req["license"] = licenses
    messages = [{"role": r, "content": c} for r, c in modelfile.messages()]
    if messages:
        req["messages"] = messages
    params = modelfile.parameters()
    if params:
        req["parameters"] = params
    if quantize:
        req["quantize"] = quantize
    return plan


def _upload(client: Client, files: dict[Path, str], view: ProgressView) -> dict[str, str]:
    """Upload each file as a blob with a progress bar; returns ``{request name: digest}``."""
    names = request_file_names(files)
    out: dict[str, str] = {}
    for path, digest in files.items():
        size = path.stat().st_size
        label = f"copying file {digest.removeprefix('sha256:')[:12]}"
        view.bar(digest, label, size, 0)
        if not client.blob_exists(digest):

            def sent(n: int, digest: str = digest, label: str = label, size: int = size) -> None:
                view.bar(digest, label, size, n)

            client.create_blob(digest, path, sent)
        view.bar(digest, label, size, size)
        out[names[path]] = digest
    return out


def run_create(
    client: Client, name: str, file: str | None, quantize: str, view: ProgressView
) -> None:
    """Parse the Modelfile, upload local files, and stream the server's create progress."""
    text, base_dir = read_modelfile(file)
    modelfile = parse_modelfile(text)
    view.status("gathering model components")
    plan = plan_create(name, modelfile, base_dir, quantize)
    req = plan.request
    if plan.files:
        req["files"] = _upload(client, plan.files, view)
    if plan.adapters:
        req["adapters"] = _upload(client, plan.adapters, view)

    def label(digest: str, status: str) -> str:
        return status or f"pulling {digest.removeprefix('sha256:')[:12]}..."

    for resp in client.create(req):
        view.handle(resp, label)
