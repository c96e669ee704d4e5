"""Progress output of ``corral pull`` / ``corral push``: one bar per blob, spinners, ``success``.

Exact streams come from a scripted API (:mod:`tests.cli.fakeapi`); the slow test pushes to and
pulls from Debian's ``docker-registry`` through a real corral server.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import ollama
import pexpect
import pytest

from tests.cli.conftest import cli_env, run_cli
from tests.cli.fakeapi import FakeApi
from tests.registry.dockerregistry import DockerRegistry, registry_binary
from tests.serverproc import ServerProcess


@pytest.fixture
def fake_api() -> Iterator[FakeApi]:
    api = FakeApi().start()
    yield api
    api.stop()


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if line.strip()]


def test_pull_shows_a_bar_per_blob_and_ends_with_success(fake_api: FakeApi, tmp_path: Path) -> None:
    res = run_cli(["pull", "some/model:tag", "--insecure"], cli_env(fake_api.url, tmp_path))
    assert res.code == 0, res.stderr
    assert res.stdout == ""
    lines = _lines(res.stderr)
    assert lines[0] == "pulling manifest"
    bars = [line for line in lines if line.startswith("pulling ") and "%" in line]
    assert len(bars) == 2
    assert re.match(r"pulling a{12}: +100% .*1\.5 MB$", bars[0])
    assert re.match(r"pulling b{12}: +100% .*25 MB$", bars[1])
    assert lines[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    assert fake_api.requests == [
        ("pull", {"model": "some/model:tag", "insecure": True, "stream": True})
    ]


def test_pull_error_in_the_stream(fake_api: FakeApi, tmp_path: Path) -> None:
    res = run_cli(["pull", "broken"], cli_env(fake_api.url, tmp_path))
    assert res.code == 1
    assert _lines(res.stderr) == [
        "pulling manifest",
        "Error: pull model manifest: file does not exist",
    ]


def test_push_shows_bars_success_and_where_the_model_is(fake_api: FakeApi, tmp_path: Path) -> None:
    res = run_cli(["push", "myhost:5000/me/model"], cli_env(fake_api.url, tmp_path))
    assert res.code == 0, res.stderr
    lines = _lines(res.stderr)
    assert lines[0] == "retrieving manifest"
    assert re.match(r"pushing a{12} +100% .*1\.5 MB$", lines[1])
    assert re.match(r"pushing b{12} +100% .*25 MB$", lines[2])
    assert lines[-1] == "success"
    assert res.stdout == "\nYou can find your model at:\n\n\tmyhost:5000/me/model:latest\n"


def test_pull_bars_show_speed_and_time_left_in_a_terminal(tmp_path: Path) -> None:
    api = FakeApi(steps=12, delay=0.25).start()
    try:
        env = cli_env(api.url, tmp_path)
        env.pop("NO_COLOR")
        env["TERM"] = "xterm-256color"
        child = pexpect.spawn(
            sys.executable,
            ["-m", "corral.cli.main", "pull", "some/model"],
            env=env,
            encoding="utf-8",
            dimensions=(24, 120),
            timeout=30,
        )
        # A running bar: percentage, done/total, speed and time left.
        child.expect(r"pulling b{12}: +\d+% .*\d+(\.\d)? MB/ *\d+ MB +\d+(\.\d)? [KM]B/s +\d+s")
        child.expect("success")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
    finally:
        api.stop()


@pytest.mark.slow
@pytest.mark.skipif(registry_binary() is None, reason="docker-registry is not installed")
def test_push_and_pull_through_a_real_registry(tmp_path: Path, smollm2_gguf: Path) -> None:
    registry = DockerRegistry(tmp_path / "registry").start()
    server = ServerProcess(tmp_path / "models").start()
    try:
        client = ollama.Client(host=server.url)
        client.create(model="smol", files={"m.gguf": client.create_blob(smollm2_gguf)})
        remote = f"{registry.host}/library/smol:cli"
        env = cli_env(server.url, tmp_path)
        assert run_cli(["cp", "smol", remote], env).code == 0

        res = run_cli(["push", remote, "--insecure"], env)
        assert res.code == 0, res.stderr
        lines = _lines(res.stderr)
        assert lines[0] == "retrieving manifest"
        assert any(re.match(r"pushing [0-9a-f]{12}.* 100% .*MB", line) for line in lines)
        assert lines[-2:] == ["pushing manifest", "success"]
        assert f"\t{remote}" in res.stdout

        assert run_cli(["rm", remote, "smol"], env).code == 0
        res = run_cli(["pull", remote, "--insecure"], env)
        assert res.code == 0, res.stderr
        lines = _lines(res.stderr)
        assert lines[0] == "pulling manifest"
        bars = [line for line in lines if re.match(r"pulling [0-9a-f]{12}: +100% ", line)]
        assert len(bars) == len({b.split(":")[0] for b in bars}) >= 2
        assert any(line.endswith("98 MB") for line in bars)
        assert lines[-1] == "success"
        listed = run_cli(["list"], env).stdout
        assert remote in listed
    finally:
        server.stop()
        registry.stop()
    assert os.path.exists(tmp_path / "models")
