"""The on-disk model store, in Ollama's layout (see :mod:`corral.store.layout`)."""

from corral.store.layout import Store
from corral.store.manifests import Layer, Manifest, ManifestEntry

__all__ = ["Layer", "Manifest", "ManifestEntry", "Store"]
