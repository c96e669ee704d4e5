"""The tables of ``corral list`` and ``corral ps`` (NAME, ID, SIZE, ... as Ollama prints them)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from corral.cli.format import human_bytes, human_time, parse_go_time, table

__all__ = ["list_table", "processor_text", "ps_table"]


def _id(digest: Any) -> str:
    return str(digest or "").removeprefix("sha256:")[:12]


def list_table(models: list[dict[str, Any]], prefix: str = "") -> str:
    """NAME, ID (12 hex digits of the digest), SIZE, MODIFIED; ``prefix`` filters names."""
    rows = []
    for m in models:
        name = str(m.get("name") or m.get("model") or "")
        if prefix and not name.lower().startswith(prefix.lower()):
            continue
        size = "-" if m.get("remote_model") else human_bytes(int(m.get("size") or 0))
        modified = human_time(str(m.get("modified_at") or ""), "Never")
        rows.append([name, _id(m.get("digest")), size, modified])
    return table(rows, ["NAME", "ID", "SIZE", "MODIFIED"])


def processor_text(size: int, size_vram: int) -> str:
    """``100% CPU``, ``100% GPU``, ``48%/52% CPU/GPU`` or ``Unknown``."""
    if size_vram == 0:
        return "100% CPU"
    if size_vram == size:
        return "100% GPU"
    if size_vram > size or size == 0:
        return "Unknown"
    cpu = round((size - size_vram) / size * 100)
    return f"{cpu}%/{100 - cpu}% CPU/GPU"


def ps_table(models: list[dict[str, Any]], prefix: str = "") -> str:
    """NAME, ID, SIZE, PROCESSOR, CONTEXT, UNTIL of the loaded models."""
    rows = []
    now = datetime.now(UTC)
    for m in models:
        name = str(m.get("name") or m.get("model") or "")
        if prefix and not name.startswith(prefix):
            continue
        size = int(m.get("size") or 0)
        expires = parse_go_time(str(m.get("expires_at") or ""))
        if expires is not None and expires.year > 1 and expires < now:
            until = "Stopping..."
        else:
            until = human_time(expires, "Never", now=now)
        ctx = m.get("context_length")
        ctx_text = str(int(ctx)) if isinstance(ctx, int | float) and math.isfinite(ctx) else "0"
        rows.append(
            [
                name,
                _id(m.get("digest")),
                human_bytes(size),
                processor_text(size, int(m.get("size_vram") or 0)),
                ctx_text,
                until,
            ]
        )
    return table(rows, ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"])
