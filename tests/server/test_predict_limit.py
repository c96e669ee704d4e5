"""A generation is bounded by ten context windows, as Ollama bounds it: with context shifting a
negative ``num_predict`` generated until the model stopped, which a model caught in a loop never
does (issue 14: the fuzz bench against SmolLM2 found a ``/v1/completions`` request with
``temperature: 0`` still generating after 300 s)."""

from __future__ import annotations

import pytest

from corral.engine.types import GenerateRequest
from corral.service.request import predict_limit
from tests.server.conftest import CHAT_A, ONE, Served

N_CTX = 256


@pytest.mark.parametrize(
    ("num_predict", "expected"),
    [(-1, 2560), (-2, 2560), (0, 2560), (1, 1), (100, 100), (2560, 2560), (2561, 2560)],
)
def test_predict_limit(num_predict: int, expected: int) -> None:
    assert predict_limit(num_predict, N_CTX) == expected


@pytest.mark.anyio
@pytest.mark.parametrize(("num_predict", "expected"), [(-1, 2560), (10**12, 2560), (7, 7)])
async def test_the_engine_gets_the_bounded_num_predict(
    srv: Served, num_predict: int, expected: int
) -> None:
    options = {"num_ctx": N_CTX}
    r = await srv.ask(CHAT_A, ONE, options=options)  # loads with that context
    assert r.status_code == 200, r.text
    engine = srv.runner(CHAT_A).engine
    submitted: list[int] = []
    submit = engine.submit

    def spy(req: GenerateRequest) -> None:
        submitted.append(req.sampling.num_predict)
        submit(req)

    engine.submit = spy  # type: ignore[method-assign]
    r = await srv.ask(CHAT_A, ONE, options={**options, "num_predict": num_predict})
    assert r.status_code == 200, r.text
    assert submitted == [expected]
