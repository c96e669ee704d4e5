"""The JSON body limit (``CORRAL_MAX_BODY``, issue 14): a larger body is answered 413 in the
route's error shape, before a byte of it is read when ``Content-Length`` declares it, and as soon
as the limit is crossed when it is chunked, without waiting for the rest (which is discarded if
the client sends it anyway, and the connection serves its next request); blob uploads are exempt
and stay digest-verified and invisible until complete.

The server is uvicorn on a real socket (:func:`tests.server.conftest.serve`) and the client a raw
socket, so the test controls exactly which bytes were sent when the answer arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from corral.config import DEFAULT_MAX_BODY, Settings, parse_byte_size
from tests.fakerunner import Factory
from tests.server.conftest import CHAT_A, HANG_GUARD, SCRIPT, Served, serve, until
from tests.serverproc import ServerProcess

pytestmark = pytest.mark.anyio

LIMIT = 4096
JSON_ROUTES = [
    ("POST", "/api/generate"),
    ("POST", "/api/chat"),
    ("POST", "/api/embed"),
    ("POST", "/api/embeddings"),
    ("POST", "/api/show"),
    ("POST", "/api/copy"),
    ("DELETE", "/api/delete"),
    ("POST", "/api/create"),
    ("POST", "/api/pull"),
    ("POST", "/api/push"),
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/completions"),
    ("POST", "/v1/embeddings"),
    ("POST", "/v1/responses"),
    ("POST", "/v1/messages"),
    ("POST", "/v1/messages/count_tokens"),
]


@pytest.fixture
async def small(models: Path) -> AsyncIterator[Served]:
    """A server whose JSON body limit is :data:`LIMIT` bytes."""
    async with serve(models, Factory(script=SCRIPT), max_body=LIMIT) as srv:
        yield srv


# ---- a raw HTTP/1.1 client ---------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


@dataclass
class Raw:
    """One connection: the request head is written at once, the body as the test decides."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    sent: int = 0  # body bytes written so far
    started: asyncio.Event = field(default_factory=asyncio.Event)  # the status line arrived

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, port: int, method: str, path: str, headers: dict[str, str]
    ) -> AsyncIterator[Raw]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        writer.write(head.encode())
        await writer.drain()
        try:
            yield cls(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def chunk(self, data: bytes) -> None:
        self.writer.write(b"%x\r\n%s\r\n" % (len(data), data))
        await self.writer.drain()
        self.sent += len(data)

    async def answer(self) -> Answer:
        status_line = await self.reader.readline()
        self.started.set()
        headers: dict[str, str] = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await self.reader.readexactly(int(headers["content-length"]))
        return Answer(int(status_line.split()[1]), headers, body)

    async def closed_by_server(self) -> bool:
        """True once the server has closed the connection (EOF, or a reset on our side)."""
        try:
            return await self.reader.read(1) == b""
        except ConnectionError:
            return True

    async def next_request_is_served(self, port: int) -> bool:
        """After the body: the same connection serves another request."""
        self.writer.write(f"GET /api/version HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        await self.writer.drain()
        answer = await self.answer()
        return answer.status == 200 and "version" in str(answer.json())


def error_text(path: str, body: object) -> str:
    """The message of an error body, checking its shape: Anthropic's on /v1/messages, OpenAI's
    elsewhere on /v1, else Ollama's."""
    assert isinstance(body, dict), body
    if path.startswith("/v1/messages"):
        assert body["type"] == "error" and body["error"]["type"] == "request_too_large", body
        return str(body["error"]["message"])
    assert set(body) == {"error"}, body
    error = body["error"]
    if path.startswith("/v1/"):
        assert isinstance(error, dict) and {"message", "type"} <= set(error), body
        return str(error["message"])
    assert isinstance(error, str), body
    return error


# ---- Content-Length over the limit ---------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), JSON_ROUTES)
async def test_declared_length_over_the_limit_is_refused_before_the_body(
    small: Served, method: str, path: str
) -> None:
    headers = {"Content-Type": "application/json", "Content-Length": str(LIMIT + 1)}
    async with Raw.open(small.port, method, path, headers) as raw:
        # not a byte of the body is sent: the answer cannot wait for it
        async with asyncio.timeout(HANG_GUARD):
            answer = await raw.answer()
            assert raw.sent == 0
            assert answer.status == 413
            assert "connection" not in answer.headers
            assert "request body too large" in error_text(path, answer.json())
            # a client that sends its body anyway (most do) has it discarded, then is served
            raw.writer.write(b"{" * (LIMIT + 1))
            assert await raw.next_request_is_served(small.port)
    assert small.factory.loads == []


async def test_a_client_waiting_to_continue_is_refused_and_closed(small: Served) -> None:
    headers = {"Content-Length": str(LIMIT + 1), "Expect": "100-continue"}
    async with Raw.open(small.port, "POST", "/api/chat", headers) as raw:
        async with asyncio.timeout(HANG_GUARD):
            answer = await raw.answer()
            assert (answer.status, answer.headers["connection"]) == (413, "close")
            assert await raw.closed_by_server()  # it will not send the body: nothing to skip


async def test_default_limit_is_64_mib(srv: Served) -> None:
    assert DEFAULT_MAX_BODY == Settings().max_body == 64 << 20
    headers = {"Content-Type": "application/json", "Content-Length": str((64 << 20) + 1)}
    async with Raw.open(srv.port, "POST", "/api/generate", headers) as raw:
        async with asyncio.timeout(HANG_GUARD):
            answer = await raw.answer()
    assert (raw.sent, answer.status) == (0, 413)
    assert str(64 << 20) in error_text("/api/generate", answer.json())


async def test_a_body_of_exactly_the_limit_is_served(small: Served) -> None:
    body = json.dumps({"model": CHAT_A, "prompt": "ONE", "stream": False}).encode()
    body += b" " * (LIMIT - len(body))
    r = await small.client.post("/api/generate", content=body)
    assert r.status_code == 200, r.text
    assert r.json()["done"] is True


# ---- chunked bodies over the limit ---------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), JSON_ROUTES)
async def test_chunked_body_is_cut_at_the_limit(small: Served, method: str, path: str) -> None:
    """The client has a body ten times the limit to send in 256-byte chunks, but once it has
    sent more than the limit it waits for the answer to start before sending on: a server that
    read the whole body before answering would leave this test waiting (failing at the guard).
    The rest, sent after the answer, is discarded and the connection serves its next request."""
    headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    piece = b"a" * 256
    total = 10 * LIMIT
    async with Raw.open(small.port, method, path, headers) as raw:

        async def send_body() -> None:
            await raw.chunk(b'{"model": "a", "prompt": "')
            while raw.sent < total:
                if raw.sent > LIMIT:
                    await raw.started.wait()  # the answer started: the rest is never needed
                    return
                await raw.chunk(piece)

        async with asyncio.timeout(HANG_GUARD):
            sender = asyncio.create_task(send_body())
            answer = await raw.answer()
            await sender
            assert answer.status == 413
            assert "request body too large" in error_text(path, answer.json())
            assert raw.sent < total  # the body was not sent, let alone read, in full
            while raw.sent < total:
                await raw.chunk(piece)
            raw.writer.write(b"0\r\n\r\n")
            assert await raw.next_request_is_served(small.port)
    assert small.factory.loads == []
    await until(small.idle, "nothing is left waiting")


async def test_a_chunked_body_under_the_limit_is_served(small: Served) -> None:
    body = json.dumps({"model": CHAT_A, "prompt": "ONE", "stream": False}).encode()
    headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    async with Raw.open(small.port, "POST", "/api/generate", headers) as raw:
        for i in range(0, len(body), 7):
            await raw.chunk(body[i : i + 7])
        raw.writer.write(b"0\r\n\r\n")
        async with asyncio.timeout(HANG_GUARD):
            answer = await raw.answer()
    assert answer.status == 200, answer.body
    assert isinstance(reply := answer.json(), dict) and reply["response"] == "x"


# ---- blob uploads are exempt -------------------------------------------------------------------


def blob_files(models: Path) -> set[str]:
    return {p.name for p in (models / "blobs").iterdir()}


async def test_blob_uploads_are_not_limited(small: Served, models: Path) -> None:
    data = bytes(range(256)) * 400  # 100 KiB, 25 times the JSON limit
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = await small.client.post(f"/api/blobs/{digest}", content=data)
    assert r.status_code == 201, r.text
    assert (models / "blobs" / digest.replace(":", "-")).read_bytes() == data
    assert (await small.client.head(f"/api/blobs/{digest}")).status_code == 200


async def test_a_blob_with_the_wrong_digest_leaves_nothing(small: Served, models: Path) -> None:
    before = blob_files(models)
    data = b"not what the digest says" * 1000
    claimed = "sha256:" + hashlib.sha256(b"something else").hexdigest()
    r = await small.client.post(f"/api/blobs/{claimed}", content=data)
    assert r.status_code == 400
    assert r.json()["error"].startswith(f'digest mismatch, expected "{claimed}", got "sha256:')
    assert blob_files(models) == before
    assert (await small.client.head(f"/api/blobs/{claimed}")).status_code == 404


async def test_an_interrupted_upload_is_never_visible(small: Served, models: Path) -> None:
    before = blob_files(models)
    data = b"z" * 200_000
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    headers = {"Content-Length": str(len(data))}
    async with Raw.open(small.port, "POST", f"/api/blobs/{digest}", headers) as raw:
        raw.writer.write(data[: len(data) // 2])
        await raw.writer.drain()
        await until(lambda: blob_files(models) != before, "the upload's temp file appears")
        (partial,) = blob_files(models) - before
        assert partial.endswith("-partial")  # not under the blob's name
        assert (await small.client.head(f"/api/blobs/{digest}")).status_code == 404
    # the client went away mid-body: the temp file goes, no blob appears
    await until(lambda: blob_files(models) == before, "the partial upload is removed")
    assert (await small.client.head(f"/api/blobs/{digest}")).status_code == 404


# ---- the setting ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "size"),
    [
        ("1048576", 1 << 20),
        ("64MB", 64 << 20),
        ("64MiB", 64 << 20),
        ("64m", 64 << 20),
        ("512 KB", 512 << 10),
        ("2G", 2 << 30),
        ("1tb", 1 << 40),
        ("100B", 100),
    ],
)
def test_byte_sizes(raw: str, size: int) -> None:
    assert parse_byte_size(raw) == size
    assert Settings.from_env({"CORRAL_MAX_BODY": raw}).max_body == size


@pytest.mark.parametrize("raw", ["0", "-5", "1.5MB", "lots", "MB", "10 PB", "64iB"])
def test_bad_sizes_warn_and_keep_the_default(raw: str, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ValueError):
        parse_byte_size(raw)
    with caplog.at_level(logging.WARNING):
        assert Settings.from_env({"CORRAL_MAX_BODY": raw}).max_body == DEFAULT_MAX_BODY
    assert "CORRAL_MAX_BODY" in caplog.text


@pytest.mark.slow
def test_corral_serve_reads_the_limit_from_its_environment(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "models", env={"CORRAL_MAX_BODY": "1KiB"}).start()
    try:
        big = json.dumps({"model": "x", "prompt": "p" * 2000}).encode()
        r = httpx.post(f"{server.url}/api/generate", content=big, timeout=HANG_GUARD)
        assert r.status_code == 413
        assert "more than 1024 bytes" in r.json()["error"]
        r = httpx.post(f"{server.url}/v1/embeddings", content=big, timeout=HANG_GUARD)
        assert r.status_code == 413
        assert "more than 1024 bytes" in r.json()["error"]["message"]
        r = httpx.post(f"{server.url}/api/show", json={"model": "x"}, timeout=HANG_GUARD)
        assert r.status_code == 404  # a small body is served as ever
    finally:
        server.stop()
