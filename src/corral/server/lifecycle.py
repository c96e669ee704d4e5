"""Start-up work on the store: create its folders and prune leftovers (unless OLLAMA_NOPRUNE)."""

from __future__ import annotations

import logging

from corral.config import Settings
from corral.store import Store

log = logging.getLogger(__name__)


def prepare_store(settings: Settings) -> Store:
    store = Store(settings.models)
    if settings.noprune:
        log.info("OLLAMA_NOPRUNE set: not pruning the store")
    else:
        store.prune_on_start()
    return store
