"""A ``context`` id outside SmolLM2's vocabulary is refused with a 400 and the runner lives on:
llama.cpp's detokenizer throws ``std::out_of_range`` on such an id, which aborted the runner
process (issue 14). The server checks ``context`` before the runner sees it, and the engine's
``detokenize`` refuses such ids too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest
from prometheus_client.parser import text_string_to_metric_families

from corral.engine.llamacpp import LlamaEngine
from corral.engine.types import LoadSpec
from tests.serverproc import ServerProcess

pytestmark = pytest.mark.slow

BAD_IDS = (131615132, 49152, -1)  # SmolLM2's vocabulary has 49152 tokens


@pytest.fixture(scope="module")
def smol(client: ollama.Client, smollm2_digest: str) -> str:
    client.create(model="smollm2:135m", files={"model.gguf": smollm2_digest})
    return "smollm2:135m"


def loads(server: ServerProcess, model: str) -> float:
    """``corral_model_loads_total`` of ``model`` (a runner that died is loaded again)."""
    text = httpx.get(f"{server.url}/metrics", timeout=30).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "corral_model_loads_total" and model in sample.labels.values():
                return sample.value
    return 0.0


def generate(server: ServerProcess, body: dict[str, object]) -> httpx.Response:
    return httpx.post(f"{server.url}/api/generate", json=body, timeout=120)


def test_an_out_of_vocabulary_context_id_is_a_400_and_the_runner_lives_on(
    server: ServerProcess, smol: str
) -> None:
    ok = {"model": smol, "prompt": "Hi", "stream": False, "options": {"num_predict": 2}}
    first = generate(server, ok)
    assert first.status_code == 200, first.text
    loaded = loads(server, smol)
    assert loaded >= 1
    for bad in BAD_IDS:
        r = generate(server, {**ok, "context": [*first.json()["context"], bad]})
        assert r.status_code == 400, r.text
        assert r.json() == {"error": "context holds a token id outside the model's vocabulary"}
    again = generate(server, {**ok, "context": first.json()["context"]})
    assert again.status_code == 200, again.text
    assert loads(server, smol) == loaded  # the same runner answered: none died and reloaded


@pytest.fixture(scope="module")
def engine(smollm2_gguf: Path) -> Iterator[LlamaEngine]:
    eng = LlamaEngine(LoadSpec(model_path=str(smollm2_gguf), n_ctx=256, n_parallel=1))
    yield eng
    eng.close()


@pytest.mark.parametrize("bad", BAD_IDS)
def test_the_engine_refuses_to_detokenize_an_id_outside_the_vocabulary(
    engine: LlamaEngine, bad: int
) -> None:
    with pytest.raises(ValueError, match="outside the model's vocabulary"):
        engine.detokenize([1, bad])
    assert engine.detokenize([1, 2]) == "<|im_start|><|im_end|>"  # still usable
