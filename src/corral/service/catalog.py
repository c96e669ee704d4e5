"""Answers about models: ``/api/tags`` (stored), ``/api/show`` (one, described) and ``/api/ps``
(loaded). The store is read in a worker thread; views come from the digest-keyed caches of
:class:`~.models.ModelCatalog`, so a listing reads manifests but parses no GGUF it has seen."""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import UTC, datetime
from typing import Any

from corral.api.types import (
    ListModel,
    ListResponse,
    ModelDetails,
    ProcessModel,
    ProcessResponse,
)
from corral.create.modelfile import format_modelfile, format_parameters
from corral.errors import BadRequest, ModelNotFound
from corral.names import parse_name
from corral.scheduler import Loaded
from corral.service.context import Service
from corral.service.models import ModelView
from corral.timefmt import go_time

log = logging.getLogger(__name__)

FOREVER = "2318-08-21T00:00:00Z"  # what Ollama shows for a model kept loaded forever


def _list(svc: Service) -> ListResponse:
    out = []
    entries = sorted(svc.store.entries(), key=lambda e: e.modified_at, reverse=True)
    for entry in entries:
        try:
            view = svc.catalog.view_of(entry)
        except Exception as e:  # one damaged model must not break the list
            log.warning("skipping %s: %s", entry.name.display_shortest(), e)
            continue
        display = entry.name.display_shortest()
        out.append(
            ListModel(
                name=display,
                model=display,
                modified_at=go_time(entry.modified_at),
                size=sum(layer.size for layer in entry.manifest.layers),
                digest=entry.digest,
                details=ModelDetails(**view.stored.details()),
                capabilities=list(view.capabilities),
            )
        )
    return ListResponse(models=out)


async def tags(svc: Service) -> ListResponse:
    """The stored models, most recently modified first."""
    return await asyncio.to_thread(_list, svc)


def _describe(view: ModelView, verbose: bool) -> dict[str, Any]:
    model = view.stored
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
        projectors=[str(p) for p in model.projector_paths],
    )
    resp: dict[str, Any] = {
        "license": "\n".join(model.licenses),
        "modelfile": modelfile,
        "parameters": format_parameters(model.parameters),
        "template": model.template or "",
        "system": model.system or "",
        "details": model.details(),
        "model_info": view.gguf.model_info(verbose) if view.gguf is not None else {},
        "capabilities": list(view.capabilities),
        "modified_at": go_time(model.entry.modified_at),
    }
    if view.projector is not None:
        resp["projector_info"] = view.projector.model_info(verbose)
    if model.messages:
        resp["messages"] = [
            {"role": m.get("role", ""), "content": m.get("content", "")} for m in model.messages
        ]
    if not resp["license"]:
        del resp["license"]
    return resp


async def show(svc: Service, raw: str, *, verbose: bool = False) -> dict[str, Any]:
    """The ``/api/show`` answer for one model."""
    if not raw:
        raise BadRequest("model is required")
    name = parse_name(raw)
    try:
        return await asyncio.to_thread(lambda: _describe(svc.catalog.view(name), verbose))
    except ModelNotFound as e:
        raise ModelNotFound(raw) from e


def _expires(loaded: Loaded) -> str:
    expires = loaded.expires_at
    if not math.isfinite(expires) or expires > 1e11:
        return FOREVER
    return go_time(datetime.fromtimestamp(expires, UTC))


async def ps(svc: Service) -> ProcessResponse:
    """The loaded models, most recently used first (memory is read from ``/proc`` in a
    thread)."""
    running = svc.scheduler.running()
    sizes = await asyncio.to_thread(lambda: [x.memory_bytes() for x in running])
    return ProcessResponse(
        models=[
            ProcessModel(
                name=x.name,
                model=x.name,
                size=size,
                digest=x.digest,
                details=ModelDetails(**x.details),
                expires_at=_expires(x),
                size_vram=0,
                context_length=x.runner.n_ctx if x.runner is not None else x.spec.n_ctx,
            )
            for x, size in zip(running, sizes, strict=True)
        ]
    )
