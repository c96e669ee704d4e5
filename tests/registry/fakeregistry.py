"""A small in-process OCI registry with fault injection, served by ``http.server`` in a thread.

It keeps blobs, manifests and uploads in memory, speaks enough of the distribution API for pull
and push, and can be told to misbehave: ask for a Bearer or Basic login, answer 500s, serve a
corrupted blob, stall or drop a blob download part-way, redirect blob GETs to another host
name, ignore ``Range``, or throttle. It counts the body bytes it serves per blob.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"

_MANIFEST = re.compile(r"/v2/(.+)/manifests/([^/]+)")
_UPLOAD = re.compile(r"/v2/(.+)/blobs/uploads/([^/]*)")
_BLOB = re.compile(r"/v2/(.+)/blobs/(sha256:[0-9a-f]{64})")
_CDN = re.compile(r"/cdn/(sha256:[0-9a-f]{64})")


@dataclass
class Faults:
    """What the registry should get wrong; counters count down as faults are used."""

    manifest_500s: int = 0
    blob_429s: int = 0
    blob_500s: Counter[str] = field(default_factory=Counter)
    patch_500s: int = 0
    corrupt: set[str] = field(default_factory=set)
    stall: Counter[str] = field(default_factory=Counter)
    stall_after: int = 1000
    drop: Counter[str] = field(default_factory=Counter)
    drop_after: int = 1000
    head_miss: set[str] = field(default_factory=set)
    redirect_host: str = ""
    ignore_range: bool = False
    rate: float = 0.0  # bytes per second of blob bodies, 0 = unlimited


class FakeRegistry:
    """The registry's state; ``start()`` serves it on 127.0.0.1:<free port>."""

    def __init__(self, auth: str = "", username: str = "user", password: str = "secret") -> None:
        self.auth = auth  # "", "bearer", "basic", or "bearer+basic" (token endpoint wants basic)
        self.username, self.password = username, password
        self.token = "tok-" + uuid.uuid4().hex
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[tuple[str, str], bytes] = {}
        self.uploads: dict[str, bytearray] = {}
        self.faults = Faults()
        self.served: Counter[str] = Counter()
        self.token_requests: list[dict[str, list[str]]] = []
        self.log: list[tuple[str, str, dict[str, str]]] = []
        self.release = threading.Event()
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.port = 0

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeRegistry:
        registry = self

        class Handler(_Handler):
            reg = registry

        server = _Server(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        self.port = server.server_address[1]
        threading.Thread(
            target=server.serve_forever, args=(0.05,), name="fake-registry", daemon=True
        ).start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    # ---- content -----------------------------------------------------------------------------

    def add_blob(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.blobs[digest] = data
        return digest

    def add_model(self, repo: str, tag: str, layers: list[tuple[str, bytes]]) -> bytes:
        """Store blobs and a manifest for them; returns the manifest bytes."""
        config = json.dumps({"model_format": "gguf", "model_family": "llama"}).encode()
        doc = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "digest": self.add_blob(config),
                "size": len(config),
            },
            "layers": [
                {"mediaType": media, "digest": self.add_blob(data), "size": len(data)}
                for media, data in layers
            ],
        }
        raw = json.dumps(doc, indent=2).encode()
        self.manifests[(repo, tag)] = raw
        return raw


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up mid-answer are part of the tests


class _Handler(BaseHTTPRequestHandler):
    reg: FakeRegistry
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # ---- helpers -----------------------------------------------------------------------------

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, code: str) -> None:
        body = json.dumps({"errors": [{"code": code, "message": code.lower()}]}).encode()
        self._reply(status, body, {"Content-Type": "application/json"})

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _authorized(self, repo: str) -> bool:
        reg = self.reg
        got = self.headers.get("Authorization", "")
        if not reg.auth:
            return True
        if reg.auth.startswith("bearer"):
            if got == f"Bearer {reg.token}":
                return True
            challenge = (
                f'Bearer realm="http://{reg.host}/token",service="fake-registry",'
                f'scope="repository:{repo}:pull,push"'
            )
        else:
            if got == _basic(reg.username, reg.password):
                return True
            challenge = 'Basic realm="fake-registry"'
        self._body()
        self._reply(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', {"WWW-Authenticate": challenge})
        return False

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        self.query = parse_qs(url.query)
        path = url.path
        with self.reg.lock:
            self.reg.log.append((self.command, self.path, dict(self.headers.items())))
        if path == "/token":
            return self._token()
        if m := _CDN.fullmatch(path):
            if self.headers.get("Authorization"):
                return self._error(400, "AUTHORIZATION_NOT_ALLOWED")
            return self._send_blob(m.group(1))
        if path == "/v2/":
            return self._reply(200, b"{}")
        for pattern, handler in (
            (_UPLOAD, self._upload),
            (_MANIFEST, self._manifest),
            (_BLOB, self._blob),
        ):
            if m := pattern.fullmatch(path):
                if not self._authorized(m.group(1)):
                    return None
                return handler(m.group(1), m.group(2))
        return self._error(404, "NOT_FOUND")

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = _dispatch

    # ---- endpoints ---------------------------------------------------------------------------

    def _token(self) -> None:
        reg = self.reg
        with reg.lock:
            reg.token_requests.append(self.query)
        if reg.auth == "bearer+basic" and self.headers.get("Authorization") != _basic(
            reg.username, reg.password
        ):
            return self._error(401, "UNAUTHORIZED")
        return self._reply(200, json.dumps({"token": reg.token}).encode())

    def _manifest(self, repo: str, ref: str) -> None:
        reg = self.reg
        if self.command == "PUT":
            data = self._body()
            doc = json.loads(data)
            for d in [doc["config"]["digest"], *(x["digest"] for x in doc["layers"])]:
                if d not in reg.blobs:
                    return self._error(400, "MANIFEST_BLOB_UNKNOWN")
            reg.manifests[(repo, ref)] = data
            return self._reply(201)
        if reg.faults.manifest_500s > 0:
            reg.faults.manifest_500s -= 1
            return self._error(500, "INTERNAL")
        stored = reg.manifests.get((repo, ref))
        if stored is None:
            return self._error(404, "MANIFEST_UNKNOWN")
        return self._reply(200, stored, {"Content-Type": MANIFEST_TYPE})

    def _blob(self, repo: str, digest: str) -> None:
        reg = self.reg
        if digest not in reg.blobs:
            return self._error(404, "BLOB_UNKNOWN")
        if self.command == "HEAD":
            if digest in reg.faults.head_miss:
                return self._error(404, "BLOB_UNKNOWN")
            size = str(len(reg.blobs[digest]))
            self.send_response(200)
            self.send_header("Content-Length", size)
            self.end_headers()
            return None
        if reg.faults.blob_429s > 0:
            reg.faults.blob_429s -= 1
            return self._reply(429, b"slow down", {"Retry-After": "0"})
        if reg.faults.blob_500s[digest] > 0:
            reg.faults.blob_500s[digest] -= 1
            return self._error(500, "INTERNAL")
        if reg.faults.redirect_host:
            location = f"http://{reg.faults.redirect_host}:{reg.port}/cdn/{digest}?sig=abc"
            return self._reply(307, b"", {"Location": location})
        return self._send_blob(digest)

    def _send_blob(self, digest: str) -> None:
        reg, faults = self.reg, self.reg.faults
        data = reg.blobs[digest]
        if digest in faults.corrupt:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        start, stop = 0, len(data)
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if m and not faults.ignore_range:
            start = int(m.group(1))
            stop = min(len(data), int(m.group(2)) + 1 if m.group(2) else len(data))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(stop - start))
        self.end_headers()
        body = memoryview(data)[start:stop]
        with reg.lock:
            stall = faults.stall[digest] > 0 and len(body) > faults.stall_after
            drop = not stall and faults.drop[digest] > 0 and len(body) > faults.drop_after
            if stall:
                faults.stall[digest] -= 1
            if drop:
                faults.drop[digest] -= 1
        if stall or drop:
            cut = faults.stall_after if stall else faults.drop_after
            self._write(digest, body[:cut])
            if stall:
                reg.release.wait(60)
            self.close_connection = True
            return
        self._write(digest, body)

    def _write(self, digest: str, body: memoryview) -> None:
        rate = self.reg.faults.rate
        step = (16 << 10) if rate else (64 << 10)
        for i in range(0, len(body), step):
            chunk = body[i : i + step]
            if rate:
                time.sleep(len(chunk) / rate)
            try:
                self.wfile.write(chunk)
            except OSError:
                self.close_connection = True
                return
            with self.reg.lock:
                self.reg.served[digest] += len(chunk)

    def _upload(self, repo: str, upload_id: str) -> None:
        reg = self.reg
        if self.command == "POST":
            self._body()
            mount = self.query.get("mount", [""])[0]
            if mount and mount in reg.blobs:
                return self._reply(201, b"", {"Location": f"/v2/{repo}/blobs/{mount}"})
            new = uuid.uuid4().hex
            reg.uploads[new] = bytearray()
            return self._reply(202, b"", {"Location": f"/v2/{repo}/blobs/uploads/{new}?_state=x"})
        buf = reg.uploads.get(upload_id)
        if buf is None:
            self._body()
            return self._error(404, "BLOB_UPLOAD_UNKNOWN")
        if self.command == "PATCH":
            data = self._body()
            if reg.faults.patch_500s > 0:
                reg.faults.patch_500s -= 1
                return self._error(500, "INTERNAL")
            m = re.fullmatch(r"(\d+)-(\d+)", self.headers.get("Content-Range", ""))
            if m is None or int(m.group(1)) != len(buf):
                return self._error(416, "RANGE_INVALID")
            buf += data
            location = f"/v2/{repo}/blobs/uploads/{upload_id}?_state=y"
            return self._reply(202, b"", {"Location": location, "Range": f"0-{len(buf) - 1}"})
        if self.command == "PUT":
            buf += self._body()
            digest = self.query.get("digest", [""])[0]
            if "sha256:" + hashlib.sha256(buf).hexdigest() != digest:
                return self._error(400, "DIGEST_INVALID")
            reg.blobs[digest] = bytes(buf)
            del reg.uploads[upload_id]
            return self._reply(201, b"", {"Location": f"/v2/{repo}/blobs/{digest}"})
        return self._error(405, "UNSUPPORTED")


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
