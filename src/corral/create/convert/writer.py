"""Write a GGUF file from metadata and a plan of tensors, one tensor in memory at a time.

A converter describes its output as a :class:`Metadata` (typed key/value pairs) and a list of
:class:`TensorPlan` (GGUF name, shape, storage type, and a loader that produces the data). The
writer declares every tensor up front with ``GGUFWriter.add_tensor_info``, writes the header, then
loads, casts and writes each tensor in turn, so memory stays bounded by the largest tensor. The
file is written beside the target and renamed into place only when complete.

:func:`storage_type` holds llama.cpp's rule for which tensors stay F32 whatever the output type.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import gguf
import numpy as np
import numpy.typing as npt

from corral.errors import BadRequest

GGUF_QUANTIZATION_VERSION: Final = 2
# output type -> (llama_ftype written as general.file_type, storage type of big matrices)
OUT_TYPES: Final[Mapping[str, tuple[int, int]]] = MappingProxyType(
    {
        "f32": (0, int(gguf.GGMLQuantizationType.F32)),
        "f16": (1, int(gguf.GGMLQuantizationType.F16)),
        "bf16": (32, int(gguf.GGMLQuantizationType.BF16)),
    }
)
F32: Final = int(gguf.GGMLQuantizationType.F32)
F16: Final = int(gguf.GGMLQuantizationType.F16)
BF16: Final = int(gguf.GGMLQuantizationType.BF16)
_BYTES_PER_ELEMENT: Final[Mapping[int, int]] = MappingProxyType({F32: 4, F16: 2, BF16: 2})
# Tensors llama.cpp keeps in F32 even in a quantized or F16 file (besides 1-D ones and norms).
_ALWAYS_F32: Final = ("position_embd.weight", "token_types.weight")
_ALWAYS_F32_SUFFIXES: Final = ("_norm.weight", ".ffn_gate_inp.weight")

Loader = Callable[[], npt.NDArray[Any]]
Progress = Callable[[str], None]


def parse_out_type(out_type: str) -> str:
    """The normalised output type name; an unknown one is a BadRequest."""
    key = out_type.lower()
    if key not in OUT_TYPES:
        supported = ", ".join(t.upper() for t in OUT_TYPES)
        raise BadRequest(
            f"unsupported conversion type {out_type} - supported types are {supported}"
        )
    return key


def storage_type(name: str, n_dims: int, out_type: str) -> int:
    """The ggml type a tensor is stored as: 1-D tensors, norms, biases, position and token-type
    embeddings stay F32; other weights take the output type."""
    if n_dims <= 1 or not name.endswith(".weight"):
        return F32
    if name in _ALWAYS_F32 or name.endswith(_ALWAYS_F32_SUFFIXES):
        return F32
    return OUT_TYPES[out_type][1]


@dataclass
class Metadata:
    """Typed GGUF key/value pairs in insertion order."""

    entries: dict[str, tuple[Any, gguf.GGUFValueType, gguf.GGUFValueType | None]] = field(
        default_factory=dict
    )

    def _put(
        self,
        key: str,
        value: Any,
        vtype: gguf.GGUFValueType,
        sub: gguf.GGUFValueType | None = None,
    ) -> None:
        self.entries[key] = (value, vtype, sub)

    def string(self, key: str, value: str) -> None:
        self._put(key, value, gguf.GGUFValueType.STRING)

    def u32(self, key: str, value: int) -> None:
        self._put(key, int(value), gguf.GGUFValueType.UINT32)

    def f32(self, key: str, value: float) -> None:
        self._put(key, float(value), gguf.GGUFValueType.FLOAT32)

    def flag(self, key: str, value: bool) -> None:
        self._put(key, bool(value), gguf.GGUFValueType.BOOL)

    def strings(self, key: str, values: Sequence[str]) -> None:
        self._put(key, list(values), gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.STRING)

    def i32s(self, key: str, values: Sequence[int]) -> None:
        self._put(key, [int(v) for v in values], gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.INT32)

    def get(self, key: str) -> Any:
        entry = self.entries.get(key)
        return entry[0] if entry else None


@dataclass(frozen=True)
class TensorPlan:
    """One output tensor: its GGUF name, numpy-order shape, ggml storage type and loader."""

    name: str
    shape: tuple[int, ...]
    ggml_type: int
    load: Loader

    @property
    def n_bytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * _BYTES_PER_ELEMENT[self.ggml_type]


def _encode(plan: TensorPlan, data: npt.NDArray[Any]) -> npt.NDArray[Any]:
    if tuple(data.shape) != plan.shape:
        raise BadRequest(f"tensor {plan.name} has shape {data.shape}, expected {plan.shape}")
    if plan.ggml_type == F32:
        return np.ascontiguousarray(data, dtype=np.float32)
    if plan.ggml_type == F16:
        return np.ascontiguousarray(data, dtype=np.float16)
    as_f32 = np.ascontiguousarray(data, dtype=np.float32)
    encoded: npt.NDArray[Any] = gguf.quants.quantize(as_f32, gguf.GGMLQuantizationType.BF16)
    return encoded


def write_gguf(
    out_path: Path,
    arch: str,
    meta: Metadata,
    tensors: Sequence[TensorPlan],
    progress: Progress | None = None,
) -> None:
    """Write ``out_path`` atomically: a temporary file beside it, renamed when complete."""
    names = [t.name for t in tensors]
    if len(set(names)) != len(names):
        raise BadRequest("duplicate tensor names in the converted model")
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.partial")
    writer = gguf.GGUFWriter(tmp, arch)
    try:
        for key, (value, vtype, sub) in meta.entries.items():
            writer.add_key_value(key, value, vtype, sub_type=sub)
        for plan in tensors:
            dtype = np.float16 if plan.ggml_type == F16 else np.float32
            writer.add_tensor_info(
                plan.name,
                plan.shape,
                np.dtype(dtype),
                plan.n_bytes,
                raw_dtype=gguf.GGMLQuantizationType(plan.ggml_type),
            )
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for i, plan in enumerate(tensors, 1):
            writer.write_tensor_data(_encode(plan, plan.load()))
            if progress is not None:
                progress(f"converting tensor {i}/{len(tensors)}: {plan.name}")
        writer.close()
        os.replace(tmp, out_path)
    except BaseException:
        writer.close()
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
