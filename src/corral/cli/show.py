"""``corral show``'s default output: the Model, Capabilities, Projector, Parameters, Metadata,
Tensors, System and License sections, laid out as Ollama's CLI prints them from an ``/api/show``
answer.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from rich.cells import cell_len

from corral.cli.format import go_g, go_value, human_number, table

__all__ = ["format_show_info"]

Rows = list[list[str]]

_ARRAY_WIDTH = 10


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _plain_float(value: float) -> str:
    """Go's ``strconv.FormatFloat(f, 'f', -1, 64)``: no exponent."""
    if value == int(value) and abs(value) < 1e21:
        return str(int(value))
    return format(Decimal(repr(value)), "f")


def _model_rows(resp: dict[str, Any]) -> Rows:
    details = resp.get("details") or {}
    info = resp.get("model_info")
    rows: Rows = []
    if isinstance(info, dict) and info:
        arch = info.get("general.architecture")
        arch = arch if isinstance(arch, str) else ""
        if arch:
            rows.append(["", "architecture", arch])
        params = str(details.get("parameter_size") or "")
        count = _number(info.get("general.parameter_count"))
        if not params and count is not None:
            params = human_number(int(count))
        if params:
            rows.append(["", "parameters", params])
        for key, label in (
            ("context_length", "context length"),
            ("embedding_length", "embedding length"),
        ):
            value = _number(info.get(f"{arch}.{key}"))
            if value is not None:
                rows.append(["", label, _plain_float(value)])
    else:
        rows.append(["", "architecture", str(details.get("family") or "")])
        rows.append(["", "parameters", str(details.get("parameter_size") or "")])
    rows.append(["", "quantization", str(details.get("quantization_level") or "")])
    if resp.get("requires"):
        rows.append(["", "requires", str(resp["requires"])])
    return rows


def _projector_rows(info: dict[str, Any]) -> Rows:
    """Ollama's Projector section: architecture, parameters, and the vision (or audio)
    encoder's embedding length and projection dimensions."""
    rows: Rows = []
    arch = info.get("general.architecture")
    arch = arch if isinstance(arch, str) else ""
    if arch:
        rows.append(["", "architecture", arch])
    count = _number(info.get("general.parameter_count"))
    if count is not None:
        rows.append(["", "parameters", human_number(int(count))])
    for key, label in (("embedding_length", "embedding length"), ("projection_dim", "dimensions")):
        for modality in ("vision", "audio"):
            value = _number(info.get(f"{arch}.{modality}.{key}"))
            if value is not None:
                rows.append(["", label, _plain_float(value)])
                break
    return rows


def _metadata_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return go_g(float(value))
    if isinstance(value, list):
        width, shown = 1, 0
        for i, item in enumerate(value):
            w = cell_len(go_value(item)) + (2 if i > 0 else 0)
            if width + w > _ARRAY_WIDTH and i > 0:
                break
            width += w
            shown += 1
        if shown < len(value):
            head = go_value(value[:shown])[:-1]
            return f"{head} ...+{len(value) - shown} more]"
        return go_value(value)
    if value is None:
        return "<nil>"
    return type(value).__name__


def _metadata_rows(info: dict[str, Any]) -> Rows:
    return [["", key, _metadata_value(info[key])] for key in sorted(info)]


def _head(text: str, n: int) -> Rows:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    rows = [["", line] for line in lines[:n]]
    if len(lines) > n:
        rows.append(["", "..."])
    return rows


def _parameter_rows(parameters: str) -> Rows:
    return [["", *line.split()] for line in parameters.splitlines() if line.strip()]


def format_show_info(resp: dict[str, Any], *, verbose: bool = False) -> str:
    """The text ``ollama show MODEL`` prints (with ``-v``: metadata and tensors too)."""
    out: list[str] = []

    def section(header: str, rows: Callable[[], Rows]) -> None:
        out.append(f"  {header}\n")
        out.append(table(rows()))
        out.append("\n")

    section("Model", lambda: _model_rows(resp))
    caps = resp.get("capabilities") or []
    if caps:
        section("Capabilities", lambda: [["", str(c)] for c in caps])
    projector = resp.get("projector_info")
    if isinstance(projector, dict):
        section("Projector", lambda: _projector_rows(projector))
    params = resp.get("parameters") or ""
    if params:
        section("Parameters", lambda: _parameter_rows(str(params)))
    info = resp.get("model_info")
    if verbose and isinstance(info, dict) and info:
        section("Metadata", lambda: _metadata_rows(info))
    tensors = resp.get("tensors") or []
    if verbose and tensors:
        section(
            "Tensors",
            lambda: [
                ["", str(t.get("name", "")), str(t.get("type", "")), go_value(t.get("shape", []))]
                for t in tensors
                if isinstance(t, dict)
            ],
        )
    if resp.get("system"):
        section("System", lambda: _head(str(resp["system"]), 2))
    if resp.get("license"):
        section("License", lambda: _head(str(resp["license"]), 2))
    return "".join(out)
