"""Thin, safe wrappers over llama-cpp-python's low-level (ctypes) API.

Everything that touches a raw llama.cpp pointer outside sampling lives here: loading a model and
a context (with :class:`EngineLoadError` instead of a NULL pointer), routing the native log to
Python :mod:`logging`, the token batch, and the vocabulary helpers. ``GGML_NO_BACKTRACE`` is set
before the library is imported so that an abort never hangs in ggml's gdb-based crash handler.
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

os.environ.setdefault("GGML_NO_BACKTRACE", "1")

import llama_cpp as L

from corral.engine.types import EngineLoadError

__all__ = [
    "Batch",
    "ContextConfig",
    "L",
    "Vocab",
    "apply_loras",
    "init_backend",
    "load_model",
    "meta_str",
    "new_context",
    "resolve_threads",
]

log = logging.getLogger("corral.llama")

# ggml_log_level: NONE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5 (continues the previous line).
# llama.cpp's INFO output (every metadata key at load) is chatty: it goes to DEBUG here.
_LEVELS = {
    0: logging.DEBUG,
    1: logging.DEBUG,
    2: logging.DEBUG,
    3: logging.WARNING,
    4: logging.ERROR,
    5: logging.DEBUG,
}


def _route_log(level: int, text: bytes | None, _user: ctypes.c_void_p) -> None:
    try:
        py_level = _LEVELS.get(level, logging.DEBUG)
        if text and log.isEnabledFor(py_level):
            line = text.decode("utf-8", "replace").rstrip("\n")
            if line:
                log.log(py_level, "%s", line)
    except Exception:  # an exception must never cross back into C
        pass


# A module-level constant: llama.cpp keeps this pointer for the life of the process, so the
# ctypes thunk must never be garbage collected (a collected callback segfaults later).
_LOG_CALLBACK = L.llama_log_callback(_route_log)


def init_backend() -> None:
    """Route native logs to :mod:`logging` and initialise the ggml backend (idempotent)."""
    L.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))
    L.llama_backend_init()


def resolve_threads(n_threads: int) -> int:
    """0 (or less) means one thread per CPU."""
    return n_threads if n_threads > 0 else max(1, os.cpu_count() or 1)


def _check_gguf(path: Path) -> None:
    if not path.is_file():
        raise EngineLoadError(f"model file not found: {path}")
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise EngineLoadError(f"{path} is not a GGUF model file")


def load_model(
    path: str, *, n_gpu_layers: int, main_gpu: int, use_mmap: bool, use_mlock: bool
) -> Any:
    """Load a GGUF model; a missing, corrupt or unsupported file raises EngineLoadError."""
    p = Path(path)
    _check_gguf(p)
    params = L.llama_model_default_params()
    params.n_gpu_layers = n_gpu_layers if n_gpu_layers >= 0 else 999
    params.main_gpu = main_gpu
    if use_mmap:
        params.load_mode = L.LLAMA_LOAD_MODE_MMAP_MLOCK if use_mlock else L.LLAMA_LOAD_MODE_MMAP
    else:
        params.load_mode = L.LLAMA_LOAD_MODE_MLOCK if use_mlock else L.LLAMA_LOAD_MODE_NONE
    # The "extra" CPU buffer types include the AMX one: on this machine's CPU (AMX present but
    # tile use not permitted by the kernel/hypervisor) its matmul dies with SIGSEGV on
    # `ldtilecfg` as soon as a batch holds more than one token. Plain CPU buffers are safe.
    params.use_extra_bufts = False
    model = L.llama_model_load_from_file(str(p).encode(), params)
    if not model:
        raise EngineLoadError(
            f"failed to load model {p.name}: the file is corrupt, truncated or of an "
            "unsupported architecture"
        )
    return model


@dataclass(frozen=True)
class ContextConfig:
    """The context parameters corral sets (everything else keeps llama.cpp's default)."""

    n_ctx: int
    n_batch: int
    n_seq_max: int
    n_threads: int
    embedding: bool = False
    pooling_type: int = L.LLAMA_POOLING_TYPE_UNSPECIFIED
    kv_unified: bool = True
    flash_attn: bool | None = None  # None: off on CPU-only builds, llama.cpp's choice on GPU


def _flash_attn_type(flash_attn: bool | None) -> int:
    """None means off on CPU-only builds (generation contexts resolve it beforehand by timing
    it, see :mod:`.tuning`) and llama.cpp's own choice on GPU builds. With it on, every
    sequence's attention is computed independently of the others in the batch, so a request's
    output is bit-identical under any concurrency; without it a greedy near-tie can
    occasionally resolve differently when other sequences share the batch."""
    if flash_attn is None:
        if L.llama_supports_gpu_offload():
            return int(L.LLAMA_FLASH_ATTN_TYPE_AUTO)
        return int(L.LLAMA_FLASH_ATTN_TYPE_DISABLED)
    return int(L.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attn else L.LLAMA_FLASH_ATTN_TYPE_DISABLED)


def new_context(model: Any, cfg: ContextConfig) -> Any:
    params = L.llama_context_default_params()
    params.n_ctx = cfg.n_ctx
    params.n_batch = cfg.n_batch
    params.n_ubatch = cfg.n_batch
    params.n_seq_max = cfg.n_seq_max
    params.n_threads = cfg.n_threads
    params.n_threads_batch = cfg.n_threads
    params.embeddings = cfg.embedding
    params.pooling_type = cfg.pooling_type
    params.kv_unified = cfg.kv_unified
    params.swa_full = True  # keep whole sliding-window caches so that a prefix can be reused
    params.flash_attn_type = _flash_attn_type(cfg.flash_attn)
    params.no_perf = True
    ctx = L.llama_init_from_model(model, params)
    if not ctx:
        raise EngineLoadError(
            f"failed to create a context of {cfg.n_ctx} tokens (not enough memory?)"
        )
    return ctx


def apply_loras(model: Any, ctx: Any, paths: Sequence[str]) -> None:
    """Load LoRA adapters (freed with the model) and apply them to the context at scale 1."""
    if not paths:
        return
    adapters = []
    for path in paths:
        if not Path(path).is_file():
            raise EngineLoadError(f"adapter file not found: {path}")
        adapter = L.llama_adapter_lora_init(model, str(path).encode())
        if not adapter:
            raise EngineLoadError(
                f"failed to load adapter {Path(path).name}: not a LoRA GGUF for this model"
            )
        adapters.append(adapter)
    arr = (L.llama_adapter_lora_p_ctypes * len(adapters))(*adapters)
    scales = (ctypes.c_float * len(adapters))(*([1.0] * len(adapters)))
    if L.llama_set_adapters_lora(ctx, arr, len(adapters), scales) != 0:
        raise EngineLoadError("failed to apply the LoRA adapters")


def meta_str(model: Any, key: str) -> str | None:
    """A GGUF metadata value as text, or None."""
    buf = ctypes.create_string_buffer(1024)
    n = L.llama_model_meta_val_str(model, key.encode(), buf, len(buf))
    if n < 0:
        return None
    return buf.value.decode("utf-8", "replace")


class Batch:
    """A ``llama_batch`` of at most ``capacity`` tokens, one sequence id per token."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.raw = L.llama_batch_init(capacity, 0, 1)
        self.n = 0
        self._token: npt.NDArray[np.int32] = np.ctypeslib.as_array(self.raw.token, (capacity,))
        self._pos: npt.NDArray[np.int32] = np.ctypeslib.as_array(self.raw.pos, (capacity,))
        self._logits: npt.NDArray[np.int8] = np.ctypeslib.as_array(self.raw.logits, (capacity,))
        n_seq_id: npt.NDArray[np.int32] = np.ctypeslib.as_array(self.raw.n_seq_id, (capacity,))
        n_seq_id[:] = 1
        self._seq = [self.raw.seq_id[i] for i in range(capacity)]
        self._freed = False

    @property
    def free_space(self) -> int:
        return self.capacity - self.n

    def clear(self) -> None:
        self.n = 0

    def add(self, tokens: Sequence[int], start_pos: int, seq_id: int, logits_last: bool) -> int:
        """Append tokens at consecutive positions; returns the batch index of the last one."""
        k = len(tokens)
        if k == 0 or k > self.capacity - self.n:
            raise ValueError(f"cannot add {k} tokens to a batch with {self.free_space} free")
        a, b = self.n, self.n + k
        self._token[a:b] = tokens
        self._pos[a:b] = np.arange(start_pos, start_pos + k, dtype=np.int32)
        self._logits[a:b] = 0
        if logits_last:
            self._logits[b - 1] = 1
        for i in range(a, b):
            self._seq[i][0] = seq_id
        self.n = b
        self.raw.n_tokens = b
        return b - 1

    def set_all_logits(self) -> None:
        """Mark every token for output (embeddings of a non-causal model need all of them)."""
        self._logits[: self.n] = 1

    def free(self) -> None:
        if not self._freed:
            self._freed = True
            L.llama_batch_free(self.raw)


class Vocab:
    """Tokenizer and token properties of one model."""

    def __init__(self, model: Any) -> None:
        self.ptr = L.llama_model_get_vocab(model)
        self.n_vocab = int(L.llama_vocab_n_tokens(self.ptr))
        self._pieces: dict[int, bytes] = {}
        self._buf = ctypes.create_string_buffer(256)

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool) -> list[int]:
        data = text.encode("utf-8")
        cap = len(data) + 8
        arr = (L.llama_token * cap)()
        n = L.llama_tokenize(self.ptr, data, len(data), arr, cap, add_special, parse_special)
        if n < 0:
            cap = -n
            arr = (L.llama_token * cap)()
            n = L.llama_tokenize(self.ptr, data, len(data), arr, cap, add_special, parse_special)
            if n < 0:
                raise ValueError("tokenization failed")
        return list(arr[:n])

    def detokenize(self, tokens: Sequence[int]) -> str:
        if not tokens:
            return ""
        arr = (L.llama_token * len(tokens))(*tokens)
        cap = max(64, len(tokens) * 8)
        for _ in range(2):
            buf = ctypes.create_string_buffer(cap)
            n = L.llama_detokenize(self.ptr, arr, len(tokens), buf, cap, False, True)
            if n >= 0:
                return buf.raw[:n].decode("utf-8", "replace")
            cap = -n
        raise ValueError("detokenization failed")

    def piece(self, token: int) -> bytes:
        """The bytes of one token (special tokens rendered as their text), cached."""
        cached = self._pieces.get(token)
        if cached is not None:
            return cached
        if not 0 <= token < self.n_vocab:
            raise ValueError(f"token {token} is outside the vocabulary")
        n = L.llama_token_to_piece(self.ptr, token, self._buf, len(self._buf), 0, True)
        if n < 0:
            big = ctypes.create_string_buffer(-n)
            n = L.llama_token_to_piece(self.ptr, token, big, len(big), 0, True)
            out = big.raw[:n]
        else:
            out = self._buf.raw[:n]
        self._pieces[token] = out
        return out

    def is_eog(self, token: int) -> bool:
        return bool(L.llama_vocab_is_eog(self.ptr, token))

    def bos(self) -> int:
        return int(L.llama_vocab_bos(self.ptr))

    def eos(self) -> int:
        return int(L.llama_vocab_eos(self.ptr))

    def eot(self) -> int:
        return int(L.llama_vocab_eot(self.ptr))

    def add_bos(self) -> bool:
        return bool(L.llama_vocab_get_add_bos(self.ptr))


def logits_row(ctx: Any, idx: int, n_vocab: int) -> npt.NDArray[np.float32]:
    """The logits of batch row ``idx`` of the last decode (a view: read it before the next)."""
    ptr = L.llama_get_logits_ith(ctx, idx)
    if not ptr:
        raise ValueError(f"no logits for batch row {idx}")
    return np.ctypeslib.as_array(ptr, shape=(n_vocab,))
