"""A stored model seen through its layers: the view that show, list and inference read.

``load_model`` reads a manifest and the small layers (config, template, system, parameters,
messages, licenses) and locates the large ones (model, adapters, projectors) on disk.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral.names import ModelName
from corral.store import ManifestEntry, Store
from corral.store.manifests import (
    MEDIA_ADAPTER,
    MEDIA_LICENSE,
    MEDIA_MESSAGES,
    MEDIA_MODEL,
    MEDIA_PARAMS,
    MEDIA_PROJECTOR,
    MEDIA_SYSTEM,
    MEDIA_TEMPLATE,
)


@dataclass(frozen=True)
class StoredModel:
    """Everything a stored model is made of, read from its manifest's layers."""

    name: ModelName
    entry: ManifestEntry
    config: dict[str, Any]
    model_path: Path | None
    template: str | None = None
    system: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    licenses: list[str] = field(default_factory=list)
    adapter_paths: list[Path] = field(default_factory=list)
    projector_paths: list[Path] = field(default_factory=list)
    parent_model: str = ""

    def details(self) -> dict[str, Any]:
        """Ollama's ``details`` object, from the config blob."""
        families = self.config.get("model_families")
        return {
            "parent_model": self.parent_model,
            "format": self.config.get("model_format") or "",
            "family": self.config.get("model_family") or "",
            "families": families if isinstance(families, list) and families else None,
            "parameter_size": self.config.get("model_type") or "",
            "quantization_level": self.config.get("file_type") or "",
        }


def _read_text(store: Store, digest: str) -> str:
    return store.blob_path(digest).read_text(encoding="utf-8", errors="replace")


def _read_json(store: Store, digest: str) -> Any:
    try:
        return json.loads(store.blob_path(digest).read_bytes())
    except (OSError, ValueError):
        return None


def load_model(store: Store, name: ModelName) -> StoredModel:
    """Read a model's manifest and small layers; raises ModelNotFound if there is none."""
    return model_from_entry(store, store.read(name))


def model_from_entry(store: Store, entry: ManifestEntry) -> StoredModel:
    """A model from a manifest already read: its small layers read, its large ones located."""
    m = entry.manifest
    config = _read_json(store, m.config.digest)
    template = system = None
    parameters: dict[str, Any] = {}
    messages: list[dict[str, Any]] = []
    licenses: list[str] = []
    model_path: Path | None = None
    adapters: list[Path] = []
    projectors: list[Path] = []
    parent = ""
    for layer in m.layers:
        media = layer.media_type
        if media == MEDIA_MODEL:
            model_path = store.blob_path(layer.digest)
            parent = layer.from_ or parent
        elif media == MEDIA_TEMPLATE:
            template = _read_text(store, layer.digest)
        elif media == MEDIA_SYSTEM:
            system = _read_text(store, layer.digest)
        elif media == MEDIA_PARAMS:
            value = _read_json(store, layer.digest)
            if isinstance(value, dict):
                parameters = value
        elif media == MEDIA_MESSAGES:
            value = _read_json(store, layer.digest)
            if isinstance(value, list):
                messages = [v for v in value if isinstance(v, dict)]
        elif media == MEDIA_LICENSE:
            licenses.append(_read_text(store, layer.digest))
        elif media == MEDIA_ADAPTER:
            adapters.append(store.blob_path(layer.digest))
        elif media == MEDIA_PROJECTOR:
            projectors.append(store.blob_path(layer.digest))
    return StoredModel(
        name=entry.name,
        entry=entry,
        config=config if isinstance(config, dict) else {},
        model_path=model_path,
        template=template,
        system=system,
        parameters=parameters,
        messages=messages,
        licenses=licenses,
        adapter_paths=adapters,
        projector_paths=projectors,
        parent_model=parent,
    )
