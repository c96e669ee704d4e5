"""Ranged blob GETs read straight into the caller's buffer: the hot path of a pull.

httpx hands a body over in 64 KiB pieces that h11 copies twice on the way; that costs a pull
about half of the speed of ``curl`` on a fast link. Part bodies are therefore read with the
standard library's :mod:`http.client`, whose ``readinto`` fills the caller's buffer with little
more than the socket copy. Connections are kept alive in a small pool per host. Auth tokens,
challenges and the error wording come from the :class:`~corral.registry.client.RegistryClient`;
redirects are followed, with credentials only for the registry's own host.

When an HTTP proxy from the environment applies to a URL, the request goes through httpx
instead (which knows proxies), behind the same reader interface.

Failures while connecting or reading raise :class:`NetworkError` (``stalled`` when no byte came
for ``stall_timeout`` seconds); error answers raise
:class:`~corral.registry.client.RegistryError`.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import threading
import urllib.request
from collections.abc import Iterator
from typing import Final, Protocol
from urllib.parse import urljoin, urlsplit

import httpx

from corral.registry.client import (
    MAX_AUTH_ROUNDS,
    MAX_REDIRECTS,
    NOT_FOUND_MESSAGE,
    UNAUTHORIZED_MESSAGE,
    RegistryClient,
    RegistryError,
)

_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_CONTENT_RANGE: Final = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
MAX_IDLE_PER_HOST: Final = 16


class NetworkError(Exception):
    """A connection failed or broke, or stalled (no byte for ``stall_timeout`` seconds)."""

    def __init__(self, message: str, stalled: bool = False) -> None:
        super().__init__(message)
        self.stalled = stalled


class RangeBody(Protocol):
    """An open ranged answer. ``skip`` leading bytes are not wanted (a 200 to a ranged GET)."""

    url: str
    skip: int

    def readinto(self, buf: memoryview) -> int: ...

    def close(self) -> None: ...


class RangeFetcher:
    """Opens ranged GETs for one :class:`RegistryClient`; thread-safe."""

    def __init__(self, client: RegistryClient) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._idle: dict[tuple[str, str], list[http.client.HTTPConnection]] = {}

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()

    def open(self, url: str, start: int, stop: int) -> RangeBody:
        """GET bytes ``[start, stop)`` of ``url``, following redirects and auth challenges."""
        headers = {"Range": f"bytes={start}-{stop - 1}"}
        auth_rounds = 0
        for _ in range(MAX_REDIRECTS + MAX_AUTH_ROUNDS + 1):
            self.client.check_cancelled()
            if _proxied(url):
                return _HttpxBody(self.client, url, start, stop)
            conn, resp, key = self._send(url, headers)
            status = resp.status
            if status in (200, 206):
                skip = start
                if status == 206:
                    got = resp.getheader("Content-Range") or ""
                    m = _CONTENT_RANGE.fullmatch(got.strip())
                    if m is None or int(m.group(1)) != start:
                        self._discard(conn, resp)
                        raise RegistryError(f"unexpected Content-Range {got!r}")
                    skip = 0
                return _Body(self, conn, resp, key, url, skip)
            location = resp.getheader("Location")
            challenge = resp.getheader("WWW-Authenticate") or ""
            if status in _REDIRECTS and location:
                self._finish(conn, resp, key)
                url = urljoin(url, location)
                continue
            if status == 401 and self.client.same_host(url):
                self._finish(conn, resp, key)
                if auth_rounds < MAX_AUTH_ROUNDS and self.client.authenticate(challenge):
                    auth_rounds += 1
                    continue
                raise RegistryError(UNAUTHORIZED_MESSAGE, 401)
            body = b""
            with contextlib.suppress(OSError, http.client.HTTPException):
                body = resp.read(1024)
            self._discard(conn, resp)
            if status == 404:
                raise RegistryError(NOT_FOUND_MESSAGE, 404)
            text = body.decode(errors="replace").strip()
            raise RegistryError(f"{status}: {text}" if text else str(status), status)
        raise RegistryError(f"maximum redirects exceeded ({MAX_REDIRECTS})")

    # ---- connections -------------------------------------------------------------------------

    def _send(
        self, url: str, headers: dict[str, str]
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse, tuple[str, str]]:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise RegistryError(f"unsupported blob URL {url!r}")
        key = (parts.scheme, parts.netloc)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        hdrs = {**headers, "User-Agent": self.client.user_agent}
        if auth := self.client.auth_header(url):
            hdrs["Authorization"] = auth
        for reused in (True, False):
            conn = self._checkout(key) if reused else self._connect(key)
            if conn is None:
                continue
            try:
                conn.request("GET", target, headers=hdrs)
                return conn, conn.getresponse(), key
            except TimeoutError as e:
                conn.close()
                raise NetworkError(f"GET {parts.netloc}: timed out", stalled=True) from e
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                if reused:
                    continue  # a kept-alive connection the server had closed: try a new one
                raise NetworkError(f"GET {parts.netloc}: {e or type(e).__name__}") from e
        raise AssertionError("unreachable")

    def _checkout(self, key: tuple[str, str]) -> http.client.HTTPConnection | None:
        with self._lock:
            conns = self._idle.get(key)
            return conns.pop() if conns else None

    def _connect(self, key: tuple[str, str]) -> http.client.HTTPConnection:
        scheme, netloc = key
        options = self.client.options
        conn: http.client.HTTPConnection
        if scheme == "https":
            conn = http.client.HTTPSConnection(
                netloc, timeout=options.connect_timeout, context=self.client.pool.ssl_context
            )
        else:
            conn = http.client.HTTPConnection(netloc, timeout=options.connect_timeout)
        try:
            conn.connect()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise NetworkError(f"connect {netloc}: {e or type(e).__name__}") from e
        assert conn.sock is not None
        conn.sock.settimeout(options.stall_timeout)
        return conn

    def _finish(
        self,
        conn: http.client.HTTPConnection,
        resp: http.client.HTTPResponse,
        key: tuple[str, str],
    ) -> None:
        """Read a small answer to its end, then keep the connection if it can be reused."""
        try:
            resp.read(1 << 16)
        except (OSError, http.client.HTTPException):
            conn.close()
            return
        self._release(conn, resp, key)

    def _discard(self, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse) -> None:
        resp.close()
        conn.close()

    def _release(
        self,
        conn: http.client.HTTPConnection,
        resp: http.client.HTTPResponse,
        key: tuple[str, str],
    ) -> None:
        if not resp.isclosed() or resp.will_close:
            resp.close()
            conn.close()
            return
        with self._lock:
            conns = self._idle.setdefault(key, [])
            if len(conns) < MAX_IDLE_PER_HOST:
                conns.append(conn)
                return
        conn.close()


class _Body:
    """A ranged answer read through :mod:`http.client`.

    A body with a ``Content-Length`` is read with ``readinto1`` on the response's buffered
    socket file: it returns as soon as some bytes are there (progress stays fine-grained on
    slow links, and a stall loses nothing already received). Chunked bodies, which registries
    do not use for blobs, go through ``HTTPResponse.readinto``.
    """

    def __init__(
        self,
        fetcher: RangeFetcher,
        conn: http.client.HTTPConnection,
        resp: http.client.HTTPResponse,
        key: tuple[str, str],
        url: str,
        skip: int,
    ) -> None:
        self._fetcher, self._conn, self._resp, self._key = fetcher, conn, resp, key
        self.url, self.skip = url, skip
        self._remaining: int | None = None if resp.chunked else resp.length

    def readinto(self, buf: memoryview) -> int:
        try:
            if self._remaining is None:
                return self._resp.readinto(buf)
            if self._remaining <= 0:
                return 0
            n = self._resp.fp.readinto1(buf[: self._remaining])
            self._remaining -= n
            return n
        except TimeoutError as e:
            raise NetworkError("stalled", stalled=True) from e
        except (OSError, http.client.HTTPException) as e:
            raise NetworkError(str(e) or type(e).__name__) from e

    def close(self) -> None:
        if self._remaining == 0:
            self._resp.close()  # the body was read to its end: the connection can be reused
        self._fetcher._release(self._conn, self._resp, self._key)


class _HttpxBody:
    """The same reader over httpx, for URLs that must go through a proxy."""

    def __init__(self, client: RegistryClient, url: str, start: int, stop: int) -> None:
        try:
            self._resp = client.open_range(url, start, stop)
        except httpx.TransportError as e:
            raise NetworkError(str(e) or type(e).__name__) from e
        self.url = str(self._resp.url)
        self.skip: int = self._resp.extensions.get("skip", 0)
        self._chunks: Iterator[bytes] = self._resp.iter_raw()
        self._pending = memoryview(b"")

    def readinto(self, buf: memoryview) -> int:
        try:
            while not self._pending:
                self._pending = memoryview(next(self._chunks))
        except StopIteration:
            return 0
        except httpx.TimeoutException as e:
            raise NetworkError("stalled", stalled=True) from e
        except httpx.TransportError as e:
            raise NetworkError(str(e) or type(e).__name__) from e
        n = min(len(buf), len(self._pending))
        buf[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def close(self) -> None:
        self._resp.close()


def _proxied(url: str) -> bool:
    """Whether an environment proxy applies to ``url`` (as httpx would use one)."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(parts.hostname or "")
