"""``corral run`` output details against a scripted API: thinking, embeddings, a pull first."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import cli_env, run_cli
from tests.cli.fakeapi import FakeApi


@pytest.fixture
def api() -> Iterator[FakeApi]:
    fake = FakeApi().start()
    yield fake
    fake.stop()


def test_thinking_is_shown_then_the_answer(api: FakeApi, tmp_path: Path) -> None:
    res = run_cli(["run", "thinker", "what is the answer?"], cli_env(api.url, tmp_path))
    assert res.code == 0, res.stderr
    assert res.stdout == "Thinking...\nLet me see.\n...done thinking.\n\nForty-two.\n\n"
    gen = [body for kind, body in api.requests if kind == "generate"]
    # A thinking model thinks unless told otherwise.
    assert gen[-1]["think"] is True and gen[-1]["prompt"] == "what is the answer?"


def test_hidethinking_and_think_false(api: FakeApi, tmp_path: Path) -> None:
    env = cli_env(api.url, tmp_path)
    res = run_cli(["run", "thinker", "--hidethinking", "q"], env)
    assert (res.code, res.stdout) == (0, "Forty-two.\n\n")
    res = run_cli(["run", "thinker", "--think=false", "q"], env)
    assert (res.code, res.stdout) == (0, "Forty-two.\n\n")
    gen = [body for kind, body in api.requests if kind == "generate"]
    assert gen[-1]["think"] is False
    res = run_cli(["run", "thinker", "--think=high", "q"], env)
    assert [body for kind, body in api.requests if kind == "generate"][-1]["think"] == "high"


def test_embedding_model_prints_the_vector(api: FakeApi, tmp_path: Path) -> None:
    env = cli_env(api.url, tmp_path)
    res = run_cli(["run", "embedder", "some text"], env)
    assert (res.code, res.stdout) == (0, "[0.5,-1.25,3.0]\n")
    assert ("embed", {"model": "embedder", "input": "some text"}) in api.requests
    res = run_cli(["run", "embedder"], env)
    assert res.code == 1
    assert res.stderr == (
        'Error: embedding models require input text. Usage: corral run embedder "your text here"\n'
    )


def test_run_pulls_a_missing_model_first(api: FakeApi, tmp_path: Path) -> None:
    res = run_cli(["run", "absent", "hi", "--insecure"], cli_env(api.url, tmp_path))
    # The scripted pull succeeds but the model still does not exist: the show error is final.
    assert res.code == 1
    lines = [line.rstrip() for line in res.stderr.splitlines() if line.strip()]
    assert lines[0] == "pulling manifest"
    assert lines[-2:] == ["success", "Error: model not found"]
    assert ("pull", {"model": "absent", "insecure": True, "stream": True}) in api.requests
