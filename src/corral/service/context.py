"""What every service function works with: settings, the store, the model catalog and the
scheduler (built once per server; tests build their own around the fake engine)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from corral.config import Settings
from corral.metrics import note_model
from corral.scheduler import Scheduler
from corral.service.models import ModelCatalog
from corral.service.request import Job, prepare
from corral.store import Store


@dataclass(frozen=True)
class Service:
    settings: Settings
    store: Store
    catalog: ModelCatalog
    scheduler: Scheduler

    @classmethod
    def build(cls, settings: Settings, store: Store, scheduler: Scheduler) -> Service:
        return cls(settings, store, ModelCatalog(store), scheduler)

    async def job(self, model: str | None, options: Any, keep_alive: Any, **how: Any) -> Job:
        """Steps 1 and 2 of a request: resolve the model it names, then fix its job (see
        :func:`~corral.service.request.prepare` for ``how``)."""
        view = await self.catalog.resolve(model)
        note_model(view.name.display_shortest())
        return prepare(self.settings, view, model or "", options, keep_alive, **how)
