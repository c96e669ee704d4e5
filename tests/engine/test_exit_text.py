"""A runner's end is reported in Ollama's words (Go's process state)."""

from __future__ import annotations

import pytest

from corral.engine.process import exit_text


@pytest.mark.parametrize(
    ("returncode", "text"),
    [
        (1, "exit status 1"),
        (0, "exit status 0"),
        (-9, "signal: killed"),
        (-11, "signal: segmentation fault"),
        (-6, "signal: aborted"),
        (-42, "signal: signal 42"),
    ],
)
def test_exit_text(returncode: int, text: str) -> None:
    assert exit_text(returncode) == text
