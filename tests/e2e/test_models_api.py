"""Model management end to end: the official ``ollama`` client against a real corral server.

Covers blob upload, both create payload styles, list, show, copy, delete with blob GC, and the
4xx answers for bad input.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import ollama
import pytest

from tests.serverproc import ServerProcess

pytestmark = pytest.mark.slow


def _blob_files(server: ServerProcess) -> set[str]:
    return {p.name for p in (server.models / "blobs").iterdir()}


def test_root_and_version(server: ServerProcess) -> None:
    r = httpx.get(server.url)
    assert r.status_code == 200 and r.text == "Ollama is running"
    assert httpx.head(server.url).status_code == 200
    v = httpx.get(f"{server.url}/api/version").json()["version"]
    assert all(part.isdigit() for part in v.split("."))


def test_blob_upload_and_head(
    client: ollama.Client, server: ServerProcess, smollm2_digest: str, smollm2_gguf: Path
) -> None:
    assert httpx.head(f"{server.url}/api/blobs/{smollm2_digest}").status_code == 200
    blob = server.models / "blobs" / ("sha256-" + smollm2_digest[7:])
    assert blob.stat().st_size == smollm2_gguf.stat().st_size
    missing = "sha256:" + "0" * 64
    r = httpx.head(f"{server.url}/api/blobs/{missing}")
    assert r.status_code == 404
    # a second upload of the same blob is accepted without rewriting it
    r = httpx.post(f"{server.url}/api/blobs/{smollm2_digest}", content=b"ignored")
    assert r.status_code == 200


def test_create_from_files_and_list_show(client: ollama.Client, smollm2_digest: str) -> None:
    statuses = [
        p.status
        for p in client.create(
            model="smol-files", files={"model.gguf": smollm2_digest}, stream=True
        )
    ]
    assert statuses[0] == "parsing GGUF"
    assert f"using existing layer {smollm2_digest}" in statuses
    assert "using autodetected template chatml" in statuses
    assert statuses[-2:] == ["writing manifest", "success"]

    listed = {m.model: m for m in client.list().models}
    m = listed["smol-files:latest"]
    assert m.details is not None
    assert m.details.family == "llama"
    assert m.details.format == "gguf"
    assert m.details.quantization_level == "Q4_1"
    assert m.details.parameter_size is not None and m.details.parameter_size.endswith("M")
    assert m.size is not None and m.size > 90_000_000
    assert m.digest is not None and len(m.digest) == 64

    info = client.show("smol-files")
    assert info.template is not None and "<|im_start|>" in info.template
    assert info.details is not None and info.details.family == "llama"
    assert info.capabilities is not None and "completion" in info.capabilities
    assert info.modelinfo is not None
    assert info.modelinfo["general.architecture"] == "llama"
    assert info.modelinfo["llama.context_length"] > 0
    assert info.parameters is not None and "stop" in info.parameters
    assert info.modelfile is not None and "FROM " in info.modelfile
    assert "TEMPLATE" in info.modelfile


def test_create_new_style_with_overrides(client: ollama.Client, smollm2_digest: str) -> None:
    client.create(
        model="smol-pirate",
        from_="smol-files",
        system="You are a pirate.",
        parameters={"temperature": 0.2, "stop": ["<|im_end|>", "Arr"]},
        messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Ahoy"}],
        license="MIT licence text",
    )
    info = client.show("smol-pirate")
    raw = httpx.post(f"{client._client.base_url}/api/show", json={"model": "smol-pirate"}).json()
    assert raw["system"] == "You are a pirate."
    assert raw["messages"] == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Ahoy"},
    ]
    assert info.parameters is not None
    assert "temperature" in info.parameters and '"Arr"' in info.parameters
    assert info.license == "MIT licence text"
    assert info.modelfile is not None and "SYSTEM You are a pirate." in info.modelfile
    assert "MESSAGE assistant Ahoy" in info.modelfile
    # the template is inherited from the base model
    assert info.template is not None and "<|im_start|>" in info.template


def test_create_old_style_modelfile(
    server: ServerProcess, smollm2_gguf: Path, smollm2_digest: str
) -> None:
    modelfile = f'FROM {smollm2_gguf}\nPARAMETER num_ctx 1024\nSYSTEM """Be brief."""\n'
    r = httpx.post(
        f"{server.url}/api/create",
        json={"name": "smol-old", "modelfile": modelfile, "stream": False},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "success"}
    r = httpx.post(
        f"{server.url}/api/create",
        json={"name": "smol-at", "modelfile": f"FROM @{smollm2_digest}\nPARAMETER top_k 7"},
        timeout=120,
    )
    lines = [json.loads(x) for x in r.text.splitlines()]
    assert lines[0] == {"status": "parsing modelfile"}
    assert lines[-1] == {"status": "success"}
    show = httpx.post(f"{server.url}/api/show", json={"model": "smol-old"}).json()
    assert show["system"] == "Be brief."
    assert "num_ctx" in show["parameters"]
    # the server-side file was copied into the store as the same blob as the upload
    assert _blob_files(server) >= {"sha256-" + smollm2_digest[7:]}


def test_copy_and_delete_collects_blobs(
    client: ollama.Client, server: ServerProcess, smollm2_digest: str
) -> None:
    client.create(model="smol-gc", from_="smol-files", system="unique system for gc test")
    system_blob = "sha256-" + hashlib.sha256(b"unique system for gc test").hexdigest()
    assert system_blob in _blob_files(server)
    client.copy("smol-gc", "smol-gc-copy")
    names = {m.model for m in client.list().models}
    assert {"smol-gc:latest", "smol-gc-copy:latest"} <= names
    client.delete("smol-gc")
    assert system_blob in _blob_files(server)  # still used by the copy
    client.delete("smol-gc-copy")
    assert system_blob not in _blob_files(server)
    assert "sha256-" + smollm2_digest[7:] in _blob_files(server)  # other models still use it
    with pytest.raises(ollama.ResponseError) as e:
        client.delete("smol-gc")
    assert e.value.status_code == 404
    assert "not found" in e.value.error


def test_case_insensitive_names(client: ollama.Client) -> None:
    client.copy("smol-files", "Case-Test:Tag")
    assert client.show("case-test:TAG").details is not None
    client.copy("smol-files", "CASE-TEST:tag")
    matches = [m.model for m in client.list().models if m.model.lower() == "case-test:tag"]
    assert matches == ["Case-Test:Tag"]
    client.delete("case-test:tag")


# ---- bad input --------------------------------------------------------------------------------

BAD_REQUESTS = [
    # (method, path, body, status, error substring)
    ("POST", "/api/create", b"{not json", 400, "invalid JSON"),
    ("POST", "/api/create", b'{"model": "x", "files": {', 400, "unexpected EOF"),
    ("POST", "/api/create", b"", 400, "missing request body"),
    ("POST", "/api/create", b"[]", 400, "JSON object"),
    ("POST", "/api/create", b'{"model": 5, "from": "smol-files"}', 400, '"model"'),
    (
        "POST",
        "/api/create",
        b'{"model": "x", "stream": "yes", "from": "smol-files"}',
        400,
        '"stream"',
    ),
    ("POST", "/api/create", b'{"model": "x"}', 400, "neither 'from' or 'files'"),
    (
        "POST",
        "/api/create",
        b'{"model": "bad name!", "from": "smol-files"}',
        400,
        "invalid model name",
    ),
    (
        "POST",
        "/api/create",
        b'{"model": "../../etc", "from": "smol-files"}',
        400,
        "invalid model name",
    ),
    (
        "POST",
        "/api/create",
        b'{"model": "x", "modelfile": "PARAMETER top_k 1"}',
        400,
        "no FROM line",
    ),
    (
        "POST",
        "/api/create",
        b'{"model": "x", "modelfile": "FROM smol-files\\nPARAMETER top_k x"}',
        400,
        "invalid int value",
    ),
    (
        "POST",
        "/api/create",
        b'{"model": "x", "files": {"../m.gguf": "sha256:' + b"0" * 64 + b'"}}',
        400,
        "file path must be relative",
    ),
    (
        "POST",
        "/api/create",
        b'{"model": "x", "files": {"m.gguf": "nope"}}',
        400,
        "invalid digest format",
    ),
    (
        "POST",
        "/api/create",
        b'{"model": "x", "files": {"m.gguf": "sha256:' + b"0" * 64 + b'"}}',
        404,
        "not found",
    ),
    (
        "POST",
        "/api/create",
        b'{"model": "x", "from": "smol-files", "template": "{{ .Foo "}',
        400,
        "template",
    ),
    (
        "POST",
        "/api/create",
        b'{"model": "x", "from": "smol-files", "parameters": {"top_k": "a"}}',
        400,
        "top_k",
    ),
    ("POST", "/api/show", b'{"model": "no-such-model"}', 404, "not found"),
    ("POST", "/api/show", b'{"model": "bad name!"}', 400, "invalid model name"),
    ("POST", "/api/show", b'{"model": ["x"]}', 400, '"model"'),
    ("POST", "/api/show", b"{", 400, "unexpected EOF"),
    ("POST", "/api/copy", b'{"source": "no-such-model", "destination": "y"}', 404, "not found"),
    (
        "POST",
        "/api/copy",
        b'{"source": "smol-files", "destination": "bad name!"}',
        400,
        "destination",
    ),
    ("POST", "/api/copy", b'{"source": "smol-files"}', 400, "destination"),
    ("DELETE", "/api/delete", b'{"model": "no-such-model"}', 404, "not found"),
    ("DELETE", "/api/delete", b'{"model": "a/b/c/d/e"}', 400, "invalid"),
    ("DELETE", "/api/delete", b"nonsense", 400, "invalid JSON"),
    ("POST", "/api/blobs/sha256:123", b"abc", 400, "invalid digest format"),
    ("POST", "/api/blobs/sha256:" + "0" * 64, b"abc", 400, "digest mismatch"),
    ("HEAD", "/api/blobs/md5:abc", b"", 400, ""),
    ("GET", "/api/nope", b"", 404, "404"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "message"), BAD_REQUESTS)
def test_bad_input(
    server: ServerProcess,
    smollm2_digest: str,
    method: str,
    path: str,
    body: bytes,
    status: int,
    message: str,
) -> None:
    _ = smollm2_digest
    if "smol-files" in body.decode():
        httpx.post(
            f"{server.url}/api/create",
            timeout=60,
            json={"model": "smol-files", "files": {"model.gguf": smollm2_digest}, "stream": False},
        )
    r = httpx.request(method, server.url + path, content=body, timeout=30)
    assert r.status_code == status, r.text
    if method != "HEAD":
        assert message in r.json()["error"]
    # nothing was created by a refused request
    assert not (server.models / "manifests/registry.ollama.ai/library/x").exists()


def test_oversized_body(server: ServerProcess) -> None:
    big = b'{"model": "x", "modelfile": "' + b"a" * (65 * 1024 * 1024) + b'"}'
    r = httpx.post(f"{server.url}/api/create", content=big, timeout=60)
    assert r.status_code == 413
    assert "too large" in r.json()["error"]


def test_not_gguf_file_rejected(server: ServerProcess, tmp_path: Path) -> None:
    data = b"this is not a gguf file"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert httpx.post(f"{server.url}/api/blobs/{digest}", content=data).status_code == 201
    r = httpx.post(
        f"{server.url}/api/create", json={"model": "notgguf", "files": {"x.gguf": digest}}
    )
    assert r.status_code == 400
    assert "GGUF" in r.json()["error"]


@pytest.mark.parametrize("host", ["evil.example.com", "evil.example.com:11434", "8.8.8.8"])
def test_foreign_host_header_is_refused(server: ServerProcess, host: str) -> None:
    # DNS rebinding: a page on another origin resolving its name to 127.0.0.1.
    r = httpx.get(f"{server.url}/api/tags", headers={"Host": host})
    assert r.status_code == 403 and r.json() == {"error": "forbidden"}


@pytest.mark.parametrize("host", ["localhost:11434", "127.0.0.1", "[::1]:11434", "app.localhost"])
def test_local_host_headers_are_served(server: ServerProcess, host: str) -> None:
    r = httpx.get(f"{server.url}/api/tags", headers={"Host": host})
    assert r.status_code == 200
