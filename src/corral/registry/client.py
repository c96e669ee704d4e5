"""An httpx client of the OCI distribution API (v2) for one repository of one registry.

It speaks what pull and push need: manifest GET/PUT (Docker schema 2), blob HEAD and ranged GET
(answered with 200/206 or a redirect), uploads (cross-repository mount, chunked PATCH with
``Content-Range``, PUT with the digest). Every request goes through one path that

- answers a ``401`` with ``WWW-Authenticate: Bearer realm=...,service=...,scope=...`` by asking
  the realm for a token (anonymously, or with basic credentials when configured) and retrying,
  and a ``Basic`` challenge by retrying with the configured credentials;
- follows redirects itself, sending credentials only to the registry's own host (a blob GET is
  typically redirected to a pre-signed CDN URL that must not see them);
- retries transient failures (connection errors, 5xx, 429) with jittered exponential back-off;
- turns every other answer into a :class:`RegistryError` with Ollama's wording (a 404 is
  ``file does not exist``, a refused login ``unauthorized: access denied``).

The scheme is https unless ``insecure`` is set, which (as in Ollama) means plain http. Reads
time out after ``stall_timeout`` seconds without a byte. Blob bodies of a pull are read by
:mod:`corral.registry.rangeget`, which shares this client's tokens, TLS context and wording.
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

import httpx

import corral
from corral.errors import CorralError, InternalError
from corral.names import ModelName
from corral.registry.auth import Challenge, basic_header, parse_challenge

MANIFEST_ACCEPT: Final = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_CONTENT_TYPE: Final = MANIFEST_ACCEPT
MAX_REDIRECTS: Final = 10
MAX_AUTH_ROUNDS: Final = 2
MAX_ERROR_BODY: Final = 1024

NOT_FOUND_MESSAGE: Final = "file does not exist"
UNAUTHORIZED_MESSAGE: Final = "unauthorized: access denied"
INSECURE_MESSAGE: Final = "insecure protocol http"

_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})

Body = bytes | Callable[[], Iterable[bytes]] | None


class RegistryError(InternalError):
    """A registry answered with an error, or could not be reached (500 to the API client).

    ``http_status`` is the registry's status code when there was an answer.
    """

    def __init__(self, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status


class TransferCancelled(CorralError):
    """The transfer was cancelled because no client waits for it any more."""

    def __init__(self) -> None:
        super().__init__("transfer cancelled")


@dataclass(frozen=True, slots=True)
class RegistryOptions:
    """How to reach a registry, and the knobs of transfers (tests shrink the timings)."""

    insecure: bool = False
    username: str = ""
    password: str = ""
    max_retries: int = 6
    backoff: float = 1.0
    max_backoff: float = 30.0
    stall_timeout: float = 30.0
    connect_timeout: float = 30.0
    parallel: int = 4
    min_part_size: int = 32 << 20
    max_part_size: int = 1000 << 20
    target_parts: int = 16


def is_transient(status: int | None) -> bool:
    """Whether a failure is worth retrying: no answer at all, a 5xx, a 408 or a 429."""
    return status is None or status >= 500 or status in (408, 429)


def backoff_delay(attempt: int, options: RegistryOptions) -> float:
    """Exponential back-off with ±50 % jitter: ``backoff * 2**attempt``, capped."""
    delay = min(options.backoff * (2.0**attempt), options.max_backoff)
    return delay * (0.5 + random.random())


def describe_transport_error(e: httpx.TransportError) -> str:
    text = str(e) or type(e).__name__
    if isinstance(e, httpx.TimeoutException):
        return f"timed out ({text})" if str(e) else "timed out"
    return text


def base_url(name: ModelName, options: RegistryOptions) -> str:
    """``scheme://host`` of the registry of ``name``; ``insecure`` means plain http."""
    if name.scheme == "http" and not options.insecure:
        raise RegistryError(INSECURE_MESSAGE)
    scheme = "http" if options.insecure else name.scheme
    return f"{scheme}://{name.host}"


class HttpPool:
    """One httpx client (connection pool, TLS context) shared by registry clients.

    Building an httpx client loads the CA bundle, which costs tens of milliseconds; a server
    keeps one pool for all its transfers. The pool closes when its last user releases it.
    """

    def __init__(self) -> None:
        self.user_agent = f"corral/{corral.__version__}"
        self.ssl_context = httpx.create_ssl_context()
        self.http = httpx.Client(
            verify=self.ssl_context,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
            follow_redirects=False,
            headers={"User-Agent": self.user_agent},
        )
        self._lock = threading.Lock()
        self._refs = 1

    def acquire(self) -> HttpPool:
        with self._lock:
            if self._refs <= 0:
                raise RuntimeError("HTTP pool already closed")
            self._refs += 1
        return self

    def release(self) -> None:
        with self._lock:
            self._refs -= 1
            last = self._refs == 0
        if last:
            self.http.close()


class RegistryClient:
    """Talks to the repository ``<namespace>/<model>`` of the registry that ``name`` lives on.

    Thread-safe: downloads share one client across their part workers. ``cancel``, when set,
    interrupts back-off sleeps with :class:`TransferCancelled`. Without a ``pool`` the client
    makes its own; either way :meth:`close` lets go of it.
    """

    def __init__(
        self,
        name: ModelName,
        options: RegistryOptions,
        cancel: threading.Event | None = None,
        pool: HttpPool | None = None,
    ) -> None:
        self.name = name
        self.options = options
        self.base = base_url(name, options)
        self.repo = f"{name.namespace}/{name.model}"
        self.cancel = cancel or threading.Event()
        self.pool = pool.acquire() if pool is not None else HttpPool()
        self.user_agent = self.pool.user_agent
        self._http = self.pool.http
        base = httpx.URL(self.base)
        self._origin = (base.scheme, base.netloc)
        self._lock = threading.Lock()
        self._token = ""
        self._basic = False
        self._closed = False
        self._timeout = httpx.Timeout(
            connect=options.connect_timeout,
            read=options.stall_timeout,
            write=options.stall_timeout,
            pool=None,
        )

    # ---- lifecycle ---------------------------------------------------------------------------

    def clone(self, cancel: threading.Event | None = None) -> RegistryClient:
        """A client of the same repository and pool, with its own ``cancel``; shares the token."""
        other = RegistryClient(self.name, self.options, cancel, self.pool)
        with self._lock:
            other._token, other._basic = self._token, self._basic
        return other

    def close(self) -> None:
        with self._lock:
            closed, self._closed = self._closed, True
        if not closed:
            self.pool.release()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def sleep(self, seconds: float) -> None:
        """Wait, unless the transfer is cancelled meanwhile."""
        if self.cancel.wait(seconds):
            raise TransferCancelled()

    def check_cancelled(self) -> None:
        if self.cancel.is_set():
            raise TransferCancelled()

    # ---- URLs --------------------------------------------------------------------------------

    def url(self, *parts: str) -> str:
        return "/".join((self.base, "v2", self.repo, *parts))

    def manifest_url(self, reference: str) -> str:
        return self.url("manifests", reference)

    def blob_url(self, digest: str) -> str:
        return self.url("blobs", digest)

    # ---- the API -----------------------------------------------------------------------------

    def get_manifest(self, reference: str) -> bytes:
        headers = {"Accept": MANIFEST_ACCEPT}
        resp = self.request("GET", self.manifest_url(reference), headers=headers)
        return resp.content

    def put_manifest(self, reference: str, data: bytes) -> None:
        headers = {"Content-Type": MANIFEST_CONTENT_TYPE}
        self.request("PUT", self.manifest_url(reference), headers=headers, body=data, ok=(200, 201))

    def blob_exists(self, digest: str) -> bool:
        try:
            self.request("HEAD", self.blob_url(digest))
        except RegistryError as e:
            if e.http_status == 404:
                return False
            raise
        return True

    def open_range(self, url: str, start: int, stop: int) -> httpx.Response:
        """Stream bytes ``[start, stop)`` of a blob; the caller must close the response.

        The answer is a 206 whose ``Content-Range`` starts at ``start``, or a 200 carrying the
        whole blob (a server that ignores ``Range``): ``response.extensions["skip"]`` then says
        how many leading bytes to throw away. Failures are not retried here: the caller
        retries the part from where it stopped.
        """
        headers = {"Range": f"bytes={start}-{stop - 1}"}
        resp = self.request("GET", url, headers=headers, ok=(200, 206), stream=True, retry=False)
        skip = 0
        if resp.status_code == 206:
            got = resp.headers.get("Content-Range", "")
            m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", got.strip())
            if m is None or int(m.group(1)) != start:
                resp.close()
                raise RegistryError(
                    f"unexpected Content-Range {got!r} for bytes={start}-{stop - 1}"
                )
        else:
            skip = start
        resp.extensions["skip"] = skip
        return resp

    def start_upload(self, digest: str, mount_from: str = "") -> str | None:
        """POST an upload; ``None`` if the blob was mounted from ``mount_from``, else its URL."""
        url = httpx.URL(self.url("blobs", "uploads", ""))
        if mount_from:
            url = url.copy_merge_params({"mount": digest, "from": mount_from})
        resp = self.request("POST", str(url), body=b"", ok=(201, 202))
        if resp.status_code == 201 and mount_from:
            return None
        return self._upload_location(resp)

    def upload_chunk(
        self, location: str, body: Callable[[], Iterable[bytes]], start: int, size: int
    ) -> str:
        """PATCH ``size`` bytes at ``start`` of an upload; returns where the upload continues."""
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(size),
            "Content-Range": f"{start}-{start + size - 1}",
        }
        resp = self.request("PATCH", location, headers=headers, body=body, ok=(202,), retry=False)
        return self._upload_location(resp)

    def finish_upload(self, location: str, digest: str) -> None:
        url = httpx.URL(location).copy_merge_params({"digest": digest})
        headers = {"Content-Type": "application/octet-stream", "Content-Length": "0"}
        self.request("PUT", str(url), headers=headers, body=b"", ok=(201, 204))

    def _upload_location(self, resp: httpx.Response) -> str:
        loc = resp.headers.get("Docker-Upload-Location") or resp.headers.get("Location")
        if not loc:
            raise RegistryError("registry did not return an upload location")
        return str(resp.url.join(loc))

    # ---- one request, with auth, redirects and retries ----------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        ok: tuple[int, ...] = (200,),
        stream: bool = False,
        retry: bool = True,
    ) -> httpx.Response:
        """Send a request and return the answer if its status is in ``ok``.

        ``body`` is bytes or a factory of fresh byte iterables, so it can be sent again after a
        challenge or a transient failure. With ``stream`` the body is left unread (close it).
        Transient failures are retried unless ``retry`` is false.
        """
        attempt = auth_rounds = redirects = 0
        target = httpx.URL(url)
        while True:
            self.check_cancelled()
            try:
                resp = self._http.send(self._build(method, target, headers, body), stream=True)
            except httpx.TransportError as e:
                if not retry or attempt >= self.options.max_retries:
                    raise RegistryError(
                        f'{method} "{_redact(target)}": {describe_transport_error(e)}'
                    ) from e
                self.sleep(backoff_delay(attempt, self.options))
                attempt += 1
                continue
            status = resp.status_code
            if status in ok:
                if not stream:
                    resp.read()
                    resp.close()
                return resp
            if status in _REDIRECTS and "location" in resp.headers and method in ("GET", "HEAD"):
                resp.close()
                redirects += 1
                if redirects > MAX_REDIRECTS:
                    raise RegistryError(f"maximum redirects exceeded ({MAX_REDIRECTS})")
                target = target.join(resp.headers["location"])
                continue
            if status == 401 and self.same_host(target):
                challenge = resp.headers.get("www-authenticate", "")
                resp.close()
                if auth_rounds < MAX_AUTH_ROUNDS and self.authenticate(challenge):
                    auth_rounds += 1
                    continue
                raise RegistryError(UNAUTHORIZED_MESSAGE, 401)
            if is_transient(status) and retry and attempt < self.options.max_retries:
                delay = max(backoff_delay(attempt, self.options), _retry_after(resp))
                resp.close()
                self.sleep(min(delay, self.options.max_backoff))
                attempt += 1
                continue
            raise self._status_error(resp)

    def _build(
        self, method: str, url: httpx.URL, headers: Mapping[str, str] | None, body: Body
    ) -> httpx.Request:
        hdrs = dict(headers or {})
        if auth := self.auth_header(url):
            hdrs["Authorization"] = auth
        if method == "HEAD":
            return self._http.build_request(method, url, headers=hdrs, timeout=self._timeout)
        content: bytes | Iterable[bytes] | None = body() if callable(body) else body
        return self._http.build_request(
            method, url, headers=hdrs, content=content, timeout=self._timeout
        )

    def same_host(self, url: httpx.URL | str) -> bool:
        """Whether ``url`` has the registry's scheme and host (the only place credentials go)."""
        u = httpx.URL(url)
        return (u.scheme, u.netloc) == self._origin

    def auth_header(self, url: httpx.URL | str) -> str | None:
        """The ``Authorization`` value for a request to ``url``, if any."""
        if not self.same_host(url):
            return None
        with self._lock:
            token, basic = self._token, self._basic
        if token:
            return f"Bearer {token}"
        if basic:
            return basic_header(self.options.username, self.options.password)
        return None

    def authenticate(self, header: str) -> bool:
        """Act on a challenge; whether the request is worth sending again."""
        challenge = parse_challenge(header)
        if challenge.scheme == "basic":
            if not (self.options.username and self.options.password):
                return False
            with self._lock:
                already, self._basic = self._basic, True
            return not already
        if challenge.scheme != "bearer" or not challenge.params.get("realm"):
            return False
        token = self._fetch_token(challenge)
        with self._lock:
            self._token = token
        return True

    def _fetch_token(self, challenge: Challenge) -> str:
        realm = httpx.URL(challenge.params["realm"])
        if realm.scheme not in ("http", "https"):
            raise RegistryError(f"invalid auth realm {challenge.params['realm']!r}")
        params: list[tuple[str, str | int | float | bool | None]] = []
        if service := challenge.params.get("service"):
            params.append(("service", service))
        params += [("scope", s) for s in challenge.params.get("scope", "").split() if s]
        url = realm.copy_merge_params(params)
        auth: httpx.Auth | None = None
        if self.options.username and self.options.password:
            if realm.scheme != "https" and not self.options.insecure:
                raise RegistryError("refusing to send credentials to an http auth realm")
            auth = httpx.BasicAuth(self.options.username, self.options.password)
        for attempt in range(self.options.max_retries + 1):
            self.check_cancelled()
            try:
                resp = self._http.get(url, auth=auth, follow_redirects=True, timeout=self._timeout)
            except httpx.TransportError as e:
                if attempt >= self.options.max_retries:
                    raise RegistryError(f"getting auth token: {describe_transport_error(e)}") from e
                self.sleep(backoff_delay(attempt, self.options))
                continue
            if resp.status_code >= 500 and attempt < self.options.max_retries:
                self.sleep(backoff_delay(attempt, self.options))
                continue
            break
        if resp.status_code >= 400:
            if resp.status_code == 401:
                raise RegistryError(UNAUTHORIZED_MESSAGE, 401)
            raise RegistryError(f"getting auth token: {_status_text(resp)}", resp.status_code)
        try:
            doc = resp.json()
        except ValueError as e:
            raise RegistryError("getting auth token: invalid JSON answer") from e
        token = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryError("getting auth token: the answer holds no token")
        return token

    def _status_error(self, resp: httpx.Response) -> RegistryError:
        status = resp.status_code
        if status == 404:
            resp.close()
            return RegistryError(NOT_FOUND_MESSAGE, 404)
        try:
            resp.read()
        except httpx.HTTPError:
            pass
        finally:
            resp.close()
        return RegistryError(_status_text(resp), status)


def _status_text(resp: httpx.Response) -> str:
    """Ollama's ``"<status>: <body>"``."""
    try:
        body = resp.text.strip()
    except (httpx.HTTPError, UnicodeDecodeError):
        body = ""
    if len(body) > MAX_ERROR_BODY:
        body = body[:MAX_ERROR_BODY] + "..."
    return f"{resp.status_code}: {body}" if body else str(resp.status_code)


def _retry_after(resp: httpx.Response) -> float:
    value = resp.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return 0.0


def _redact(url: httpx.URL) -> str:
    """A URL for messages: without its query, which may hold a signature."""
    return str(url.copy_with(query=None))
