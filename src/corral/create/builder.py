"""Build a model's layers from a :class:`CreateSpec` and write its manifest.

The build runs in a worker thread and reports progress through ``emit`` with Ollama's status
texts. Blobs are written first (each atomically), the manifest last, so an interrupted create
never leaves a half-made model. The blobs the client uploaded for the create are kept after it
(a repeated create may name them again); unreferenced ones go at the next start-up prune.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corral.create.convert import convert_to_gguf
from corral.create.quantize import quantize_gguf
from corral.create.spec import QUANTIZABLE, CreateSpec, checkpoint_files, is_safetensors
from corral.errors import BadRequest, CorralError
from corral.gguf_info import GGUFFile, read_gguf
from corral.models import load_model
from corral.names import parse_digest
from corral.store import Layer, Manifest, Store
from corral.store.blobs import CHUNK, adopt_file
from corral.store.fsutil import temp_name
from corral.store.layout import PinSet
from corral.store.manifests import (
    CONFIG_MEDIA_TYPE,
    MEDIA_ADAPTER,
    MEDIA_LICENSE,
    MEDIA_MESSAGES,
    MEDIA_MODEL,
    MEDIA_PARAMS,
    MEDIA_PROJECTOR,
    MEDIA_SYSTEM,
    MEDIA_TEMPLATE,
)
from corral.template.catalogue import detect_family

log = logging.getLogger(__name__)

Emit = Callable[[dict[str, Any]], None]


@dataclass
class _Build:
    store: Store
    emit: Emit
    pins: PinSet
    layers: list[Layer]
    statuses: list[str]
    config: dict[str, Any]

    def add_bytes(self, data: bytes, media_type: str) -> Layer:
        with self.store.blob_writer() as w:
            w.write(data)
            digest, created = w.commit()
        self.pins.add(digest)
        self.statuses.append(f"{'creating new' if created else 'using existing'} layer {digest}")
        layer = Layer(media_type, digest, len(data))
        self.layers.append(layer)
        return layer

    def replace(self, media_type: str, data: bytes | None) -> None:
        self.layers = [layer for layer in self.layers if layer.media_type != media_type]
        if data is not None:
            self.add_bytes(data, media_type)

    def add_file(self, path: Path, media_type: str) -> Layer:
        total = path.stat().st_size
        short = "copying file"
        with self.store.blob_writer() as w, path.open("rb") as f:
            while block := f.read(CHUNK * 8):
                w.write(block)
                self.emit({"status": short, "total": total, "completed": w.size})
            digest, created = w.commit()
        self.pins.add(digest)
        self.statuses.append(f"{'creating new' if created else 'using existing'} layer {digest}")
        layer = Layer(media_type, digest, w.size)
        self.layers.append(layer)
        return layer

    def adopt(self, path: Path, media_type: str) -> Layer:
        digest, size, created = adopt_file(self.store.blobs_dir, path)
        self.pins.add(digest)
        self.statuses.append(f"{'creating new' if created else 'using existing'} layer {digest}")
        layer = Layer(media_type, digest, size)
        self.layers.append(layer)
        return layer

    def existing_blob(self, digest: str, media_type: str, from_: str = "") -> Layer:
        self.pins.add(digest)
        size = self.store.blob_path(digest).stat().st_size
        self.statuses.append(f"using existing layer {digest}")
        layer = Layer(media_type, digest, size, from_)
        self.layers.append(layer)
        return layer


def build_model(spec: CreateSpec, store: Store, emit: Emit, *, prune: bool = True) -> None:
    """Create (or replace) the model named by ``spec``; progress goes to ``emit``."""
    if spec.from_modelfile:
        emit({"status": "parsing modelfile"})
    try:
        replaced = store.read(spec.name).manifest.digests()
    except CorralError:
        replaced = set()
    uploaded = {parse_digest(d) for _, d in spec.from_files + spec.adapter_files}
    with store.pinned(uploaded) as pins:
        b = _Build(store, emit, pins, [], [], {})
        gguf, detect = _base_layers(spec, b)
        if gguf is not None:
            _apply_gguf(spec, b, gguf, detect)
        _apply_overrides(spec, b)
        config_layer = _config_layer(b, _config_blob(b.config))
        for status in b.statuses:
            emit({"status": status})
        emit({"status": "writing manifest"})
        store.write(spec.name, Manifest(config_layer, tuple(b.layers)))
        touched = pins.digests()
    if prune:
        # the replaced model's layers, and layers this build wrote and then replaced; never the
        # client's uploads, which another create may still name (as in Ollama, they stay until
        # the start-up prune)
        store.collect_garbage((replaced | touched) - uploaded)
    emit({"status": "success"})


def _base_layers(spec: CreateSpec, b: _Build) -> tuple[GGUFFile | None, bool]:
    """Add the layers the model starts from; returns the GGUF to describe (if its layer is new)
    and whether its template should be detected."""
    if spec.from_model is not None:
        base = load_model(b.store, spec.from_model)
        source = base.name.display_shortest()
        for layer in base.entry.manifest.layers:
            b.existing_blob(layer.digest, layer.media_type, source)
        before = len(b.layers)
        if _gguf_layers(spec, b):  # FROM a model, then FROM a projector for it
            raise BadRequest("a model to start FROM and a model file cannot be combined")
        added = b.layers[before:]
        if added:  # the new projector replaces the base model's
            kept = [x for x in b.layers[:before] if x.media_type != MEDIA_PROJECTOR]
            b.layers = kept + added
        b.config = {
            k: base.config[k]
            for k in ("model_format", "model_family", "model_families", "model_type", "file_type")
            if k in base.config
        }
        if spec.quantize and base.model_path is not None:
            base_layer = next(x for x in b.layers if x.media_type == MEDIA_MODEL)
            return _quantized(spec.quantize, b, base_layer), False
        return None, False
    model_layers = [_converted(spec, b)] if is_safetensors(spec) else _gguf_layers(spec, b)
    if not model_layers:
        raise BadRequest("neither 'from' or 'files' was specified")
    if len(model_layers) > 1:
        raise BadRequest("more than one model file was given (a projector must be a clip GGUF)")
    model_layer = model_layers[0]
    if spec.quantize:
        return _quantized(spec.quantize, b, model_layer), True
    return read_gguf(b.store.blob_path(model_layer.digest)), True


def _gguf_layers(spec: CreateSpec, b: _Build) -> list[Layer]:
    """A layer for every GGUF the create names (files on this machine, then uploads): a
    vision projector when its architecture is ``clip`` (by its metadata, whatever its name),
    else model weights; returns the model layers."""
    models: list[Layer] = []
    paths = [spec.from_path] if spec.from_path is not None else []
    for path in [*paths, *spec.more_paths]:
        b.emit({"status": "parsing GGUF"})
        models += [b.add_file(path, _media_of(path))]
    for _fname, digest in spec.from_files:
        b.emit({"status": "parsing GGUF"})
        models += [b.existing_blob(digest, _media_of(b.store.blob_path(digest)), "")]
    return [layer for layer in models if layer.media_type == MEDIA_MODEL]


def _media_of(path: Path) -> str:
    return MEDIA_PROJECTOR if read_gguf(path).architecture == "clip" else MEDIA_MODEL


def _converted(spec: CreateSpec, b: _Build) -> Layer:
    """Convert a safetensors checkpoint to a GGUF model layer."""
    b.emit({"status": "converting model"})
    files = checkpoint_files(spec, b.store)
    out = temp_name(b.store.blobs_dir, "sha256-convert-")
    with tempfile.TemporaryDirectory(prefix="corral-convert-") as tmp:
        src = Path(tmp)
        for name, path in files.items():
            link = src / name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path)
        try:
            convert_to_gguf(src, out)
        except BaseException:
            out.unlink(missing_ok=True)
            raise
    return b.adopt(out, MEDIA_MODEL)


def _quantized(want: str, b: _Build, layer: Layer) -> GGUFFile:
    """Replace the model layer with its quantized copy; returns the new GGUF."""
    src = b.store.blob_path(layer.digest)
    have = read_gguf(src).file_type_name
    if have not in QUANTIZABLE:
        raise BadRequest("quantization is only supported for F16, BF16 and F32 models")
    if have != want:
        status = f"quantizing {have} model to {want}"
        total = layer.size
        out = temp_name(b.store.blobs_dir, "sha256-quantize-")

        def progress(done: float) -> None:
            b.emit(
                {
                    "status": status,
                    "digest": "0" * 19,
                    "total": total,
                    "completed": int(total * done),
                }
            )

        try:
            quantize_gguf(src, out, want, progress)
        except BaseException:
            out.unlink(missing_ok=True)
            raise
        b.layers.remove(layer)
        b.statuses = [s for s in b.statuses if layer.digest not in s]
        layer = b.adopt(out, MEDIA_MODEL)
    return read_gguf(b.store.blob_path(layer.digest))


def _apply_gguf(spec: CreateSpec, b: _Build, gguf: GGUFFile, detect: bool) -> None:
    b.config = {**b.config, **gguf.config_fields()}
    if spec.template is None and detect:
        family = detect_family(gguf.chat_template)
        if family is not None:
            b.add_bytes(family.template.encode(), MEDIA_TEMPLATE)
            b.statuses[-1] = f"using autodetected template {family.name}"
            if family.parameters:
                b.add_bytes(_json_line(dict(family.parameters)), MEDIA_PARAMS)


def _apply_overrides(spec: CreateSpec, b: _Build) -> None:
    for path in spec.adapter_paths:
        b.add_file(path, MEDIA_ADAPTER)
    for _fname, digest in spec.adapter_files:
        b.existing_blob(digest, MEDIA_ADAPTER)
    if spec.template is not None:
        b.replace(MEDIA_TEMPLATE, spec.template.encode())
    if spec.system is not None:
        b.replace(MEDIA_SYSTEM, spec.system.encode())
    for text in spec.licenses:
        b.add_bytes(text.encode(), MEDIA_LICENSE)
    params = dict(spec.parameters)
    for layer in [x for x in b.layers if x.media_type == MEDIA_PARAMS]:
        try:
            existing = json.loads(b.store.blob_path(layer.digest).read_bytes())
        except (OSError, ValueError):
            existing = {}
        if isinstance(existing, dict):
            for k, v in existing.items():
                params.setdefault(k, v)
    if params:
        b.replace(MEDIA_PARAMS, _json_line(params))
    if spec.messages:
        b.replace(MEDIA_MESSAGES, _json_line(list(spec.messages)))


def _json_line(value: Any) -> bytes:
    return (json.dumps(value, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


def _config_blob(fields: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {
        "model_format": fields.get("model_format", "gguf"),
        "model_family": fields.get("model_family", ""),
        "model_families": fields.get("model_families") or None,
        "model_type": fields.get("model_type", ""),
        "file_type": fields.get("file_type", ""),
        "architecture": "amd64",
        "os": "linux",
    }
    return config


def _config_layer(b: _Build, config: dict[str, Any]) -> Layer:
    data = _json_line(config)
    with b.store.blob_writer() as w:
        w.write(data)
        digest, _created = w.commit()
    b.pins.add(digest)
    return Layer(CONFIG_MEDIA_TYPE, digest, len(data))
