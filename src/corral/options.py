"""The model options table: names, kinds, defaults, and their two ways in.

Ollama's model options are the fields of ``api.Options`` and its embedded ``api.Runner``. They
reach a model in two ways, each with its own rules, and this module implements both:

* a Modelfile ``PARAMETER name value`` line (or the REPL's ``/set parameter``) gives a *string*
  that is converted to the option's type (:func:`parse_parameter`, Ollama's ``FormatParams``);
* the ``options`` object of an API request, and the params layer of a stored model, give *JSON
  values* whose types are checked (:func:`validate_options`, Ollama's ``Options.FromMap``).

Facts kept from Ollama:

* unknown keys in a request's ``options`` are logged and ignored, never an error;
* an unknown ``PARAMETER`` is an error (``unknown parameter 'x'``), except for the deprecated
  names in :data:`DEPRECATED_PARAMETERS`, which the Modelfile reader skips with a warning;
* JSON numbers are float64 in Go, so an integer option takes ``5.0`` (and truncates ``5.7`` to 5);
* ``num_ctx`` defaults to 0, meaning "the server decides" (``OLLAMA_CONTEXT_LENGTH`` if set,
  otherwise 4096 below 23 GiB of VRAM, 32768 below 47 GiB, 262144 above).

Ollama answers a wrong-typed request option with a 500; corral raises :class:`BadRequest` (400)
with the same text, as bad input must never be a 500.
"""

from __future__ import annotations

import logging
import math
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from corral.errors import BadRequest, ModelfileError

__all__ = [
    "DEFAULTS",
    "DEPRECATED_PARAMETERS",
    "OPTIONS",
    "OptionKind",
    "OptionSpec",
    "OptionValue",
    "default_options",
    "merge_options",
    "parse_parameter",
    "validate_options",
]

_log = logging.getLogger(__name__)

OptionKind = Literal["int", "float", "bool", "str_list"]
OptionValue = int | float | bool | list[str]


@dataclass(frozen=True)
class OptionSpec:
    """One model option: its JSON/Modelfile name, its kind, and whether it is a load-time option.

    ``runner`` options (Ollama's ``api.Runner``) shape the loaded model (context size, batch,
    GPU layers...); changing one needs a reload. The others are per-request sampling options.
    """

    name: str
    kind: OptionKind
    runner: bool = False


def _table(*specs: OptionSpec) -> Mapping[str, OptionSpec]:
    return MappingProxyType({spec.name: spec for spec in specs})


# Order as Ollama declares them: the embedded Runner struct first, then the predict options.
OPTIONS: Mapping[str, OptionSpec] = _table(
    OptionSpec("num_ctx", "int", runner=True),
    OptionSpec("num_batch", "int", runner=True),
    OptionSpec("num_gpu", "int", runner=True),
    OptionSpec("main_gpu", "int", runner=True),
    OptionSpec("use_mmap", "bool", runner=True),
    OptionSpec("use_mlock", "bool", runner=True),
    OptionSpec("num_thread", "int", runner=True),
    OptionSpec("draft_num_predict", "int", runner=True),
    OptionSpec("num_keep", "int"),
    OptionSpec("seed", "int"),
    OptionSpec("num_predict", "int"),
    OptionSpec("top_k", "int"),
    OptionSpec("top_p", "float"),
    OptionSpec("min_p", "float"),
    OptionSpec("typical_p", "float"),
    OptionSpec("repeat_last_n", "int"),
    OptionSpec("temperature", "float"),
    OptionSpec("repeat_penalty", "float"),
    OptionSpec("presence_penalty", "float"),
    OptionSpec("frequency_penalty", "float"),
    # Removed from current Ollama, kept by corral: llama.cpp still has these samplers.
    OptionSpec("mirostat", "int"),
    OptionSpec("mirostat_tau", "float"),
    OptionSpec("mirostat_eta", "float"),
    OptionSpec("stop", "str_list"),
)

# Former options a Modelfile may still name: skipped with a warning instead of rejected. In a
# request's ``options`` they are unknown keys like any other (logged, ignored).
DEPRECATED_PARAMETERS: frozenset[str] = frozenset(
    {
        "penalize_newline",
        "low_vram",
        "f16_kv",
        "logits_all",
        "vocab_only",
    }
)

# Ollama's DefaultOptions, the one place corral defines them (the engine's SamplingParams and
# LoadSpec take their defaults from here). main_gpu, use_mmap, min_p and stop have no entry: unset.
DEFAULTS: Mapping[str, int | float] = MappingProxyType(
    {
        "num_ctx": 0,
        "num_batch": 512,
        "num_gpu": -1,
        "num_thread": 0,
        "draft_num_predict": 4,
        "num_keep": 4,
        "seed": -1,
        "num_predict": -1,
        "top_k": 40,
        "top_p": 0.9,
        "typical_p": 1.0,
        "repeat_last_n": 64,
        "temperature": 0.8,
        "repeat_penalty": 1.0,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "mirostat": 0,
        "mirostat_tau": 5.0,
        "mirostat_eta": 0.1,
    }
)

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

# Go's strconv syntax: ParseInt(s, 10, 64), ParseFloat(s, 32) (decimal, hex with a p exponent,
# inf/infinity/nan), ParseBool.
_GO_INT = re.compile(r"[+-]?[0-9]+")
_GO_DEC_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_GO_HEX_FLOAT = re.compile(
    r"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?[0-9]+"
)
_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def default_options() -> dict[str, OptionValue]:
    """A fresh copy of Ollama's default options (options without a default are absent)."""
    return dict(DEFAULTS)


def _go_list(values: Sequence[str]) -> str:
    # How Go's %s prints a []string: "[a b]".
    return "[" + " ".join(values) + "]"


def _float32(value: float) -> float:
    """Round to float32 and back to the shortest decimal that names that float32.

    Ollama stores a PARAMETER float as a Go float32 and writes it to JSON in its shortest form,
    so ``0.1234567891`` is kept as ``0.12345679``.
    """
    packed = struct.pack("<f", value)
    single = struct.unpack("<f", packed)[0]
    for digits in range(1, 10):
        candidate = float(f"{single:.{digits}g}")
        if struct.pack("<f", candidate) == packed:
            return candidate
    return float(single)


def _parse_go_float32(text: str) -> float | None:
    if _GO_DEC_FLOAT.fullmatch(text):
        value = float(text)
    elif _GO_HEX_FLOAT.fullmatch(text):
        value = float.fromhex(text)
    else:
        # inf/infinity/nan parse in Go but cannot be stored as JSON; reject them here.
        return None
    if not math.isfinite(value):
        return None
    try:
        return _float32(value)
    except OverflowError:
        return None


def parse_parameter(name: str, raw: str | Sequence[str]) -> OptionValue:
    """Convert a Modelfile ``PARAMETER`` value (or the REPL's ``/set parameter`` words) to its type.

    ``raw`` is one value or, as the REPL passes it, several words; only the first is converted,
    except for ``stop`` whose value is the whole list. Raises :class:`ModelfileError` with
    Ollama's texts: ``unknown parameter 'x'``, ``invalid int value [x]``,
    ``invalid float value [x]``, ``invalid bool value [x]``.
    """
    values = [raw] if isinstance(raw, str) else list(raw)
    spec = OPTIONS.get(name)
    if spec is None:
        raise ModelfileError(f"unknown parameter '{name}'")
    if spec.kind == "str_list":
        return values
    first = values[0] if values else ""
    if spec.kind == "int":
        if _GO_INT.fullmatch(first) and _INT64_MIN <= int(first) <= _INT64_MAX:
            return int(first)
        raise ModelfileError(f"invalid int value {_go_list(values)}")
    if spec.kind == "float":
        parsed = _parse_go_float32(first)
        if parsed is None:
            raise ModelfileError(f"invalid float value {_go_list(values)}")
        return parsed
    if first in _GO_TRUE:
        return True
    if first in _GO_FALSE:
        return False
    raise ModelfileError(f"invalid bool value {_go_list(values)}")


def _json_int(key: str, value: Any) -> int:
    """An integer option from a JSON value, the way Go's float64 -> int conversion does it."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f'option "{key}" must be of type integer')
    try:
        number = float(value)  # Go decodes every JSON number as a float64
    except OverflowError:
        raise BadRequest(
            f"json: cannot unmarshal number {value} into Go value of type float64"
        ) from None
    if not math.isfinite(number) or not -(2.0**63) <= number < 2.0**63:
        # Go's out-of-range float -> int64 conversion yields the minimum int64 on amd64.
        return _INT64_MIN
    return int(number)


def _json_float(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f'option "{key}" must be of type float32')
    try:
        number = float(value)
    except OverflowError:
        raise BadRequest(
            f"json: cannot unmarshal number {value} into Go value of type float64"
        ) from None
    if not math.isfinite(number):
        raise BadRequest(f'option "{key}" must be of type float32')
    return number


def _json_value(spec: OptionSpec, value: Any) -> OptionValue:
    key = spec.name
    if spec.kind == "int":
        return _json_int(key, value)
    if spec.kind == "float":
        return _json_float(key, value)
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise BadRequest(f'option "{key}" must be of type boolean')
        return value
    if not isinstance(value, list | tuple):
        raise BadRequest(f'option "{key}" must be of type array')
    items: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise BadRequest(f'option "{key}" must be of an array of strings')
        items.append(item)
    return items


def validate_options(opts: Mapping[str, Any]) -> dict[str, OptionValue]:
    """Check an ``options`` object of JSON values; return the known options with Python types.

    Unknown keys are logged and dropped, ``null`` values are dropped (the option keeps its
    previous value), integers accept any JSON number (truncated toward zero). A value of the
    wrong type raises :class:`BadRequest` with Ollama's text, e.g.
    ``option "top_k" must be of type integer``.
    """
    out: dict[str, OptionValue] = {}
    for key, value in opts.items():
        spec = OPTIONS.get(key)
        if spec is None:
            _log.warning("invalid option provided: option=%s", key)
            continue
        if value is None:
            continue
        out[key] = _json_value(spec, value)
    return out


def merge_options(*layers: Mapping[str, Any] | None) -> dict[str, OptionValue]:
    """Ollama's effective options: the defaults, then each layer validated and applied in order.

    Pass the model's stored parameters first and the request's ``options`` last.
    """
    merged = default_options()
    for layer in layers:
        if layer:
            merged.update(validate_options(layer))
    return merged
