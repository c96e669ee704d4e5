"""What every service function works with: settings, the store, the model catalog and the
scheduler (built once per server; tests build their own around the fake engine)."""

from __future__ import annotations

from dataclasses import dataclass

from corral.config import Settings
from corral.scheduler import Scheduler
from corral.service.models import ModelCatalog
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
