"""``corral pull`` and ``corral push``: stream a transfer's progress as Ollama's CLI draws it."""

from __future__ import annotations

from corral.api.client import Client
from corral.cli.progress import ProgressView

__all__ = ["pull_with_progress", "push_with_progress"]


def _short(digest: str) -> str:
    return digest.removeprefix("sha256:").strip()[:12]


def pull_with_progress(client: Client, name: str, *, insecure: bool = False) -> None:
    """Pull ``name``: a bar per blob (``pulling <id>:``), a spinner per other status."""
    with ProgressView() as view:
        for resp in client.pull(name, insecure=insecure):
            view.handle(resp, lambda d, _s: f"pulling {_short(d)}:", skip_unstarted=True)


def push_with_progress(client: Client, name: str, *, insecure: bool = False) -> None:
    """Push ``name``: a bar per blob, a spinner per other status."""
    with ProgressView() as view:
        for resp in client.push(name, insecure=insecure):
            view.handle(resp, lambda d, s: s or f"pushing {_short(d)}...")
