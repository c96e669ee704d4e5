"""``GET /metrics`` after real traffic on the in-process server (fake engine), read back with
``prometheus_client``'s own parser."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.server.conftest import CHAT_A, CHAT_B, EMBED, ENDLESS, Served

pytestmark = pytest.mark.anyio

A, B = f"{CHAT_A}:latest", f"{CHAT_B}:latest"


async def scrape(srv: Served) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = await srv.client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def get(samples: Mapping[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_counts_after_traffic(srv: Served) -> None:
    evals = prompts = 0
    for path, stream in (("/api/generate", False), ("/api/generate", True), ("/api/chat", True)):
        body: dict[str, Any] = {"model": CHAT_A, "stream": stream, "options": {"num_predict": 5}}
        if path == "/api/chat":
            body["messages"] = [{"role": "user", "content": "hi"}]
        else:
            body["prompt"] = "hi"
        r = await srv.client.post(path, json=body)
        final = json.loads(r.text.splitlines()[-1])
        evals += final["eval_count"]
        prompts += final["prompt_eval_count"]
    assert (
        await srv.client.post("/api/generate", json={"model": "nope", "prompt": "x"})
    ).status_code == 404
    assert (await srv.client.get("/api/tags")).status_code == 200
    assert (
        await srv.client.post("/api/embed", json={"model": EMBED, "input": "x"})
    ).status_code == 200

    m = await scrape(srv)
    total = "corral_http_requests_total"
    assert get(m, total, route="/api/generate", model=A, status="200") == 2
    assert get(m, total, route="/api/chat", model=A, status="200") == 1
    assert get(m, total, route="/api/generate", model="", status="404") == 1
    assert get(m, total, route="/api/tags", model="", status="200") == 1
    assert get(m, total, route="/api/embed", model=f"{EMBED}:latest", status="200") == 1
    assert get(m, "corral_generated_tokens_total", model=A) == evals == 15
    assert get(m, "corral_prompt_tokens_total", model=A) == prompts
    assert get(m, "corral_time_to_first_token_seconds_count", model=A) == 3
    assert get(m, "corral_http_request_duration_seconds_count", route="/api/chat", model=A) == 1
    assert get(m, "corral_model_loads_total", model=A) == 1
    assert get(m, "corral_model_load_seconds_count", model=A) == 1
    assert get(m, "corral_slots", model=A) >= 1
    assert get(m, "corral_busy_slots", model=A) == 0
    assert get(m, "corral_queued_requests") == 0
    assert get(m, "corral_loaded_models") == 2
    assert any(name == "corral_build_info" for name, _ in m)


async def test_busy_slots_while_streaming(srv: Served) -> None:
    body = {"model": CHAT_A, "prompt": ENDLESS, "stream": True}
    async with srv.client.stream("POST", "/api/generate", json=body) as r:
        async for _ in r.aiter_lines():
            break  # a token has arrived: the slot is busy
        m = await scrape(srv)
        assert get(m, "corral_busy_slots", model=A) == 1


@pytest.mark.settings(max_loaded_models=1)
async def test_loads_and_evictions(srv: Served) -> None:
    for model in (CHAT_A, CHAT_B, CHAT_A):
        r = await srv.client.post(
            "/api/generate", json={"model": model, "prompt": "ONE", "stream": False}
        )
        assert r.status_code == 200
    m = await scrape(srv)
    assert get(m, "corral_model_loads_total", model=A) == 2
    assert get(m, "corral_model_loads_total", model=B) == 1
    assert get(m, "corral_model_evictions_total", model=A) == 1
    assert get(m, "corral_model_evictions_total", model=B) == 1


async def test_a_failed_load_is_counted(srv: Served) -> None:
    srv.factory.failures[srv.model_path(CHAT_B)] = "broken"
    r = await srv.client.post("/api/generate", json={"model": CHAT_B, "prompt": "x"})
    assert r.status_code == 500
    m = await scrape(srv)
    assert get(m, "corral_model_load_failures_total", model=B) == 1
    assert get(m, "corral_http_requests_total", route="/api/generate", model=B, status="500") == 1


@pytest.mark.settings(api_key="s3cret")
async def test_metrics_need_the_api_key_when_one_is_set(srv: Served) -> None:
    assert (await srv.client.get("/metrics")).status_code == 401
    r = await srv.client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
    assert r.status_code == 200
    families = {f.name for f in text_string_to_metric_families(r.text)}
    assert "corral_http_requests" in families  # the refused scrape was counted too
