"""GGUF metadata: a header-only reader and what Ollama reports about a model file.

:func:`read_gguf` parses the magic, the version (2 or 3), every key/value pair and every tensor
info of a little-endian GGUF file without touching tensor data, and guards against hostile files
(absurd counts and lengths fail fast with :class:`~corral.errors.BadRequest`, so do truncated
files). :class:`GGUFFile` then answers what Ollama derives from the same metadata: ``details``,
the manifest config blob fields, ``/api/show``'s ``model_info`` and the capability list.
"""

from __future__ import annotations

import math
import os
import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any, Final

import numpy as np

from corral.errors import BadRequest

GGUF_MAGIC: Final = b"GGUF"
_BIG_ENDIAN_MAGIC: Final = b"FUGG"
SUPPORTED_VERSIONS: Final = (2, 3)
MAX_STRING_LENGTH: Final = 16 << 20  # Ollama's fs/gguf limits
MAX_ARRAY_SIZE: Final = 64 << 20
MAX_TENSOR_DIMS: Final = 4
MAX_ARRAY_DEPTH: Final = 8
DEFAULT_ALIGNMENT: Final = 32
_U64_MAX: Final = (1 << 64) - 1
_CHUNK: Final = 1 << 20
_EOF: Final = "unexpected EOF"


class ValueType(IntEnum):
    """The GGUF metadata value types (their numbers are the on-disk tags)."""

    UINT8 = 0
    INT8 = 1
    UINT16 = 2
    INT16 = 3
    UINT32 = 4
    INT32 = 5
    FLOAT32 = 6
    BOOL = 7
    STRING = 8
    ARRAY = 9
    UINT64 = 10
    INT64 = 11
    FLOAT64 = 12


# Fixed-size value types -> struct format character (also a numpy dtype character).
_FORMATS: Final[Mapping[ValueType, str]] = MappingProxyType(
    {
        ValueType.UINT8: "B", ValueType.INT8: "b", ValueType.UINT16: "H", ValueType.INT16: "h",
        ValueType.UINT32: "I", ValueType.INT32: "i", ValueType.FLOAT32: "f", ValueType.BOOL: "B",
        ValueType.UINT64: "Q", ValueType.INT64: "q", ValueType.FLOAT64: "d",
    }
)  # fmt: skip
_SCALAR: Final[Mapping[ValueType, struct.Struct]] = MappingProxyType(
    {vtype: struct.Struct("<" + fmt) for vtype, fmt in _FORMATS.items()}
)
_U32: Final = struct.Struct("<I")
_U64: Final = struct.Struct("<Q")
_F32: Final = struct.Struct("<f")

# llama_ftype number -> the name Ollama shows (fs/ggml/type.go FileType.String).
FILE_TYPE_NAMES: Final[Mapping[int, str]] = MappingProxyType(
    {
        0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
        10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M",
        16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S",
        22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M",
        28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0",
        37: "TQ2_0", 38: "MXFP4_MOE", 39: "NVFP4", 40: "Q1_0",
    }
)  # fmt: skip

# ggml_type number -> (name, elements per block, bytes per block) as ggml defines them.
TENSOR_TYPES: Final[Mapping[int, tuple[str, int, int]]] = MappingProxyType(
    {
        0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20),
        6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 36),
        10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144),
        13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292),
        16: ("IQ2_XXS", 256, 66), 17: ("IQ2_XS", 256, 74), 18: ("IQ3_XXS", 256, 98),
        19: ("IQ1_S", 256, 50), 20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", 256, 110),
        22: ("IQ2_S", 256, 82), 23: ("IQ4_XS", 256, 136), 24: ("I8", 1, 1), 25: ("I16", 1, 2),
        26: ("I32", 1, 4), 27: ("I64", 1, 8), 28: ("F64", 1, 8), 29: ("IQ1_M", 256, 56),
        30: ("BF16", 1, 2), 34: ("TQ1_0", 256, 54), 35: ("TQ2_0", 256, 66),
        39: ("MXFP4", 32, 17), 40: ("NVFP4", 64, 36), 41: ("Q1_0", 128, 18),
    }
)  # fmt: skip

_GLOBAL_PREFIXES: Final = ("general.", "tokenizer.")
_OMITTED_FROM_MODEL_INFO: Final = ("general.name", "tokenizer.chat_template")
_ACTION = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_FIELD = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's header entry; ``offset`` is relative to the start of the data section."""

    name: str
    dims: tuple[int, ...]
    ggml_type: int
    offset: int

    @property
    def n_elements(self) -> int:
        return math.prod(self.dims)

    @property
    def type_name(self) -> str:
        known = TENSOR_TYPES.get(self.ggml_type)
        return known[0] if known else "unknown"

    @property
    def n_bytes(self) -> int:
        _, block, size = TENSOR_TYPES[self.ggml_type]
        return self.n_elements // block * size


def _empty_types() -> Mapping[str, ValueType]:
    return MappingProxyType({})


@dataclass(frozen=True)
class GGUFFile:
    """The parsed header of a GGUF file.

    ``kv`` holds plain values: ``int``, ``float``, ``bool``, ``str`` and, for arrays, tuples
    (nested arrays are tuples of tuples). ``value_types`` gives each key's GGUF type, or for an
    array its element type. ``data_offset`` is where the tensor data starts in the file.
    """

    version: int
    kv: Mapping[str, Any]
    tensors: tuple[TensorInfo, ...]
    value_types: Mapping[str, ValueType] = field(default_factory=_empty_types)
    data_offset: int = 0

    def get(self, key: str, default: Any = None) -> Any:
        """A value by Ollama's key rule: keys outside ``general.``/``tokenizer.`` get the
        architecture prefix (``get("context_length")`` reads ``llama.context_length``)."""
        if not key.startswith(_GLOBAL_PREFIXES):
            key = f"{self.architecture}.{key}"
        return self.kv.get(key, default)

    def _int(self, key: str) -> int | None:
        value = self.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def architecture(self) -> str:
        value = self.kv.get("general.architecture")
        return value if isinstance(value, str) else "unknown"

    @property
    def name(self) -> str | None:
        value = self.kv.get("general.name")
        return value if isinstance(value, str) else None

    @property
    def parameter_count(self) -> int:
        """Sum of the tensors' element counts; Ollama always uses this, overriding any
        ``general.parameter_count`` stored in the file."""
        return sum(t.n_elements for t in self.tensors)

    @property
    def parameter_size(self) -> str:
        return human_number(self.parameter_count)

    @property
    def file_type(self) -> int | None:
        return self._int("general.file_type")

    @property
    def file_type_name(self) -> str:
        return file_type_name(self.file_type)

    @property
    def context_length(self) -> int:
        return self._int("context_length") or 0

    @property
    def embedding_length(self) -> int:
        return self._int("embedding_length") or 0

    @property
    def block_count(self) -> int:
        return self._int("block_count") or 0

    @property
    def pooling_type(self) -> int | None:
        return self._int("pooling_type")

    @property
    def chat_template(self) -> str | None:
        value = self.kv.get("tokenizer.chat_template")
        return value if isinstance(value, str) and value else None

    @property
    def is_embedding(self) -> bool:
        """Ollama's rule: a model with ``<arch>.pooling_type`` is an embedding model."""
        return self.get("pooling_type") is not None

    @property
    def has_vision(self) -> bool:
        return self.get("vision.block_count") is not None

    @property
    def has_audio(self) -> bool:
        return self.get("audio.block_count") is not None

    def model_info(self, verbose: bool = False) -> dict[str, Any]:
        """``/api/show``'s ``model_info``: every key except ``general.name`` and
        ``tokenizer.chat_template``, ``general.parameter_count`` set to the tensor sum, keys
        sorted (Go marshals maps sorted). Without ``verbose`` every non-empty array is
        ``None`` (Ollama decodes with a maximum array size of 0, marshalled as ``null``)."""
        info: dict[str, Any] = {}
        for key, value in self.kv.items():
            if key in _OMITTED_FROM_MODEL_INFO:
                continue
            is_f32 = self.value_types.get(key) is ValueType.FLOAT32
            if isinstance(value, tuple):
                if value and not verbose:
                    info[key] = None
                else:
                    info[key] = _json_array(value, is_f32)
            else:
                info[key] = _json_float(value, is_f32) if isinstance(value, float) else value
        info["general.parameter_count"] = self.parameter_count
        return dict(sorted(info.items()))

    def tensor_list(self) -> list[dict[str, Any]]:
        """``/api/show``'s verbose ``tensors``: name, type name and shape of each tensor."""
        return [{"name": t.name, "type": t.type_name, "shape": list(t.dims)} for t in self.tensors]

    def details(self) -> dict[str, Any]:
        """Ollama's ``ModelDetails`` for a model made from this single GGUF file."""
        return {
            "parent_model": "",
            "format": "gguf",
            "family": self.architecture,
            "families": [self.architecture],
            "parameter_size": self.parameter_size,
            "quantization_level": self.file_type_name,
        }

    def config_fields(self) -> dict[str, Any]:
        """The ``ConfigV2`` fields Ollama's create writes into the manifest config blob."""
        return {
            "model_format": "gguf",
            "model_family": self.architecture,
            "model_families": [self.architecture],
            "model_type": self.parameter_size,
            "file_type": self.file_type_name,
        }

    def capabilities(
        self,
        template: str | None,
        template_uses: Callable[[str], bool] | None = None,
        *,
        has_projector: bool = False,
    ) -> list[str]:
        """Ollama's capability list, in Ollama's order: ``completion`` or ``embedding``,
        ``vision``, ``audio`` (from GGUF keys or a projector layer), then from the Go template
        ``tools`` (uses ``.Tools``), ``insert`` (uses ``.Suffix``), ``thinking`` (renders
        ``.Thinking`` of messages; also always for gpt-oss).

        ``template_uses(name)`` is asked about ``"Tools"``, ``"Suffix"`` and ``"Thinking"``;
        without it a regex over the template's ``{{ }}`` actions decides.
        """
        caps = ["embedding" if self.is_embedding else "completion"]
        if self.has_vision or has_projector:
            caps.append("vision")
        if self.has_audio:
            caps.append("audio")
        if template:
            uses = template_uses or _regex_template_uses(template)
            for var, cap in (("Tools", "tools"), ("Suffix", "insert"), ("Thinking", "thinking")):
                if uses(var):
                    caps.append(cap)
        if self.architecture in ("gptoss", "gpt-oss") and "thinking" not in caps:
            caps.append("thinking")
        return caps


def human_number(n: int) -> str:
    """Ollama's ``format.HumanNumber``: 134515008 -> "134.52M", 7e9 -> "7B", 1.5e9 -> "1.5B"."""
    for unit, suffix, decimals in ((1_000_000_000, "B", 1), (1_000_000, "M", 2)):
        if n >= unit:
            number = float(n) / unit
            if number == math.floor(number):
                return f"{number:.0f}{suffix}"
            return f"{number:.{decimals}f}{suffix}"
    if n >= 1000:
        return f"{float(n) / 1000:.0f}K"
    return str(n)


def file_type_name(file_type: int | None) -> str:
    """The quantization name Ollama shows for a ``general.file_type`` value ("unknown" if none).

    Ollama itself maps 0 (all F32) to "unknown" because it treats 0 as unset; corral says "F32".
    """
    if file_type is None:
        return "unknown"
    return FILE_TYPE_NAMES.get(file_type, "unknown")


def is_gguf(path: Path) -> bool:
    """Whether the file starts with a GGUF magic (either byte order, as Ollama detects it)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) in (GGUF_MAGIC, _BIG_ENDIAN_MAGIC)
    except OSError:
        return False


def read_gguf(path: Path) -> GGUFFile:
    """Parse a GGUF file's header. Raises :class:`BadRequest` for an invalid or truncated file;
    ``OSError`` from opening the file propagates."""
    with open(path, "rb", buffering=0) as f:
        return _parse(_Reader(f, os.fstat(f.fileno()).st_size))


def _regex_template_uses(template: str) -> Callable[[str], bool]:
    """Fallback for the template engine: field names used inside ``{{ }}`` actions.

    Like Ollama's ``Template.Vars`` the match is case-insensitive, except ``Thinking``, which
    (like ``thinking.InferTags``) must be spelled so and sit in a ``range`` over ``.Messages``.
    """
    actions = _ACTION.findall(template)
    fields = {m for action in actions for m in _FIELD.findall(action)}
    lowered = {name.lower() for name in fields}
    ranges_messages = any(
        a.strip(" -\t\r\n").startswith("range") and ".Messages" in a for a in actions
    )

    def uses(name: str) -> bool:
        if name == "Thinking":
            return "Thinking" in fields and ranges_messages
        return name.lower() in lowered

    return uses


def _json_float(value: float, is_f32: bool) -> float | None:
    """A float as Go's JSON shows it: float32 in its shortest round-trip form; NaN/Inf as None
    (Go would fail to marshal them; a JSON body cannot carry them)."""
    if not math.isfinite(value):
        return None
    if not is_f32:
        return value
    packed = _F32.pack(value)
    for digits in range(1, 10):
        candidate = float(f"{value:.{digits}g}")
        if _F32.pack(candidate) == packed:
            return candidate
    return value


def _json_array(values: tuple[Any, ...], is_f32: bool) -> list[Any]:
    if not values or not isinstance(values[0], float | tuple):
        return list(values)
    if isinstance(values[0], tuple):
        return [_json_array(v, False) for v in values]
    if not is_f32:
        return [_json_float(v, False) for v in values]
    # numpy prints float32 in its shortest round-trip form; parse that back, in C.
    shortest: list[Any] = np.array(values, dtype=np.float32).astype(str).astype(np.float64).tolist()
    if not all(map(math.isfinite, shortest)):
        return [v if math.isfinite(v) else None for v in shortest]
    return shortest


class _Reader:
    """Sequential little-endian reads over a raw file object with its own 1 MiB buffer."""

    def __init__(self, f: IO[bytes], size: int) -> None:
        self._f = f
        self.size = size
        self._buf = b""
        self._pos = 0
        self._base = 0  # file offset of _buf[0]

    def tell(self) -> int:
        return self._base + self._pos

    def remaining(self) -> int:
        return self.size - self.tell()

    def fill(self, n: int) -> None:
        """Make ``n`` bytes available at the current position, or raise for a truncated file."""
        have = len(self._buf) - self._pos
        if have >= n:
            return
        if n > self.remaining():
            raise BadRequest(_EOF)
        more = self._f.read(max(n - have, _CHUNK))
        self._base += self._pos
        self._buf = self._buf[self._pos :] + more
        self._pos = 0
        if len(self._buf) < n:
            raise BadRequest(_EOF)

    def scalar(self, st: struct.Struct) -> Any:
        self.fill(st.size)
        (value,) = st.unpack_from(self._buf, self._pos)
        self._pos += st.size
        return value

    def u32(self) -> int:
        return int(self.scalar(_U32))

    def u64(self) -> int:
        return int(self.scalar(_U64))

    def string(self) -> str:
        return self.strings(1)[0]

    def strings(self, count: int) -> tuple[str, ...]:
        """``count`` strings; the hot loop for tokenizer vocabularies (up to 262k entries)."""
        out: list[str] = []
        append = out.append
        unpack = _U64.unpack_from
        buf, pos = self._buf, self._pos
        end = len(buf)
        for _ in range(count):
            if end - pos < 8:
                self._pos = pos
                self.fill(8)
                buf, pos, end = self._buf, self._pos, len(self._buf)
            (n,) = unpack(buf, pos)
            pos += 8
            if n > end - pos:
                _check_length(n, "string", MAX_STRING_LENGTH)
                self._pos = pos
                self.fill(n)
                buf, pos, end = self._buf, self._pos, len(self._buf)
            elif n > MAX_STRING_LENGTH:
                _check_length(n, "string", MAX_STRING_LENGTH)
            append(buf[pos : pos + n].decode("utf-8", "replace"))
            pos += n
        self._pos = pos
        return tuple(out)

    def fixed_array(self, item: ValueType, count: int) -> tuple[Any, ...]:
        dtype = np.dtype("<" + _FORMATS[item])
        n = count * dtype.itemsize
        self.fill(n)
        data = np.frombuffer(self._buf, dtype=dtype, count=count, offset=self._pos)
        self._pos += n
        if item is ValueType.BOOL:
            data = data != 0
        return tuple(data.tolist())


def _check_length(n: int, kind: str, limit: int) -> None:
    if n > limit:
        raise BadRequest(f"GGUF {kind} length {n} exceeds maximum {limit}")


def _read_value(r: _Reader, vtype: int) -> tuple[Any, ValueType]:
    """One value of GGUF type ``vtype``; returns it with its type (an array's element type)."""
    if vtype == ValueType.STRING:
        return r.string(), ValueType.STRING
    if vtype == ValueType.ARRAY:
        return _read_array(r, 0)
    known = _value_type(vtype)
    st = _SCALAR.get(known) if known is not None else None
    if known is None or st is None:
        raise BadRequest(f"invalid type: {vtype}")
    value = r.scalar(st)
    return (value != 0 if known is ValueType.BOOL else value), known


def _value_type(tag: int) -> ValueType | None:
    try:
        return ValueType(tag)
    except ValueError:
        return None


def _read_array(r: _Reader, depth: int) -> tuple[tuple[Any, ...], ValueType]:
    if depth >= MAX_ARRAY_DEPTH:
        raise BadRequest(f"GGUF arrays nested deeper than {MAX_ARRAY_DEPTH}")
    item = r.u32()
    count = r.u64()
    if count > MAX_ARRAY_SIZE:
        raise BadRequest(f"GGUF array size {count} exceeds maximum {MAX_ARRAY_SIZE}")
    item_type = _value_type(item)
    if item_type is None:
        raise BadRequest(f"invalid array type: {item}")
    # Every element takes at least this many bytes: reject impossible counts before allocating.
    min_size = {ValueType.STRING: 8, ValueType.ARRAY: 12}.get(item_type)
    if min_size is None:
        min_size = _SCALAR[item_type].size
    if count * min_size > r.remaining():
        raise BadRequest(_EOF)
    if item_type is ValueType.STRING:
        return r.strings(count), item_type
    if item_type is ValueType.ARRAY:
        return tuple(_read_array(r, depth + 1)[0] for _ in range(count)), item_type
    return r.fixed_array(item_type, count), item_type


def _parse(r: _Reader) -> GGUFFile:
    if r.size < 4:
        raise BadRequest("invalid file magic")
    magic = r.scalar(struct.Struct("<4s"))
    if magic == _BIG_ENDIAN_MAGIC:
        raise BadRequest("big-endian GGUF files are not supported")
    if magic != GGUF_MAGIC:
        raise BadRequest("invalid file magic")
    version = r.u32()
    if version not in SUPPORTED_VERSIONS:
        if int.from_bytes(version.to_bytes(4, "little"), "big") in (1, 2, 3):
            raise BadRequest("big-endian GGUF files are not supported")
        raise BadRequest(f"unsupported GGUF version {version}")
    n_tensors, n_kv = r.u64(), r.u64()
    # A key/value takes >= 13 bytes, a tensor info >= 24: absurd counts fail before any loop.
    if n_kv * 13 > r.remaining():
        raise BadRequest(f"GGUF key/value count {n_kv} exceeds the file size")
    if n_tensors * 24 > r.remaining():
        raise BadRequest(f"GGUF tensor count {n_tensors} exceeds the file size")

    kv: dict[str, Any] = {}
    types: dict[str, ValueType] = {}
    for _ in range(n_kv):
        key = r.string()
        if key in kv:
            raise BadRequest(f"duplicate GGUF key {key!r}")
        kv[key], types[key] = _read_value(r, r.u32())

    tensors = tuple(_read_tensor_info(r) for _ in range(n_tensors))
    if len({t.name for t in tensors}) != len(tensors):
        raise BadRequest("duplicate GGUF tensor name")

    alignment = (
        kv.get("general.alignment") if types.get("general.alignment") is ValueType.UINT32 else None
    )
    alignment = DEFAULT_ALIGNMENT if alignment is None else alignment
    if alignment == 0:
        raise BadRequest("invalid GGUF alignment: 0")
    data_offset = -(-r.tell() // alignment) * alignment
    _check_tensor_bounds(tensors, data_offset, r.size)
    return GGUFFile(version, MappingProxyType(kv), tensors, MappingProxyType(types), data_offset)


def _read_tensor_info(r: _Reader) -> TensorInfo:
    name = r.string()
    n_dims = r.u32()
    if n_dims > MAX_TENSOR_DIMS:
        raise BadRequest(f'tensor "{name}" dimensions {n_dims} exceeds maximum {MAX_TENSOR_DIMS}')
    dims = tuple(r.u64() for _ in range(n_dims))
    ggml_type = r.u32()
    offset = r.u64()
    return TensorInfo(name, dims, ggml_type, offset)


def _check_tensor_bounds(tensors: tuple[TensorInfo, ...], data_offset: int, size: int) -> None:
    """Ollama's checks that every tensor has a known type and lies inside the file."""
    total = 0
    for t in tensors:
        if t.ggml_type not in TENSOR_TYPES:
            raise BadRequest(f'tensor "{t.name}" has unknown type {t.ggml_type}')
        _, block, _ = TENSOR_TYPES[t.ggml_type]
        elements = t.n_elements
        if elements > _U64_MAX:
            raise BadRequest(f'tensor "{t.name}" elements overflow')
        total += elements
        if total > _U64_MAX:
            raise BadRequest("parameter count overflow")
        if t.dims and t.dims[0] % block:
            raise BadRequest(
                f'tensor "{t.name}" row size {t.dims[0]} is not a multiple of its block size '
                f"{block}"
            )
        end = data_offset + t.offset + t.n_bytes
        if end > size:
            raise BadRequest(f'tensor "{t.name}" offset+size ({end}) exceeds file size ({size})')
