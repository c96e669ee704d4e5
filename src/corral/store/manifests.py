"""Docker schema-2 manifests with Ollama's ``application/vnd.ollama.image.*`` layers."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from corral.errors import BadRequest
from corral.names import ModelName

MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_MEDIA_TYPE = "application/vnd.docker.container.image.v1+json"

MEDIA_MODEL = "application/vnd.ollama.image.model"
MEDIA_ADAPTER = "application/vnd.ollama.image.adapter"
MEDIA_PROJECTOR = "application/vnd.ollama.image.projector"
MEDIA_TEMPLATE = "application/vnd.ollama.image.template"
MEDIA_SYSTEM = "application/vnd.ollama.image.system"
MEDIA_PARAMS = "application/vnd.ollama.image.params"
MEDIA_MESSAGES = "application/vnd.ollama.image.messages"
MEDIA_LICENSE = "application/vnd.ollama.image.license"


@dataclass(frozen=True)
class Layer:
    """One blob a manifest refers to."""

    media_type: str
    digest: str
    size: int
    from_: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest}
        out["size"] = self.size
        if self.from_:
            out["from"] = self.from_
        return out

    @classmethod
    def from_json(cls, obj: Any) -> Layer:
        if not isinstance(obj, dict):
            raise BadRequest("invalid manifest layer")
        media, digest, size = obj.get("mediaType"), obj.get("digest"), obj.get("size")
        if not isinstance(media, str) or not isinstance(digest, str) or not isinstance(size, int):
            raise BadRequest("invalid manifest layer")
        from_ = obj.get("from")
        return cls(media, digest, size, from_ if isinstance(from_, str) else "")


@dataclass(frozen=True)
class Manifest:
    """A model: its config blob and its layers, in order."""

    config: Layer
    layers: tuple[Layer, ...]

    def to_bytes(self) -> bytes:
        doc = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": self.config.to_json(),
            "layers": [layer.to_json() for layer in self.layers],
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise BadRequest("invalid manifest") from e
        if not isinstance(doc, dict) or not isinstance(doc.get("layers"), list):
            raise BadRequest("invalid manifest")
        return cls(Layer.from_json(doc.get("config")), tuple(map(Layer.from_json, doc["layers"])))

    def digests(self) -> set[str]:
        return {self.config.digest, *(layer.digest for layer in self.layers)}

    def layer(self, media_type: str) -> Layer | None:
        for layer in self.layers:
            if layer.media_type == media_type:
                return layer
        return None

    def layers_of(self, media_type: str) -> list[Layer]:
        return [layer for layer in self.layers if layer.media_type == media_type]

    @property
    def total_size(self) -> int:
        return sum(layer.size for layer in self.layers) + self.config.size


@dataclass(frozen=True)
class ManifestEntry:
    """A manifest as found in the store, with what /api/tags needs about the file itself."""

    name: ModelName
    manifest: Manifest
    digest: str
    modified_at: datetime


def manifest_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
