"""No route reads or writes outside ``OLLAMA_MODELS`` (issue 14).

Every name, digest and file field is tried with ``..``, absolute paths, backslashes,
percent-encodings and NULs; symbolic links planted in the store lead out of it; create's
Modelfile names files on the server's disk. After each test a sentinel directory next to the
store is byte-for-byte what it was, and the test's directory holds nothing new.

The policy these tests pin down: client-given names and digests only ever map below
``manifests/`` and ``blobs/`` (anything else is a 400); links that the store's owner made are
followed for reading, as Ollama follows them, but corral never creates, replaces or deletes a file
whose directory lies outside the store through one (a 403), and deleting a linked manifest or
blob removes the link, never its target. Create reads a file of the server's disk only when the
legacy ``modelfile`` payload names one, and only a GGUF (or a safetensors checkpoint directory)
is ever read past its first bytes; the current payload (``from``, ``files``) names models and
uploaded blobs only, as in Ollama.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.conftest import Served
from tests.tinygguf import write_tiny_llama

pytestmark = pytest.mark.anyio

SECRET = b"the secret outside the store\n"
MANIFESTS = Path("manifests/registry.ollama.ai/library")


def tree(root: Path) -> dict[str, str]:
    """Every entry under ``root`` (links not followed): a file's sha256, a link's target."""
    out: dict[str, str] = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(dirpath, name)
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = "-> " + os.readlink(path)
            elif path.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture
def outside(tmp_path: Path, models: Path) -> Iterator[Path]:
    """A sentinel directory next to the store: a secret, a valid manifest, a tiny GGUF, a
    directory. The test fails if anything in it changes, or anything new appears next to it."""
    root = tmp_path / "outside"
    root.mkdir()
    (root / "secret.txt").write_bytes(SECRET)
    (root / "model").mkdir()
    shutil.copy(models / MANIFESTS / "a" / "latest", root / "model" / "latest")
    write_tiny_llama(root / "tiny.gguf", context_length=64, tokens=["<s>", "t"])
    before, siblings = tree(root), sorted(p.name for p in tmp_path.iterdir())
    yield root
    assert tree(root) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == siblings


def store_files(models: Path) -> dict[str, str]:
    return tree(models)


async def post(
    srv: Served, path: str, body: dict[str, Any], method: str = "POST"
) -> httpx.Response:
    return await srv.client.request(method, path, content=json.dumps(body).encode())


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ---- names ---------------------------------------------------------------------------------------

TRAVERSING_NAMES = [
    "../outside/model",
    "..",
    "../..",
    "../../../../../../etc/passwd",
    "a/../../outside",
    "registry.ollama.ai/../../outside/model",
    "..%2f..%2foutside",
    "%2e%2e/%2e%2e/outside",
    "..\\..\\outside",
    "C:\\Windows\\System32",
    "/etc/passwd",
    "/tmp",
    "//server/share",
    "a\u0000/../../x",
    "a/.",
    "./a",
    "~/a",
]

NAME_FIELDS: list[tuple[str, str, dict[str, Any], str]] = [
    ("POST", "/api/generate", {"prompt": "ONE", "stream": False}, "model"),
    ("POST", "/api/chat", {"messages": [], "stream": False}, "model"),
    ("POST", "/api/embed", {"input": "x"}, "model"),
    ("POST", "/api/embeddings", {"prompt": "x"}, "model"),
    ("POST", "/api/show", {}, "model"),
    ("DELETE", "/api/delete", {}, "model"),
    ("POST", "/api/create", {"from": "a", "stream": False}, "model"),
    ("POST", "/api/create", {"model": "new", "stream": False}, "from"),
    ("POST", "/api/copy", {"destination": "b2"}, "source"),
    ("POST", "/api/copy", {"source": "a"}, "destination"),
    ("POST", "/api/pull", {"stream": False}, "model"),
    ("POST", "/api/push", {"stream": False}, "model"),
    ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]}, "model"),
    ("POST", "/v1/completions", {"prompt": "ONE"}, "model"),
    ("POST", "/v1/embeddings", {"input": "x"}, "model"),
]


@pytest.mark.parametrize(
    ("method", "path", "base", "name_field"),
    NAME_FIELDS,
    ids=[f"{p.rsplit('/', 1)[1]}-{f}" for _, p, _, f in NAME_FIELDS],
)
async def test_traversing_names_are_refused(
    srv: Served,
    models: Path,
    outside: Path,
    method: str,
    path: str,
    base: dict[str, Any],
    name_field: str,
) -> None:
    before = store_files(models)
    for name in TRAVERSING_NAMES:
        r = await post(srv, path, {**base, name_field: name}, method)
        assert r.status_code == 400, (name, r.text)
        error = r.json()["error"]
        message = error["message"] if path.startswith("/v1/") else error
        assert "invalid" in message, (name, message)
    assert store_files(models) == before


@pytest.mark.parametrize(
    "raw_path",
    [
        "/v1/models/..%2F..%2Foutside%2Fmodel",
        "/v1/models/../../outside/model",
        "/v1/models/%2e%2e/%2e%2e/etc/passwd",
        "/v1/models/%2Fetc%2Fpasswd",
        "/api/blobs/..%2F..%2Foutside%2Fsecret.txt",
        "/api/blobs/sha256:..%2F..%2Foutside",
        "/api/blobs/%2e%2e",
    ],
)
async def test_traversal_in_url_paths_is_refused(
    srv: Served, models: Path, outside: Path, raw_path: str
) -> None:
    """Sent byte for byte (no client-side normalisation of ``..``), every method."""
    before = store_files(models)
    for method in ("GET", "HEAD", "POST"):
        request = srv.client.build_request(method, srv.url, content=SECRET)
        request.url = request.url.copy_with(raw_path=raw_path.encode())
        r = await srv.client.send(request)
        assert 400 <= r.status_code < 500, (method, r.status_code, r.text)
        assert SECRET not in r.content
    assert store_files(models) == before


# ---- digests -------------------------------------------------------------------------------------

HEX = "ab" * 32
BAD_DIGESTS = [
    "sha256:../../outside/secret.txt",
    "sha256-..",
    "sha256:" + "0" * 63,
    "sha256:" + "0" * 65,
    "sha256:" + "g" * 64,
    "sha256:" + HEX + "/..",
    "sha256:" + HEX + "\u0000",
    "sha512:" + HEX + HEX,
    "sha256" + HEX,
    "../" + HEX,
    "/etc/passwd",
    HEX,
    "",
]


async def test_bad_digests_on_the_blob_routes(srv: Served, models: Path, outside: Path) -> None:
    before = store_files(models)
    for digest in BAD_DIGESTS:
        if "/" in digest or not digest:
            continue  # no such route (a 404); sent raw in the URL test above
        for method in ("HEAD", "POST"):
            url = "/api/blobs/" + urllib.parse.quote(digest, safe=":")
            r = await srv.client.request(method, url, content=SECRET)
            assert r.status_code == 400, (digest, r.status_code, r.text)
            if method == "POST":
                assert r.json() == {"error": "invalid digest format"}
    assert store_files(models) == before


@pytest.mark.parametrize("field", ["files", "adapters"])
async def test_bad_digests_in_create(srv: Served, models: Path, outside: Path, field: str) -> None:
    before = store_files(models)
    for digest in BAD_DIGESTS:
        files = {"model.gguf": digest}
        body: dict[str, Any] = {"model": "new", "stream": False, field: files}
        if field == "adapters":
            body["from"] = "a"
        r = await post(srv, "/api/create", body)
        assert r.status_code == 400, (digest, r.text)
        assert r.json()["error"] == "invalid digest format"
    for line in ("FROM @sha256:../../outside/secret.txt", "FROM a\nADAPTER @../x"):
        r = await post(srv, "/api/create", {"model": "new", "modelfile": line, "stream": False})
        assert r.status_code == 400, r.text
    assert store_files(models) == before


async def test_both_digest_spellings_name_the_same_blob(srv: Served, models: Path) -> None:
    data = b"a blob for both spellings"
    colon = digest_of(data)
    dash = colon.replace(":", "-")
    r = await srv.client.post(f"/api/blobs/{dash}", content=data)
    assert r.status_code == 201, r.text
    assert (models / "blobs" / dash).read_bytes() == data
    for spelling in (colon, dash):
        assert (await srv.client.head(f"/api/blobs/{spelling}")).status_code == 200
        r = await srv.client.post(f"/api/blobs/{spelling}", content=data)
        assert r.status_code == 200  # already there
    assert [p.name for p in (models / "blobs").iterdir() if p.name.startswith(dash)] == [dash]


# ---- the keys of create's files -----------------------------------------------------------------

BAD_FILE_NAMES = [
    "../model.gguf",
    "../../outside/x.gguf",
    "a/../../x.gguf",
    "a/../b.gguf",
    "/abs/model.gguf",
    "/",
    "./model.gguf",
    "a/./b.gguf",
    "a//b.gguf",
    "a/",
    "a\\..\\b.gguf",
    "..\\x.gguf",
    "x\u0000.gguf",
    "",
]


@pytest.mark.parametrize("field", ["files", "adapters"])
async def test_file_names_must_be_relative_paths_inside(
    srv: Served, models: Path, outside: Path, field: str
) -> None:
    """Go's io/fs.ValidPath, as Ollama checks them."""
    data = b"the bytes of a file"
    digest = digest_of(data)
    assert (await srv.client.post(f"/api/blobs/{digest}", content=data)).status_code == 201
    before = store_files(models)
    for name in BAD_FILE_NAMES:
        body: dict[str, Any] = {"model": "new", "stream": False, field: {name: digest}}
        if field == "adapters":
            body["from"] = "a"
        r = await post(srv, "/api/create", body)
        assert r.status_code == 400, (name, r.text)
        assert r.json()["error"] == "file path must be relative", name
    assert store_files(models) == before


# ---- symbolic links in the store -----------------------------------------------------------------


def manifest_of(models: Path, name: str) -> Path:
    return models / MANIFESTS / name / "latest"


async def names(srv: Served) -> list[str]:
    r = await srv.client.get("/api/tags")
    return sorted(m["name"] for m in r.json()["models"])


async def test_a_linked_model_directory_is_never_written_through(
    srv: Served, models: Path, outside: Path
) -> None:
    """``manifests/.../library/evil`` links to a directory outside: the model reads (as Ollama
    follows links) but delete, copy and create refuse to change anything there."""
    (models / MANIFESTS / "evil").symlink_to(outside / "model", target_is_directory=True)
    r = await post(srv, "/api/show", {"model": "evil"})
    assert r.status_code == 200, r.text

    r = await post(srv, "/api/delete", {"model": "evil"}, "DELETE")
    assert r.status_code == 403, r.text
    assert "outside the model store" in r.json()["error"]

    r = await post(srv, "/api/copy", {"source": "a", "destination": "evil"})
    assert r.status_code == 403, r.text
    r = await post(srv, "/api/copy", {"source": "a", "destination": "evil:other"})
    assert r.status_code == 403, r.text

    blob = json.loads(manifest_of(models, "a").read_bytes())["layers"][0]["digest"]
    body = {"model": "evil:new", "files": {"m.gguf": blob}, "stream": False}
    r = await post(srv, "/api/create", body)
    assert r.status_code == 403, r.text
    assert (models / MANIFESTS / "evil").is_symlink()  # the link itself is left alone


async def test_a_linked_registry_directory_is_never_written_through(
    srv: Served, models: Path, outside: Path
) -> None:
    """A link higher up (``manifests/evil.example`` -> outside): no directory is created there."""
    (models / "manifests" / "evil.example").symlink_to(outside, target_is_directory=True)
    r = await post(srv, "/api/copy", {"source": "a", "destination": "evil.example/ns/m"})
    assert r.status_code == 403, r.text
    r = await post(srv, "/api/copy", {"source": "a", "destination": "evil.example/model/latest"})
    assert r.status_code == 403, r.text


async def test_deleting_a_linked_manifest_removes_the_link_only(
    srv: Served, models: Path, outside: Path
) -> None:
    manifest_of(models, "linked").parent.mkdir()
    manifest_of(models, "linked").symlink_to(outside / "model" / "latest")
    assert "linked:latest" in await names(srv)
    r = await post(srv, "/api/delete", {"model": "linked"}, "DELETE")
    assert r.status_code == 200, r.text
    assert not os.path.lexists(manifest_of(models, "linked"))
    assert "linked:latest" not in await names(srv)
    # model a shares the linked manifest's blobs: they are still there
    assert (await post(srv, "/api/show", {"model": "a"})).status_code == 200


async def test_copying_over_a_linked_manifest_replaces_the_link(
    srv: Served, models: Path, outside: Path
) -> None:
    manifest_of(models, "linked").parent.mkdir()
    manifest_of(models, "linked").symlink_to(outside / "model" / "latest")
    r = await post(srv, "/api/copy", {"source": "b", "destination": "linked"})
    assert r.status_code == 200, r.text
    path = manifest_of(models, "linked")
    assert not path.is_symlink()
    assert path.read_bytes() == manifest_of(models, "b").read_bytes()


async def test_a_linked_blob_is_unlinked_never_its_target(
    srv: Served, models: Path, outside: Path
) -> None:
    """A model whose layer is a link to a file outside: deleting the model collects the link."""
    layer = digest_of(b"linked layer")
    link = models / "blobs" / layer.replace(":", "-")
    link.symlink_to(outside / "secret.txt")
    manifest = json.loads(manifest_of(models, "a").read_bytes())
    manifest["layers"].append(
        {"mediaType": "application/vnd.ollama.image.license", "digest": layer, "size": 1}
    )
    manifest_of(models, "victim").parent.mkdir()
    manifest_of(models, "victim").write_text(json.dumps(manifest))
    assert (await srv.client.head(f"/api/blobs/{layer}")).status_code == 200

    # an upload of those bytes finds the blob there and writes nothing through the link
    r = await srv.client.post(f"/api/blobs/{layer}", content=b"linked layer")
    assert r.status_code == 200, r.text

    r = await post(srv, "/api/delete", {"model": "victim"}, "DELETE")
    assert r.status_code == 200, r.text
    assert not os.path.lexists(link)  # the unreferenced link was collected; the target stays


async def test_a_store_whose_directories_are_links_works(
    tmp_path: Path, models: Path, outside: Path
) -> None:
    """Linking ``manifests`` or the whole store elsewhere (another disk) is the owner's choice
    and stays fully usable: the checks follow the store's own directories wherever they are."""
    from tests.fakerunner import Factory
    from tests.server.conftest import SCRIPT, serve

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.move(str(models / "manifests"), elsewhere / "manifests")
    (models / "manifests").symlink_to(elsewhere / "manifests", target_is_directory=True)
    link = tmp_path / "models-link"
    link.symlink_to(models, target_is_directory=True)
    async with serve(link, Factory(script=SCRIPT)) as srv:
        r = await post(srv, "/api/copy", {"source": "a", "destination": "copied"})
        assert r.status_code == 200, r.text
        assert (elsewhere / MANIFESTS / "copied" / "latest").is_file()
        r = await post(srv, "/api/delete", {"model": "copied"}, "DELETE")
        assert r.status_code == 200, r.text
        assert not (elsewhere / MANIFESTS / "copied").exists()
    link.unlink()
    (models / "manifests").unlink()
    shutil.move(str(elsewhere / "manifests"), models / "manifests")
    elsewhere.rmdir()


# ---- create and the server's own files -----------------------------------------------------------


def legacy(modelfile: str, **extra: Any) -> dict[str, Any]:
    return {"model": "new", "modelfile": modelfile, "stream": False, **extra}


async def test_create_never_reads_other_files_of_the_server(
    srv: Served, models: Path, outside: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The legacy Modelfile payload may name a GGUF on the server's disk; any other file, a
    directory without a model, or a missing file is a 400 that reveals nothing of its bytes."""
    before = store_files(models)
    secret = outside / "secret.txt"
    fifo = tmp_path_factory.mktemp("fifo") / "fifo"
    os.mkfifo(fifo)  # opening it for reading would block until a writer comes
    cases = [
        legacy(f"FROM {secret}"),
        legacy(f"FROM {outside / 'model'}"),
        legacy(f"FROM {outside}/nothing-here.gguf"),
        legacy("FROM /etc/passwd"),
        legacy("FROM /proc/self/environ"),
        legacy("FROM /"),
        legacy("FROM /proc"),
        legacy("FROM /dev/stdin"),
        legacy(f"FROM {fifo}"),
        legacy("FROM ../../../../../../../../etc/passwd"),
        legacy("FROM ./secret.txt", path=str(outside / "Modelfile")),
        legacy("FROM ../outside/secret.txt", path=str(models / "Modelfile")),
        legacy(f"FROM a\nADAPTER {secret}"),
        legacy(f"FROM a\nADAPTER {outside}/nothing-here"),
    ]
    for body in cases:
        r = await post(srv, "/api/create", body)
        assert r.status_code == 400, (body, r.text)
        assert SECRET.strip() not in r.content
        assert b"root:" not in r.content
    # the current payload never reads a path at all: "from" is a model name
    for source in (str(secret), str(outside / "tiny.gguf"), "/etc/passwd"):
        r = await post(srv, "/api/create", {"model": "new", "from": source, "stream": False})
        assert r.status_code == 400, r.text
        assert r.json()["error"] == "invalid model name"
    assert store_files(models) == before
    assert digest_of(SECRET).replace(":", "-") not in os.listdir(models / "blobs")


async def test_create_from_a_gguf_on_the_servers_disk_copies_it(
    srv: Served, models: Path, outside: Path
) -> None:
    """The documented legacy feature: the GGUF is copied into the store, the original untouched
    (the sentinel fixture checks it)."""
    gguf = outside / "tiny.gguf"
    r = await post(srv, "/api/create", legacy(f"FROM {gguf}"))
    assert r.status_code == 200, r.text
    blob = models / "blobs" / digest_of(gguf.read_bytes()).replace(":", "-")
    assert blob.read_bytes() == gguf.read_bytes() and not blob.is_symlink()
    assert "new:latest" in await names(srv)
