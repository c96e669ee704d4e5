"""CLI fixtures: a corral server on the fake engine, and helpers that run ``corral`` commands.

``cli(...)`` runs ``python -m corral.cli.main`` in a subprocess (stdin, stdout and stderr are
pipes, as in a script); ``invoke(...)`` runs the Typer app in-process with ``CliRunner``.
Both point ``OLLAMA_HOST`` at the server and ``HOME`` at a temporary directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import ollama
import pytest
from typer.testing import CliRunner

from corral.cli.main import app
from tests.serverproc import ServerProcess


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


CliFn = Callable[..., Result]


def cli_env(url: str, home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA_", "CORRAL_"))}
    env.update(
        {
            "OLLAMA_HOST": url,
            "HOME": str(home),
            "PROMPT_TOOLKIT_NO_CPR": "1",
            "COLUMNS": "100",
            "NO_COLOR": "1",
        }
    )
    env.update(extra or {})
    return env


def run_cli(
    args: Sequence[str],
    env: dict[str, str],
    *,
    input: str | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
) -> Result:
    proc = subprocess.run(
        [sys.executable, "-m", "corral.cli.main", *args],
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="session")
def fake_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose runners use the deterministic fake engine."""
    proc = ServerProcess(
        tmp_path_factory.mktemp("cli-fake") / "models", env={"CORRAL_ENGINE": "fake"}
    ).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def base_model(fake_server: ServerProcess, smollm2_gguf: Path) -> str:
    """``smol`` (SmolLM2's GGUF; the fake engine never reads its weights), made over HTTP."""
    client = ollama.Client(host=fake_server.url)
    digest = client.create_blob(smollm2_gguf)
    client.create(
        model="smol",
        files={"smol.gguf": digest},
        system="You are terse.",
        parameters={"temperature": 0.5},
        license="MIT\nsecond line\nthird line",
    )
    return "smol:latest"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    return h


@pytest.fixture
def cli(fake_server: ServerProcess, home: Path) -> CliFn:
    """Run ``corral ARGS...`` in a subprocess against the fake-engine server."""

    def call(*args: str, input: str | None = None, cwd: Path | None = None) -> Result:
        return run_cli(args, cli_env(fake_server.url, home), input=input, cwd=cwd)

    return call


@pytest.fixture
def invoke(fake_server: ServerProcess, home: Path) -> CliFn:
    """Run ``corral ARGS...`` in-process (Typer's CliRunner) against the fake-engine server."""

    def call(*args: str, input: str | None = None) -> Result:
        runner = CliRunner()
        env: dict[str, str | None] = {
            "OLLAMA_HOST": fake_server.url,
            "HOME": str(home),
            "COLUMNS": "100",
        }
        res = runner.invoke(app, list(args), input=input, env=env, catch_exceptions=False)
        return Result(res.exit_code, res.stdout, res.stderr)

    return call
