"""Log probabilities of sampled tokens, from the raw logits (log-softmax over the vocabulary),
as Ollama reports them: the chosen token's, and the ``top`` most likely tokens at its position.

They are computed before any sampler (temperature, top-k/p, penalties, grammar) touches the
distribution, so they describe the model, not the sampling settings.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from corral.engine.types import Logprob

MAX_TOP = 20  # Ollama's (and OpenAI's) limit on top_logprobs


def from_logits(
    logits: npt.NDArray[np.float32],
    chosen: int,
    top: int,
    piece: Callable[[int], bytes],
) -> Logprob:
    """The log-softmax of ``logits`` at ``chosen`` and its ``top`` best tokens (most likely
    first, ties by token id); ``piece`` gives a token's bytes."""
    peak = float(logits.max())
    log_total = peak + float(np.log(np.exp(logits - peak, dtype=np.float32).sum(dtype=np.float64)))
    best: tuple[tuple[int, bytes, float], ...] = ()
    if top > 0:
        n = min(top, logits.shape[0])
        ids = np.argpartition(-logits, n - 1)[:n]
        ids = ids[np.lexsort((ids, -logits[ids]))]
        best = tuple((int(i), piece(int(i)), float(logits[i]) - log_total) for i in ids)
    return Logprob(float(logits[chosen]) - log_total, best)
