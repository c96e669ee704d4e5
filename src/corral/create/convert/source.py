"""Read a Hugging Face checkpoint directory: ``config.json`` and the safetensors weights.

:func:`load_config` parses ``config.json`` (the converters read their hyperparameters from it);
:class:`SafetensorsSource` indexes every tensor of every ``*.safetensors`` file of the directory
(one file or a sharded set) by name, dtype and shape without reading data, and loads one tensor at
a time as a numpy array. Reading goes through the ``safetensors`` numpy API; BF16 (which numpy
cannot represent) is widened to F32 from the raw bytes. Every malformed input is a
:class:`~corral.errors.BadRequest`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from safetensors import safe_open

from corral.errors import BadRequest

CONFIG_NAME: Final = "config.json"
UNKNOWN_TENSOR_FORMAT: Final = "unknown tensor format"  # Ollama's text for "no weights found"

# safetensors dtype -> numpy dtype the numpy API returns directly.
_NATIVE: Final[Mapping[str, str]] = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
    "I8": "i1", "U8": "u1", "BOOL": "?",
}  # fmt: skip
_FLOAT_DTYPES: Final = frozenset({"F64", "F32", "F16", "BF16"})


def read_json(path: Path, name: str | None = None) -> Any:
    """A JSON file's value; an unreadable or invalid file is a BadRequest naming it (``name``:
    the file's path in the checkpoint, by default its base name)."""
    label = name or path.name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadRequest(f"open {label}: no such file or directory") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"parse {label}: {exc}") from None


def load_config(src_dir: Path) -> dict[str, Any]:
    """``config.json`` of a checkpoint directory as a dict (Ollama's messages on failure)."""
    config = read_json(src_dir / CONFIG_NAME)
    if not isinstance(config, dict):
        raise BadRequest(f"parse {CONFIG_NAME}: expected a JSON object")
    text_config = config.get("text_config")
    if isinstance(text_config, dict) and "architectures" in config:
        # multimodal wrappers keep the language model's hyperparameters one level down
        config = {**config, **text_config}
    return config


@dataclass(frozen=True)
class TensorEntry:
    """Where one named tensor lives: its file, safetensors dtype and shape."""

    name: str
    file: Path
    dtype: str
    shape: tuple[int, ...]

    @property
    def n_elements(self) -> int:
        return math.prod(self.shape)


class SafetensorsSource:
    """The tensors of every ``*.safetensors`` file in a directory, loaded one at a time."""

    def __init__(self, src_dir: Path) -> None:
        files = sorted(p for p in src_dir.glob("*.safetensors") if p.is_file())
        if not files:
            raise BadRequest(UNKNOWN_TENSOR_FORMAT)
        entries: dict[str, TensorEntry] = {}
        for file in files:
            for entry in _index_file(file):
                if entry.name in entries:
                    raise BadRequest(
                        f"duplicate tensor name '{entry.name}' was found for this model"
                    )
                entries[entry.name] = entry
        self._entries = entries

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[TensorEntry]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        return list(self._entries)

    def entry(self, name: str) -> TensorEntry:
        try:
            return self._entries[name]
        except KeyError:
            raise BadRequest(f"tensor {name!r} is missing from the safetensors files") from None

    def load(self, name: str) -> npt.NDArray[Any]:
        """The tensor as a numpy array: F32 and F16 as stored, BF16 widened to F32."""
        entry = self.entry(name)
        try:
            if entry.dtype == "BF16":
                return _load_bf16(entry)
            if entry.dtype not in _NATIVE:
                raise BadRequest(
                    f"tensor {name!r} has unsupported dtype {entry.dtype} for conversion"
                )
            with safe_open(str(entry.file), framework="np") as f:
                array: npt.NDArray[Any] = f.get_tensor(name)
        except BadRequest:
            raise
        except Exception as exc:  # safetensors raises its own error type for corrupt data
            raise BadRequest(f"read tensor {name!r} from {entry.file.name}: {exc}") from None
        if tuple(array.shape) != entry.shape:
            raise BadRequest(f"tensor {name!r} has shape {array.shape}, expected {entry.shape}")
        return array

    def load_float(self, name: str) -> npt.NDArray[np.floating[Any]]:
        """The tensor as F32 or F16 (F64 and BF16 become F32); non-float dtypes are refused."""
        entry = self.entry(name)
        if entry.dtype not in _FLOAT_DTYPES:
            raise BadRequest(f"tensor {name!r} has non-float dtype {entry.dtype}")
        array = self.load(name)
        if array.dtype == np.float16:
            return array
        return np.asarray(array, dtype=np.float32)


def _index_file(file: Path) -> list[TensorEntry]:
    try:
        with safe_open(str(file), framework="np") as f:
            out = []
            for name in f.keys():  # noqa: SIM118 - safe_open is not a mapping
                piece = f.get_slice(name)
                out.append(
                    TensorEntry(
                        name=name,
                        file=file,
                        dtype=str(piece.get_dtype()),
                        shape=tuple(int(n) for n in piece.get_shape()),
                    )
                )
            return out
    except Exception as exc:  # corrupt header, truncated file, not safetensors at all
        raise BadRequest(f"invalid safetensors file {file.name}: {exc}") from None


def _header(file: Path) -> tuple[int, dict[str, Any]]:
    """The safetensors JSON header and the offset where tensor data starts."""
    with file.open("rb") as f:
        size = int.from_bytes(f.read(8), "little")
        if size <= 0 or size > 100 << 20:
            raise BadRequest(f"invalid safetensors file {file.name}: bad header size")
        header = json.loads(f.read(size))
    if not isinstance(header, dict):
        raise BadRequest(f"invalid safetensors file {file.name}: header is not an object")
    return 8 + size, header


def _load_bf16(entry: TensorEntry) -> npt.NDArray[np.float32]:
    start, header = _header(entry.file)
    info = header.get(entry.name)
    if not isinstance(info, dict):
        raise BadRequest(f"tensor {entry.name!r} is missing from {entry.file.name}")
    begin, end = (int(x) for x in info["data_offsets"])
    if end - begin != entry.n_elements * 2:
        raise BadRequest(f"tensor {entry.name!r} has a data size that does not match its shape")
    raw = np.fromfile(entry.file, dtype="<u2", count=entry.n_elements, offset=start + begin)
    if raw.size != entry.n_elements:
        raise BadRequest(f"tensor {entry.name!r} is truncated in {entry.file.name}")
    widened = raw.astype(np.uint32) << 16
    return widened.view(np.float32).reshape(entry.shape)
