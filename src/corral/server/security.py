"""DNS-rebinding and cross-origin protection, with the rules of Ollama's server.

**Host check** (Ollama's ``allowedHostsMiddleware``): only while the server listens on a loopback
address (``127.0.0.1``, ``::1``, ``localhost``, a host name that resolves to loopback) is the
``Host`` header checked; bound to ``0.0.0.0``, ``::`` or any other address every ``Host`` passes.
The host part of the header (Go's ``net.SplitHostPort``, else the whole header) is allowed when it
is an IP address that is loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7), unspecified
or one of this machine's own addresses, or a name that is empty, ``localhost``, this machine's
host name, or ends in ``.localhost``, ``.local`` or ``.internal``. Anything else is a 403: a web
page whose own domain was re-pointed at 127.0.0.1 cannot reach the server.

**Origins** (Ollama's ``gin-contrib/cors`` configuration): a request with an ``Origin`` header
that is not the server itself (``http://<Host>`` or ``https://<Host>``) must come from an allowed
origin (``OLLAMA_ORIGINS`` plus the local defaults, entries with one ``*`` matching by prefix and
suffix) or it is refused 403, whatever the bind address, so that a page elsewhere cannot make a
browser send even a "simple" cross-site POST. Allowed origins get the CORS headers and preflight
answers of Starlette's ``CORSMiddleware``.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
from collections.abc import Iterable

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

LOCAL_SUFFIXES = (".localhost", ".local", ".internal")
FOREIGN_ORIGIN = "forbidden: origin not allowed (OLLAMA_ORIGINS)"

# Go's netip.Addr.IsPrivate: RFC 1918 and RFC 4193 only (Python's is_private is much wider).
_PRIVATE = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)


# ---- the Host check ----------------------------------------------------------------------------


def split_host_port(hostport: str) -> str | None:
    """The host of ``host:port`` or ``[host]:port`` as Go's ``net.SplitHostPort`` splits it;
    None where Go returns an error (no port, too many colons, misplaced brackets)."""
    i = hostport.rfind(":")
    if i < 0:
        return None
    j = k = 0
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0 or end + 1 != i:
            return None
        host = hostport[1:end]
        j, k = 1, end + 1
    else:
        host = hostport[:i]
        if ":" in host:
            return None
    if "[" in hostport[j:] or "]" in hostport[k:]:
        return None
    return host


def parse_ip(text: str) -> IPAddress | None:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # Go's netip unmaps before IsLoopback / IsPrivate
    return ip


def is_local_address(ip: IPAddress) -> bool:
    """Whether ``ip`` is an address of this machine (it can be bound to), as Ollama's
    ``isLocalIP`` checks the addresses of the network interfaces."""
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind((str(ip), 0))
    except OSError:
        return False
    return True


def allowed_ip(ip: IPAddress) -> bool:
    private = any(ip in net for net in _PRIVATE if net.version == ip.version)
    return ip.is_loopback or private or ip.is_unspecified or is_local_address(ip)


def allowed_name(host: str) -> bool:
    host = host.lower()
    if host in ("", "localhost") or host == socket.gethostname().lower():
        return True
    return host.endswith(LOCAL_SUFFIXES)


def allowed_host(header: str) -> bool:
    """Whether a ``Host`` header may reach a server listening on loopback (Ollama's rules)."""
    host = split_host_port(header)
    if host is None:
        host = header
    ip = parse_ip(host)
    if ip is not None and allowed_ip(ip):
        return True
    return allowed_name(host)


def loopback_bind(host: str) -> bool:
    """Whether a server told to listen on ``host`` listens on a loopback address (a name is
    resolved as the listening socket resolves it: its first IPv4 address, else IPv6)."""
    ip = parse_ip(host)
    if ip is not None:
        return ip.is_loopback
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            infos = socket.getaddrinfo(host, None, family, socket.SOCK_STREAM)
        except OSError:
            continue
        if infos:
            first = parse_ip(str(infos[0][4][0]))
            return first is not None and first.is_loopback
    return host.lower() == "localhost"


class HostCheckMiddleware:
    """Pure ASGI: answers 403 to a foreign ``Host`` header, passes everything else through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not allowed_host(_header(scope, b"host") or ""):
            await _forbidden(scope, send, "forbidden")
            return
        await self.app(scope, receive, send)


# ---- origins -----------------------------------------------------------------------------------


class OriginPolicy:
    """Allowed origins with gin-contrib/cors' rules: ``*`` allows all; an entry without ``*`` is
    an exact (case-insensitive) origin; an entry with one ``*`` matches an origin that starts
    with what precedes the ``*`` and ends with what follows it."""

    def __init__(self, origins: Iterable[str]) -> None:
        entries = list(origins)
        self.allow_all = "*" in entries
        self.exact = {o.lower() for o in entries if "*" not in o}
        self.wildcards: list[tuple[str, str]] = []
        for o in entries:
            if o.count("*") == 1 and o != "*":
                prefix, _, suffix = o.partition("*")
                self.wildcards.append((prefix, suffix))
            elif o.count("*") > 1:
                log.warning("ignoring origin %r: only one * is allowed", o)

    def allows(self, origin: str) -> bool:
        if self.allow_all or origin in self.exact:
            return True
        return any(origin.startswith(p) and origin.endswith(s) for p, s in self.wildcards)


def same_host(origin: str, host: str | None) -> bool:
    """An ``Origin`` naming the server itself: a same-origin request, not a CORS one."""
    return host is not None and origin in (f"http://{host}", f"https://{host}")


class CorsMiddleware(CORSMiddleware):
    """Starlette's CORS headers and preflight answers over :class:`OriginPolicy`; a request
    from an origin that is not allowed (and not the server itself) is refused with a 403."""

    def __init__(self, app: ASGIApp, origins: Iterable[str]) -> None:
        policy = OriginPolicy(origins)
        super().__init__(
            app,
            allow_origins=("*",) if policy.allow_all else (),
            allow_methods=["*"],
            allow_headers=["*"],
        )
        self.policy = policy

    def is_allowed_origin(self, origin: str) -> bool:
        return self.policy.allows(origin)

    def foreign(self, scope: Scope) -> bool:
        """A cross-origin request from an origin that is not allowed."""
        origin = _header(scope, b"origin")
        if not origin or self.policy.allows(origin):
            return False
        return not same_host(origin, _header(scope, b"host"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.foreign(scope):
            await _forbidden(scope, send, FOREIGN_ORIGIN)
            return
        await super().__call__(scope, receive, send)


# ---- helpers -----------------------------------------------------------------------------------


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


async def _forbidden(scope: Scope, send: Send, message: str) -> None:
    from corral.server.app import error_json  # the error shape of the path's API

    body = json.dumps(error_json(str(scope.get("path", "/")), 403, message)).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": 403, "headers": headers})
    await send({"type": "http.response.body", "body": body})
