"""The log-probability math: log-softmax over the logits, the chosen token and the top ones."""

from __future__ import annotations

import math

import numpy as np
import pytest

from corral.engine.logprobs import from_logits


def piece(i: int) -> bytes:
    return f"t{i}".encode()


def reference(logits: list[float]) -> list[float]:
    peak = max(logits)
    total = math.log(sum(math.exp(x - peak) for x in logits)) + peak
    return [x - total for x in logits]


@pytest.mark.parametrize(
    "logits",
    [
        [0.0, 0.0, 0.0, 0.0],
        [1.0, 2.0, 3.0, 4.0],
        [-1000.0, 0.0, 1000.0, 999.0],  # far apart: no overflow, no -inf for the best
        [5.5, -3.25, 0.125, 2.0, 2.0, 7.75],
    ],
)
def test_matches_a_float64_log_softmax(logits: list[float]) -> None:
    arr = np.array(logits, dtype=np.float32)
    ref = reference(logits)
    for chosen in range(len(logits)):
        lp = from_logits(arr, chosen, len(logits), piece)
        assert lp.logprob == pytest.approx(ref[chosen], abs=1e-4)
        assert [t for t, _, _ in lp.top] == sorted(
            range(len(logits)), key=lambda i: (-logits[i], i)
        )
        assert [v for _, _, v in lp.top] == pytest.approx(sorted(ref, reverse=True), abs=1e-4)
        assert math.fsum(math.exp(v) for _, _, v in lp.top) == pytest.approx(1.0, abs=1e-5)


def test_top_is_cut_and_carries_pieces() -> None:
    arr = np.array([0.5, 3.0, 1.0, 2.0], dtype=np.float32)
    lp = from_logits(arr, 0, 2, piece)
    assert [(t, p) for t, p, _ in lp.top] == [(1, b"t1"), (3, b"t3")]
    assert from_logits(arr, 0, 0, piece).top == ()
    assert len(from_logits(arr, 0, 50, piece).top) == 4  # never more than the vocabulary


def test_a_large_vocabulary() -> None:
    rng = np.random.default_rng(7)
    arr = rng.normal(size=49152).astype(np.float32) * 4
    lp = from_logits(arr, 123, 20, piece)
    ref = arr.astype(np.float64) - np.log(np.exp(arr.astype(np.float64)).sum())
    assert lp.logprob == pytest.approx(ref[123], abs=1e-4)
    best = np.argsort(-ref)[:20]
    assert [t for t, _, _ in lp.top] == [int(i) for i in best]
