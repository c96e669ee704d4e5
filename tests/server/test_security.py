"""The Host check, CORS and the API key (issue 14), against Ollama's rules.

The Host check is Ollama's ``allowedHostsMiddleware``: only a server listening on loopback checks
``Host`` headers. CORS is Ollama's ``gin-contrib/cors`` setup: the local origins by default,
``OLLAMA_ORIGINS`` extends them, and a request from any other origin is refused with a 403 (even a
"simple" POST a browser sends without asking first). Both are tried on uvicorn servers really
listening on 127.0.0.1, ::1, localhost, 0.0.0.0, :: and this machine's own address.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from corral.config import HostAddr, Settings
from corral.scheduler import Scheduler
from corral.server.app import create_app
from corral.server.security import (
    OriginPolicy,
    allowed_host,
    loopback_bind,
    parse_ip,
    split_host_port,
)
from corral.service import Service
from corral.store import Store
from tests.fakerunner import Factory
from tests.server.conftest import HANG_GUARD, SCRIPT, until

pytestmark = pytest.mark.anyio


def own_address() -> str | None:
    """This machine's address on its default route (no packet is sent), if it has one."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))
            address: str = s.getsockname()[0]
    except OSError:
        return None
    ip = parse_ip(address)
    return address if ip is not None and not ip.is_loopback else None


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


OWN = own_address()
NO_OWN = pytest.mark.skipif(OWN is None, reason="this machine has no non-loopback address")
NO_V6 = pytest.mark.skipif(not ipv6_loopback(), reason="IPv6 loopback is not available")


# ---- Host headers: Ollama's rules ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("hostport", "host"),
    [
        ("localhost:11434", "localhost"),
        ("[::1]:80", "::1"),
        ("[::1]:", "::1"),
        (":80", ""),
        ("localhost", None),  # missing port
        ("[::1]", None),  # missing port
        ("::1", None),  # too many colons
        ("a:b:c", None),
        ("[::1]x:80", None),
        ("a]:80", None),
        ("[a:80", None),
        ("", None),
    ],
)
def test_split_host_port_as_go(hostport: str, host: str | None) -> None:
    assert split_host_port(hostport) == host


ALLOWED_HOSTS = [
    "",
    "localhost",
    "localhost:11434",
    "LocalHost:1",
    "127.0.0.1",
    "127.0.0.1:11434",
    "127.9.9.9:80",
    "::1",  # not split (too many colons), then an IP
    "[::1]:11434",
    "[::ffff:127.0.0.1]:80",
    "10.1.2.3",
    "172.16.0.1:8080",
    "172.31.255.255",
    "192.168.1.10:11434",
    "[fd00::5]:1",
    "0.0.0.0",
    "[::]:11434",
    "app.localhost",
    "a.b.localhost:3000",
    "printer.local",
    "svc.internal:80",
    socket.gethostname(),
    socket.gethostname().upper() + ":11434",
]
REFUSED_HOSTS = [
    "evil.example",
    "evil.example:11434",
    "8.8.8.8",
    "8.8.8.8:11434",
    "172.32.0.1",
    "169.254.1.1",  # link-local: only a local interface's own address passes
    "100.64.0.1",
    "192.0.2.254",  # TEST-NET (Python calls it private; Go does not)
    "[2001:db8::1]:80",
    "[::1]",  # Go's SplitHostPort fails (no port) and "[::1]" is not an address
    "localhost.evil.example",
    "evillocalhost",
    "local",
    "127.0.0.1:80:80",
    "127.0.0.1.evil.example",
]


@pytest.mark.parametrize("host", ALLOWED_HOSTS)
def test_allowed_hosts(host: str) -> None:
    assert allowed_host(host)


@pytest.mark.parametrize("host", REFUSED_HOSTS)
def test_refused_hosts(host: str) -> None:
    assert not allowed_host(host)


@NO_OWN
def test_this_machines_own_address_is_allowed() -> None:
    assert OWN is not None
    assert allowed_host(OWN) and allowed_host(f"{OWN}:11434")


@pytest.mark.parametrize(
    ("bind", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.1", False),
    ],
)
def test_which_binds_check_hosts(bind: str, loopback: bool) -> None:
    assert loopback_bind(bind) is loopback


# ---- real servers on each address ----------------------------------------------------------------


@contextlib.asynccontextmanager
async def serve_on(bind: str, models: Path, **settings: Any) -> AsyncIterator[str]:
    """The app listening on ``bind`` (resolved as a listening socket resolves it); yields the
    URL a local client reaches it at."""
    family, kind, proto, _, address = socket.getaddrinfo(
        bind, 0, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    port = sock.getsockname()[1]
    ip = parse_ip(str(address[0]))
    assert ip is not None
    if ip.is_unspecified:
        ip = parse_ip("::1" if ip.version == 6 else "127.0.0.1")
        assert ip is not None
    url = f"http://[{ip}]:{port}" if ip.version == 6 else f"http://{ip}:{port}"
    config = Settings(host=HostAddr(host=bind, port=port), models=models, **settings)
    service = Service.build(config, Store(models), Scheduler(config, Factory(script=SCRIPT)))
    server = uvicorn.Server(uvicorn.Config(create_app(config, service), log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await until(lambda: server.started or task.done(), "the server starts")
        assert not task.done(), "the server stopped at start-up"
        yield url
    finally:
        server.should_exit = True
        await task
        sock.close()


BINDS = [
    pytest.param("127.0.0.1", True, id="127.0.0.1"),
    pytest.param("::1", True, id="ipv6-loopback", marks=NO_V6),
    pytest.param("localhost", True, id="localhost"),
    pytest.param("0.0.0.0", False, id="0.0.0.0"),
    pytest.param("::", False, id="ipv6-any", marks=NO_V6),
    pytest.param(OWN or "", False, id="own-address", marks=NO_OWN),
]


async def get(url: str, path: str = "/api/tags", **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=HANG_GUARD) as client:
        return await client.get(url + path, headers=headers)


@pytest.mark.parametrize(("bind", "checks"), BINDS)
async def test_host_check_by_bind_address(models: Path, bind: str, checks: bool) -> None:
    """On loopback a foreign Host is a 403 (DNS rebinding); on any other bind every Host is
    served, as with Ollama (there the clients are expected to be remote)."""
    async with serve_on(bind, models) as url:
        port = url.rsplit(":", 1)[1]
        for host in ("evil.example", f"evil.example:{port}", "8.8.8.8", "169.254.1.1"):
            r = await get(url, Host=host)
            assert r.status_code == (403 if checks else 200), (host, r.text)
            if checks:
                assert r.json() == {"error": "forbidden"}
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "app.localhost"):
            assert (await get(url, Host=host)).status_code == 200, host
        if OWN is not None:
            assert (await get(url, Host=f"{OWN}:{port}")).status_code == 200
        # the health check is no exception: Ollama checks every route
        r = await get(url, "/", Host="evil.example")
        assert r.status_code == (403 if checks else 200)


# ---- CORS ----------------------------------------------------------------------------------------

DEFAULT_ALLOWED = [
    "http://localhost",
    "https://localhost",
    "http://localhost:3000",
    "https://localhost:8443",
    "http://127.0.0.1",
    "http://127.0.0.1:8080",
    "https://127.0.0.1:11434",
    "http://0.0.0.0:5173",
    "app://obsidian.md",
    "file://",
    "tauri://localhost",
    "vscode-webview://abcdef",
    "vscode-file://vscode-app",
]
DEFAULT_REFUSED = [
    "https://evil.example",
    "http://localhost.evil.example",
    "http://127.0.0.1.evil.example",
    "http://evil.example:11434",
    "null",
    "chrome-extension://abcdef",
    "http://10.0.0.5:3000",
    "HTTP://LOCALHOST",
]


def test_default_origins_as_ollamas() -> None:
    policy = OriginPolicy(Settings.from_env({}).origins)
    assert all(policy.allows(o) for o in DEFAULT_ALLOWED)
    assert not any(policy.allows(o) for o in DEFAULT_REFUSED)


def test_ollama_origins_extend_the_defaults() -> None:
    env = {"OLLAMA_ORIGINS": "https://a.example,chrome-extension://*,*.b.example,https://c.*"}
    policy = OriginPolicy(Settings.from_env(env).origins)
    for origin in ["https://a.example", "chrome-extension://abcdef", "https://x.b.example"]:
        assert policy.allows(origin), origin
    for origin in ["https://c.example", "https://c.d.e", "http://localhost:3000"]:
        assert policy.allows(origin), origin
    for origin in ["https://a.example.evil", "https://b.example.evil", "http://c.example"]:
        assert not policy.allows(origin), origin
    assert OriginPolicy(Settings.from_env({"OLLAMA_ORIGINS": "*"}).origins).allows("null")


CORS_BINDS = [b for b in BINDS if b.id in ("127.0.0.1", "0.0.0.0", "own-address")]


@pytest.mark.parametrize(("bind", "checks"), CORS_BINDS)
async def test_cors_by_origin_with_any_bind(models: Path, bind: str, checks: bool) -> None:
    del checks
    async with serve_on(bind, models) as url:
        for origin in DEFAULT_ALLOWED:
            r = await get(url, Origin=origin)
            assert r.status_code == 200, origin
            assert r.headers["access-control-allow-origin"] == origin
        for origin in DEFAULT_REFUSED:
            r = await get(url, Origin=origin)
            assert r.status_code == 403, origin
            assert "access-control-allow-origin" not in r.headers
            assert r.json() == {"error": "forbidden: origin not allowed (OLLAMA_ORIGINS)"}
        # /v1 answers in OpenAI's shape
        r = await get(url, "/v1/models", Origin="https://evil.example")
        assert r.status_code == 403 and r.json()["error"]["message"].startswith("forbidden")


@pytest.mark.parametrize(("bind", "checks"), CORS_BINDS)
async def test_preflight_with_any_bind(models: Path, bind: str, checks: bool) -> None:
    del checks
    ask = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, authorization, x-stainless-os",
    }
    async with serve_on(bind, models, api_key="k") as url, httpx.AsyncClient() as client:
        for path in ("/api/chat", "/v1/chat/completions", "/api/delete"):
            origin = "http://localhost:3000"
            r = await client.options(url + path, headers={**ask, "Origin": origin})
            assert r.status_code == 200, r.text  # no key needed to ask
            assert r.headers["access-control-allow-origin"] == origin
            assert "POST" in r.headers["access-control-allow-methods"]
            assert "authorization" in r.headers["access-control-allow-headers"].lower()
            r = await client.options(url + path, headers={**ask, "Origin": "https://evil.example"})
            assert r.status_code == 403
            assert "access-control-allow-origin" not in r.headers


async def test_a_foreign_page_cannot_post_without_asking(models: Path) -> None:
    """A "simple" cross-site request (text/plain, no preflight) never reaches a route: Ollama's
    CORS refuses it, so a web page cannot copy, create or pull through a visitor's browser."""
    async with serve_on("0.0.0.0", models) as url, httpx.AsyncClient() as client:
        headers = {"Origin": "https://evil.example", "Content-Type": "text/plain"}
        body = '{"source": "a", "destination": "planted"}'
        r = await client.post(url + "/api/copy", content=body, headers=headers)
        assert r.status_code == 403
        assert not (models / "manifests/registry.ollama.ai/library/planted").exists()
        # the same request from an allowed origin is served
        headers["Origin"] = "http://localhost:8080"
        r = await client.post(url + "/api/copy", content=body, headers=headers)
        assert r.status_code == 200, r.text


async def test_a_same_origin_request_needs_no_allowed_origin(models: Path) -> None:
    """``Origin: http://<Host>`` is a page served from the server's own address calling it: not
    cross-origin, so not refused (gin-contrib/cors lets it through the same way)."""
    async with serve_on("0.0.0.0", models) as url:
        port = url.rsplit(":", 1)[1]
        host = f"box.example:{port}"
        r = await get(url, Host=host, Origin=f"http://{host}")
        assert r.status_code == 200
        r = await get(url, Host=host, Origin=f"http://other.example:{port}")
        assert r.status_code == 403


async def test_ollama_origins_reach_the_server(models: Path) -> None:
    origins = Settings.from_env({"OLLAMA_ORIGINS": "https://*.corp.example"}).origins
    async with serve_on("127.0.0.1", models, origins=origins) as url:
        r = await get(url, Origin="https://ui.corp.example")
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "https://ui.corp.example"
        assert (await get(url, Origin="https://corp.example.evil")).status_code == 403
        assert (await get(url, Origin="http://localhost:1")).status_code == 200


# ---- the API key ---------------------------------------------------------------------------------


@pytest.fixture
def compare_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bytes, bytes]]:
    """Every comparison the server makes of a key, recorded as it happens."""
    calls: list[tuple[bytes, bytes]] = []
    real: Callable[[bytes, bytes], bool] = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)  # what corral.server.auth calls
    return calls


KEY = "s3cret-key-0123456789"


@pytest.mark.parametrize(
    "offered",
    [
        "s3cret-key-0123456788",  # the same length, last byte wrong
        "X3cret-key-0123456789",  # the same length, first byte wrong
        "s3cret",  # a prefix
        "s3cret-key-0123456789-and-more",  # an extension
        "k",
    ],
)
async def test_wrong_keys_are_compared_in_constant_time(
    models: Path, compare_calls: list[tuple[bytes, bytes]], offered: str
) -> None:
    """Whatever the length of the key offered, the answer comes from one
    ``hmac.compare_digest`` over the whole key (no early exit on a length or a prefix)."""
    async with serve_on("127.0.0.1", models, api_key=KEY) as url:
        r = await get(url, Authorization=f"Bearer {offered}")
        assert r.status_code == 401
        assert r.json() == {"error": "unauthorized"}
        assert compare_calls == [(offered.encode(), KEY.encode())]
        compare_calls.clear()
        r = await get(url, Authorization=f"Bearer {KEY}")
        assert r.status_code == 200
        assert compare_calls == [(KEY.encode(), KEY.encode())]


async def test_unicode_keys(models: Path) -> None:
    key = "clé-🔑-ключ"
    async with (
        serve_on("127.0.0.1", models, api_key=key) as url,
        httpx.AsyncClient(timeout=HANG_GUARD) as client,
    ):

        async def status(header: bytes, path: str = "/api/tags") -> httpx.Response:
            return await client.get(url + path, headers=[(b"Authorization", header)])

        assert (await status(b"Bearer " + key.encode())).status_code == 200
        assert (await status(b"Bearer " + "clé-🔑-ключ!".encode())).status_code == 401
        assert (await status(b"Bearer \xff\xfe\xc3")).status_code == 401  # not UTF-8 at all
        assert (await status(b"Bearer " + key.encode()[:-1])).status_code == 401  # a cut char
        assert (await status("Bearer clé".encode("latin-1"))).status_code == 401
        r = await status(b"Bearer \xff", "/v1/models")
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "invalid_api_key"


async def test_a_key_that_is_not_ascii_in_the_environment(models: Path) -> None:
    """``CORRAL_API_KEY`` as the environment gives it (non-UTF-8 bytes surrogate-escaped)."""
    key = b"k\xe9y".decode("utf-8", "surrogateescape")
    settings = Settings.from_env({"CORRAL_API_KEY": key})
    assert settings.api_key == key
    async with (
        serve_on("127.0.0.1", models, api_key=settings.api_key) as url,
        httpx.AsyncClient(timeout=HANG_GUARD) as client,
    ):
        r = await client.get(url + "/api/tags", headers=[(b"Authorization", b"Bearer k\xe9y")])
        assert r.status_code == 200
        r = await client.get(url + "/api/tags", headers=[(b"Authorization", b"Bearer key")])
        assert r.status_code == 401
