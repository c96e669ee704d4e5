"""The legacy create payload names files on the server's disk (``FROM /path``): only a client on
the server's own machine may have them read. A remote client is refused whether the file exists
or not, so it cannot probe the server's files."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from corral.create.spec import SERVER_PATHS_REFUSED
from tests.server.test_security import NO_OWN, OWN, serve_on

pytestmark = pytest.mark.anyio

MODELFILES = [
    "FROM /etc/hostname",
    "FROM /no/such/file.gguf",
    "FROM ../../etc",
    "FROM ~/secret.gguf",
    "FROM x\\..\\y.gguf",
    "FROM smollm2\nADAPTER ./lora.gguf",
]


@NO_OWN
@pytest.mark.parametrize("modelfile", MODELFILES)
async def test_a_remote_client_cannot_name_server_paths(models: Path, modelfile: str) -> None:
    async with serve_on(OWN or "", models) as url:  # reached at the machine's own address
        async with httpx.AsyncClient(timeout=30) as client:
            r = await client.post(
                url + "/api/create", json={"model": "x", "modelfile": modelfile, "stream": False}
            )
        assert r.status_code == 403
        assert r.json() == {"error": SERVER_PATHS_REFUSED}


@NO_OWN
async def test_a_remote_client_may_still_name_a_model(models: Path) -> None:
    async with serve_on(OWN or "", models) as url:
        async with httpx.AsyncClient(timeout=30) as client:
            body = {"model": "copy", "modelfile": "FROM a\nSYSTEM hi", "stream": False}
            r = await client.post(url + "/api/create", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "success"


async def test_a_local_client_may_name_server_paths(models: Path, tmp_path: Path) -> None:
    not_gguf = tmp_path / "notes.txt"
    not_gguf.write_text("hello")
    async with serve_on("127.0.0.1", models) as url:
        async with httpx.AsyncClient(timeout=30) as client:
            body = {"model": "x", "modelfile": f"FROM {not_gguf}", "stream": False}
            r = await client.post(url + "/api/create", json=body)
        assert r.status_code == 400  # the file was read: it is not a GGUF
        assert r.json() == {"error": "supplied file was not in GGUF format"}
