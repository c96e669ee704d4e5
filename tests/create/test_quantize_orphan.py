"""The quantizer child stops as soon as the server that reads its progress is gone (killed with
SIGKILL, say) instead of quantizing on, unwatched, to the end."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from corral.create import quantize
from corral.create.convert import convert_to_gguf

from .tiny_llama import write_tiny_llama


def test_quantizer_stops_when_nobody_reads_its_progress(tmp_path: Path) -> None:
    write_tiny_llama(tmp_path / "src")
    src, dst = tmp_path / "tiny-f16.gguf", tmp_path / "out.gguf"
    convert_to_gguf(tmp_path / "src", src, out_type="f16")
    finished = subprocess.run(
        quantize._child_command(src, tmp_path / "whole.gguf", "Q8_0", 1),
        capture_output=True,
        check=True,
    )
    assert finished.stdout.count(quantize.PROGRESS_PREFIX.encode()) > 1  # a line per tensor

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the child writes its first progress line
    try:
        child = subprocess.Popen(
            quantize._child_command(src, dst, "Q8_0", 1),
            stdin=subprocess.DEVNULL,
            stdout=write_end,
            stderr=subprocess.DEVNULL,
        )
    finally:
        os.close(write_end)
    assert child.wait(60) == 1  # it stopped at that line; unwatched, it would finish with 0
    assert not dst.exists() or dst.stat().st_size < (tmp_path / "whole.gguf").stat().st_size
