"""kill -9 during a create and during an upload, restart, and check the store."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from pathlib import Path

import httpx
import ollama
import pytest

from tests.serverproc import ServerProcess

pytestmark = pytest.mark.slow


def _check_store(server: ServerProcess) -> None:
    """Every manifest parses and every blob it names exists with the right digest."""
    for path in (server.models / "manifests").rglob("*"):
        if not path.is_file():
            continue
        doc = __import__("json").loads(path.read_bytes())
        for layer in [doc["config"], *doc["layers"]]:
            blob = server.models / "blobs" / layer["digest"].replace(":", "-")
            data = blob.read_bytes()
            assert len(data) == layer["size"]
            assert "sha256:" + hashlib.sha256(data).hexdigest() == layer["digest"]


def test_kill_during_create_and_upload(tmp_path: Path, smollm2_gguf: Path) -> None:
    models = tmp_path / "models"
    server = ServerProcess(models).start()
    try:
        client = ollama.Client(host=server.url)
        client.create(model="before", files={"m.gguf": client.create_blob(smollm2_gguf)})

        # 1. kill -9 while a create is copying a server-side GGUF into the store
        def slow_create() -> None:
            try:
                with httpx.stream(
                    "POST",
                    f"{server.url}/api/create",
                    json={"model": "during", "modelfile": f"FROM {smollm2_gguf}\nSYSTEM other"},
                    timeout=60,
                ) as r:
                    for line in r.iter_lines():
                        if "copying file" in line:
                            server.kill()
                            return
            except httpx.HTTPError:
                pass

        t = threading.Thread(target=slow_create)
        t.start()
        t.join(60)
        server.kill()
        server = ServerProcess(models).start()
        client = ollama.Client(host=server.url)
        names = {m.model for m in client.list().models}
        assert "before:latest" in names
        assert "during:latest" not in names
        _check_store(server)

        # 2. kill -9 in the middle of a blob upload
        data = smollm2_gguf.read_bytes()
        digest = "sha256:" + hashlib.sha256(data).hexdigest() + ""
        fake = "sha256:" + hashlib.sha256(data + b"x").hexdigest()
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            head = (
                f"POST /api/blobs/{fake} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Length: {len(data) + 1}\r\n\r\n"
            ).encode()
            sock.sendall(head + data[: len(data) // 2])
            time.sleep(0.5)
            server.kill()
        server = ServerProcess(models).start()
        client = ollama.Client(host=server.url)
        assert {m.model for m in client.list().models} >= {"before:latest"}
        assert not (models / "blobs" / fake.replace(":", "-")).exists()
        assert (models / "blobs" / digest.replace(":", "-")).exists()
        _check_store(server)
        assert client.show("before").details is not None
    finally:
        server.stop()
