"""``/metrics`` of a real server after real traffic: parsed with ``prometheus_client``."""

from __future__ import annotations

import httpx
import ollama
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.serverproc import ServerProcess

pytestmark = pytest.mark.slow


def test_metrics_after_real_generations(
    server: ServerProcess, client: ollama.Client, smollm2_digest: str
) -> None:
    client.create(model="smol-metrics", files={"model.gguf": smollm2_digest})
    answers = [
        client.generate(model="smol-metrics", prompt="Hi", options={"num_predict": 4})
        for _ in range(3)
    ]
    text = httpx.get(server.url + "/metrics").text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }
    model = (("model", "smol-metrics:latest"),)
    generated = samples[("corral_generated_tokens_total", model)]
    assert generated == sum(a.eval_count or 0 for a in answers)  # no other test uses this name
    assert samples[("corral_time_to_first_token_seconds_count", model)] == 3
    # the runner is labelled with the name it was loaded under (models made from one GGUF with
    # the same options share a runner)
    rss = [v for (name, _), v in samples.items() if name == "corral_runner_resident_bytes"]
    assert rss and max(rss) > 10_000_000
    ok = (("model", "smol-metrics:latest"), ("route", "/api/generate"), ("status", "200"))
    assert samples[("corral_http_requests_total", ok)] == 3
