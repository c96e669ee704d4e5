"""Answers about stored models: the /api/tags list and the /api/show description."""

from __future__ import annotations

import logging
from typing import Any

from corral.create.modelfile import format_modelfile, format_parameters
from corral.gguf_info import GGUFFile, read_gguf
from corral.models import StoredModel, load_model
from corral.names import ModelName
from corral.store import Store
from corral.template import Template
from corral.timefmt import go_time

log = logging.getLogger(__name__)


def list_models(store: Store) -> list[dict[str, Any]]:
    """The /api/tags entries, most recently modified first."""
    out = []
    for entry in sorted(store.entries(), key=lambda e: e.modified_at, reverse=True):
        try:
            model = load_model(store, entry.name)
        except Exception as e:  # one damaged model must not break the list
            log.warning("skipping %s: %s", entry.name.display_shortest(), e)
            continue
        display = entry.name.display_shortest()
        out.append(
            {
                "name": display,
                "model": display,
                "modified_at": go_time(entry.modified_at),
                "size": sum(layer.size for layer in entry.manifest.layers),
                "digest": entry.digest,
                "details": model.details(),
            }
        )
    return out


def _gguf(model: StoredModel) -> GGUFFile | None:
    if model.model_path is None:
        return None
    try:
        return read_gguf(model.model_path)
    except Exception as e:
        log.warning("cannot read GGUF of %s: %s", model.name.display_shortest(), e)
        return None


def capabilities(model: StoredModel, gguf: GGUFFile | None) -> list[str]:
    uses = None
    if model.template:
        try:
            uses = Template.parse(model.template).uses
        except Exception:
            uses = None
    if gguf is None:
        return ["completion"]
    return gguf.capabilities(model.template, uses)


def show_model(store: Store, name: ModelName, *, verbose: bool = False) -> dict[str, Any]:
    """The /api/show answer for one model."""
    model = load_model(store, name)
    gguf = _gguf(model)
    short = model.name.display_shortest()
    modelfile = format_modelfile(
        model_name=short,
        from_=str(model.model_path) if model.model_path else short,
        template=model.template or "{{ .Prompt }}",
        system=model.system,
        parameters=model.parameters,
        licenses=model.licenses,
        messages=[(str(m.get("role", "")), str(m.get("content", ""))) for m in model.messages],
        adapters=[str(p) for p in model.adapter_paths],
    )
    resp: dict[str, Any] = {
        "license": "\n".join(model.licenses),
        "modelfile": modelfile,
        "parameters": format_parameters(model.parameters),
        "template": model.template or "",
        "system": model.system or "",
        "details": model.details(),
        "model_info": gguf.model_info(verbose) if gguf is not None else {},
        "capabilities": capabilities(model, gguf),
        "modified_at": go_time(model.entry.modified_at),
    }
    if model.messages:
        resp["messages"] = [
            {"role": m.get("role", ""), "content": m.get("content", "")} for m in model.messages
        ]
    if not resp["license"]:
        del resp["license"]
    return resp
