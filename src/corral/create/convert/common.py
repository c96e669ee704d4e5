"""Pieces shared by the architecture converters: hyperparameter lookup and tensor mapping.

:class:`HParams` reads ``config.json`` values under any of their historical names (a missing
required one is a clear BadRequest). :func:`map_tensors` turns the checkpoint's tensor names into
GGUF names with the ``gguf`` package's per-architecture name map and builds a
:class:`~corral.create.convert.writer.TensorPlan` for each, applying an optional per-tensor
transform.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import gguf
import numpy as np
import numpy.typing as npt

from corral.errors import BadRequest

from .source import SafetensorsSource
from .writer import Metadata, TensorPlan, storage_type

# HF tensor name -> (GGUF name, transform or None); None as a whole drops the tensor.
Transform = Callable[[npt.NDArray[Any]], npt.NDArray[Any]]
_SUFFIXES: Final = (".weight", ".bias")


@dataclass(frozen=True)
class HParams:
    """``config.json`` with lookups by alternative key names."""

    values: Mapping[str, Any]

    def find(self, *keys: str, default: Any = None) -> Any:
        for key in keys:
            if self.values.get(key) is not None:
                return self.values[key]
        return default

    def require_int(self, *keys: str) -> int:
        value = self.find(*keys)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise BadRequest(f"config.json: missing or invalid {keys[0]}")
        return value

    def optional_int(self, *keys: str) -> int | None:
        value = self.find(*keys)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def optional_float(self, *keys: str) -> float | None:
        value = self.find(*keys)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        return None


def write_general(meta: Metadata, file_type: int) -> None:
    meta.string("general.type", "model")
    meta.u32("general.file_type", file_type)
    meta.u32("general.quantization_version", 2)


def tensor_name_map(arch: Any, n_blocks: int) -> Any:
    """The ``gguf`` package's HF -> GGUF tensor name map for an architecture."""
    return gguf.get_tensor_name_map(arch, n_blocks)


def map_tensors(
    source: SafetensorsSource,
    name_map: Any,
    out_type: str,
    rename: Callable[[str], str | None],
    transform: Callable[[str], Transform | None] | None = None,
) -> list[TensorPlan]:
    """Plans for every checkpoint tensor ``rename`` keeps (it returns None to drop one, or a
    normalised HF name to map). An unmappable tensor is a BadRequest naming it."""
    plans: list[TensorPlan] = []
    for entry in source:
        hf_name = rename(entry.name)
        if hf_name is None:
            continue
        gguf_name = name_map.get_name(key=hf_name, try_suffixes=_SUFFIXES)
        if gguf_name is None:
            raise BadRequest(f"cannot map tensor {entry.name!r} to a GGUF name")
        fn = transform(hf_name) if transform else None
        plans.append(
            TensorPlan(
                name=gguf_name,
                shape=entry.shape,
                ggml_type=storage_type(gguf_name, len(entry.shape), out_type),
                load=_loader(source, entry.name, fn),
            )
        )
    return plans


def _loader(source: SafetensorsSource, name: str, fn: Transform | None) -> Callable[[], Any]:
    def load() -> npt.NDArray[Any]:
        data = source.load_float(name)
        return fn(data) if fn else data

    return load


def sort_plans(plans: Iterable[TensorPlan]) -> list[TensorPlan]:
    """Non-block tensors first, then blocks in numeric order (as llama.cpp files list them)."""

    def key(plan: TensorPlan) -> tuple[int, int, str]:
        parts = plan.name.split(".")
        if parts[0] == "blk" and len(parts) > 1 and parts[1].isdecimal():
            return (1, int(parts[1]), plan.name)
        return (0 if plan.name.startswith("token") else 2, 0, plan.name)

    return sorted(plans, key=key)


def as_f32(data: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    return np.asarray(data, dtype=np.float32)
