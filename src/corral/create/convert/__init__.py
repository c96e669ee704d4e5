"""Convert a Hugging Face safetensors checkpoint directory to a GGUF file, without torch.

:func:`detect_architecture` names the checkpoint's architecture from ``config.json`` (an
unsupported one is a 400 naming it, as Ollama words it); :func:`convert_to_gguf` writes the GGUF
file with the ``gguf`` package's writer from numpy arrays read through ``safetensors``.
Supported: BERT-family sentence embedders (GGUF "bert") and Llama-family decoders with a
byte-level BPE tokenizer (GGUF "llama"). Weights are written as F16 (default), BF16 or F32;
1-D tensors, norms and biases stay F32.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from corral.errors import BadRequest

from . import bert, llama
from .source import CONFIG_NAME, SafetensorsSource, load_config, read_json
from .writer import OUT_TYPES, Metadata, TensorPlan, parse_out_type, write_gguf

__all__ = [
    "OUT_TYPES",
    "SUPPORTED_ARCHITECTURES",
    "convert_to_gguf",
    "detect_architecture",
]

log = logging.getLogger(__name__)

Builder = Callable[
    [Path, Mapping[str, Any], SafetensorsSource, str], tuple[Metadata, list[TensorPlan]]
]
# Hugging Face architecture name -> (GGUF architecture, builder)
_CONVERTERS: Final[Mapping[str, tuple[str, Builder]]] = MappingProxyType(
    {
        **{name: (bert.ARCH, bert.build) for name in bert.HF_ARCHITECTURES},
        **{name: (llama.ARCH, llama.build) for name in llama.HF_ARCHITECTURES},
    }
)
SUPPORTED_ARCHITECTURES: Final = tuple(_CONVERTERS)


def _hf_architecture(config: Mapping[str, Any]) -> str:
    architectures = config.get("architectures")
    if not isinstance(architectures, list) or not architectures:
        raise BadRequest("unknown architecture")
    name = architectures[0]
    if not isinstance(name, str):
        raise BadRequest("unknown architecture")
    if name not in _CONVERTERS:
        raise BadRequest(f'unsupported architecture "{name}"')
    return name


def detect_architecture(files: Mapping[str, Path]) -> str:
    """The GGUF architecture ("bert", "llama") a set of checkpoint files converts to.

    ``files`` maps the names of the files as the client sent them (``config.json``,
    ``model.safetensors``, ...) to where they are on disk.
    """
    config_path = files.get(CONFIG_NAME)
    if config_path is None:
        raise BadRequest(f"open {CONFIG_NAME}: no such file or directory")
    config = read_json(config_path)
    if not isinstance(config, dict):
        raise BadRequest(f"parse {CONFIG_NAME}: expected a JSON object")
    return _CONVERTERS[_hf_architecture(config)][0]


def convert_to_gguf(
    src_dir: Path,
    out_path: Path,
    progress: Callable[[str], None] | None = None,
    out_type: str = "f16",
) -> None:
    """Convert the checkpoint in ``src_dir`` to a GGUF file at ``out_path``.

    ``out_type`` is "f16" (default), "bf16" or "f32" for the weight matrices. ``progress``
    receives short status lines. Any problem with the input is a BadRequest; ``out_path`` is
    only created when the conversion succeeds.
    """
    started = time.perf_counter()
    kind = parse_out_type(out_type)
    config = load_config(src_dir)
    arch, build = _CONVERTERS[_hf_architecture(config)]
    source = SafetensorsSource(src_dir)
    if progress is not None:
        progress(f"converting {arch} model ({len(source)} tensors) to {kind.upper()}")
    meta, plans = build(src_dir, config, source, kind)
    write_gguf(out_path, arch, meta, plans, progress)
    log.info("converted %s model to %s in %.2fs", arch, out_path, time.perf_counter() - started)
