"""Quantize an F32/F16/BF16 GGUF file with llama.cpp's quantizer, in a child process.

:func:`quantize_gguf` validates the request the way Ollama does (the target type, and a source
that is not already quantized), then runs ``python -m corral.create.quantize SRC DST TYPE`` so an
abort inside llama.cpp costs the request an error, never the server. The child calls
``llama_model_quantize`` and turns llama.cpp's per-tensor log lines (``[  12/ 201] name ...``)
into progress lines on its stdout, which the parent reports as a completed fraction. The output
is written beside ``dst`` and renamed into place only after it parses as GGUF.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from corral.errors import BadRequest, InternalError
from corral.gguf_info import GGUFFile, read_gguf

# Ollama's accepted names (upper-cased input) -> llama_ftype
QUANT_TYPES: Final[Mapping[str, int]] = MappingProxyType(
    {"F32": 0, "F16": 1, "BF16": 32, "Q8_0": 7, "Q4_K_S": 14, "Q4_K_M": 15, "Q4_K": 15}
)
_LISTED_TYPES: Final = "F32, F16, Q4_K_S, Q4_K_M, Q8_0"  # as Ollama lists them
_SOURCE_TYPES: Final = frozenset({0, 1, 32})  # F32, F16, BF16
_UNQUANTIZED_TENSORS: Final = frozenset({0, 1, 30})  # ggml F32, F16, BF16
ONLY_UNQUANTIZED: Final = "quantization is only supported for F16, BF16 and F32 models"
PROGRESS_PREFIX: Final = "corral-progress "
_PROGRESS_LOG = re.compile(r"\[\s*(\d+)\s*/\s*(\d+)\s*\]")
_TAIL_LINES: Final = 20
_LOG_WARN: Final = 3  # ggml_log_level: DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5
_LOG_CONT: Final = 5

QuantizeProgress = Callable[[float], None]


def parse_quant_type(qtype: str) -> tuple[str, int]:
    """(canonical name, llama_ftype) of a quantization type, case-insensitive."""
    name = qtype.strip().upper()
    if name not in QUANT_TYPES:
        raise BadRequest(
            f"unsupported quantization type {name} - supported types are {_LISTED_TYPES}"
        )
    return ("Q4_K_M" if name == "Q4_K" else name), QUANT_TYPES[name]


def source_file_type(info: GGUFFile) -> int | None:
    """``general.file_type``, or for a file without one the type its tensors imply."""
    if info.file_type is not None:
        return info.file_type
    kinds = {t.ggml_type for t in info.tensors}
    if not kinds or not kinds <= _UNQUANTIZED_TENSORS:
        return None
    if 30 in kinds:
        return 32
    return 1 if 1 in kinds else 0


def quantize_gguf(
    src: Path,
    dst: Path,
    qtype: str,
    progress: QuantizeProgress | None = None,
    *,
    threads: int | None = None,
) -> None:
    """Write ``src`` quantized to ``qtype`` (q8_0, q4_K_M, q4_K_S, f16, ...) at ``dst``.

    ``progress`` receives the completed fraction, 0.0 first and 1.0 last. A quantized source
    or an unknown type is a BadRequest; a failure inside llama.cpp is an InternalError.
    """
    name, ftype = parse_quant_type(qtype)
    current = source_file_type(read_gguf(src))
    if current not in _SOURCE_TYPES:
        raise BadRequest(ONLY_UNQUANTIZED)
    if progress is not None:
        progress(0.0)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.partial")
    try:
        if current == ftype:
            shutil.copyfile(src, tmp)
        else:
            _run_child(src, tmp, name, progress, threads)
        read_gguf(tmp)  # a truncated or garbled result fails here, not at load time
        os.replace(tmp, dst)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    if progress is not None:
        progress(1.0)


def _child_command(src: Path, dst: Path, name: str, threads: int | None) -> list[str]:
    cmd = [sys.executable, "-m", "corral.create.quantize", str(src), str(dst), name]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    return cmd


def _run_child(
    src: Path, dst: Path, name: str, progress: QuantizeProgress | None, threads: int | None
) -> None:
    env = {**os.environ, "GGML_NO_BACKTRACE": "1", "PYTHONUNBUFFERED": "1"}
    tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
    proc = subprocess.Popen(
        _child_command(src, dst, name, threads),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        text=True,
        errors="replace",
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(PROGRESS_PREFIX):
                done, total = (int(x) for x in line[len(PROGRESS_PREFIX) :].split()[:2])
                if progress is not None and total > 0:
                    progress(min(done / total, 1.0))
            elif line.strip():
                tail.append(line.rstrip())
        code = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if code != 0:
        how = f"exit status {code}" if code > 0 else f"signal {-code}"
        detail = next(
            (t for t in reversed(tail) if "failed" in t.lower()),
            next((t for t in reversed(tail) if "error" in t.lower()), tail[-1] if tail else ""),
        )
        raise InternalError(
            f"llama.cpp quantization failed ({how})" + (f": {detail}" if detail else "")
        )


# ---- child process ---------------------------------------------------------------------------


def _quantize_in_process(src: str, dst: str, ftype: int, threads: int) -> int:
    """Call llama.cpp's quantizer, echoing its per-tensor log lines as progress on stdout."""
    import llama_cpp

    forwarding = [False]  # whether the message being continued (level CONT) is forwarded

    def on_log(level: int, text: bytes | None, user_data: Any) -> None:
        message = (text or b"").decode("utf-8", errors="replace")
        match = _PROGRESS_LOG.match(message.lstrip())
        if match:
            done = int(match.group(1)) - 1  # the line announces the tensor it starts on
            try:
                sys.stdout.write(f"{PROGRESS_PREFIX}{done} {match.group(2)}\n")
                sys.stdout.flush()
            except OSError:  # nobody reads the progress: the server is gone (killed), stop
                os._exit(1)  # ctypes would ignore an exception here and quantizing go on
            return
        if level != _LOG_CONT:
            forwarding[0] = level >= _LOG_WARN
        if forwarding[0]:  # warnings and errors: kept for the parent's error message
            sys.stderr.write(message)
            sys.stderr.flush()

    callback = llama_cpp.llama_log_callback(on_log)
    llama_cpp.llama_log_set(callback, None)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = threads
    params.allow_requantize = True
    result = int(llama_cpp.llama_model_quantize(src.encode(), dst.encode(), params))
    del callback  # kept referenced until the quantizer returned: it calls back into Python
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m corral.create.quantize",
        description="Quantize a GGUF file with llama.cpp (run by corral in a child process).",
    )
    parser.add_argument("src", help="F32/F16/BF16 GGUF file")
    parser.add_argument("dst", help="output GGUF file")
    parser.add_argument("type", help="Q8_0, Q4_K_M, Q4_K_S, F16, F32 or BF16")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    try:
        _, ftype = parse_quant_type(args.type)
    except BadRequest as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = _quantize_in_process(args.src, args.dst, ftype, args.threads)
    if result != 0:
        print(f"error: llama_model_quantize returned {result}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
