"""A synchronous httpx client of corral's native API (what the CLI and the tests use).

Every call maps a failure to :class:`ClientError`: an HTTP error status carries the server's
``{"error": ...}`` text, an ``{"error": ...}`` line inside an NDJSON stream ends the stream with
that text, and an unreachable server raises :class:`ServerUnreachable` with a message that says
where the client looked and how to start a server.

Streaming calls (``generate``, ``chat``, ``create``, ``pull``, ``push``) return iterators of the
decoded NDJSON objects. Closing such an iterator (or leaving it with an exception, such as a
``KeyboardInterrupt``) closes the HTTP connection, which tells the server to cancel the work.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from corral.config import Settings

__all__ = ["Client", "ClientError", "ServerUnreachable"]

UPLOAD_CHUNK = 1 << 20

Json = dict[str, Any]


class ClientError(Exception):
    """A request failed: ``status`` is the HTTP status (0 when there was no answer)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return self.message


class ServerUnreachable(ClientError):
    """No corral (or Ollama) server answers at the configured address."""

    def __init__(self, url: str) -> None:
        super().__init__(
            0,
            f"could not connect to corral server at {url}; is it running? "
            "(start it with `corral serve`)",
        )
        self.url = url


def _error_text(resp: httpx.Response) -> str:
    body = resp.read()
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return str(data["error"])
    text = body.decode("utf-8", errors="replace").strip()
    return text or f"{resp.status_code} {resp.reason_phrase}".strip()


class Client:
    """The native API at ``base_url`` (e.g. ``http://127.0.0.1:11434``)."""

    def __init__(self, base_url: str, *, timeout: float | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout, connect=10.0),
            headers={"User-Agent": "corral-cli"},
            trust_env=False,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Client:
        """A client of the server named by ``OLLAMA_HOST``."""
        return cls(Settings.from_env(env).host.base_url)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def _transport_errors(self) -> Iterator[None]:
        try:
            yield
        except httpx.ConnectError as e:
            raise ServerUnreachable(self.base_url) from e
        except httpx.TimeoutException as e:
            raise ClientError(0, f"timed out talking to {self.base_url}") from e
        except httpx.TransportError as e:
            raise ClientError(0, f"connection to {self.base_url} failed: {e}") from e

    def _request(self, method: str, path: str, body: Json | None = None) -> httpx.Response:
        with self._transport_errors():
            resp = self._http.request(method, path, json=body)
            if resp.status_code >= 400:
                raise ClientError(resp.status_code, _error_text(resp))
            return resp

    def _json(self, method: str, path: str, body: Json | None = None) -> Json:
        resp = self._request(method, path, body)
        try:
            data = resp.json()
        except ValueError as e:
            raise ClientError(resp.status_code, f"invalid response from server: {e}") from e
        if not isinstance(data, dict):
            raise ClientError(resp.status_code, "invalid response from server")
        return data

    def _stream(self, path: str, body: Json) -> Iterator[Json]:
        """POST ``body`` and yield each NDJSON object of the answer."""
        with (
            self._transport_errors(),
            self._http.stream(
                "POST", path, json=body, timeout=httpx.Timeout(None, connect=10.0)
            ) as resp,
        ):
            if resp.status_code >= 400:
                raise ClientError(resp.status_code, _error_text(resp))
            for line in resp.iter_lines():
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except ValueError as e:
                    raise ClientError(resp.status_code, f"invalid response line: {line!r}") from e
                if not isinstance(obj, dict):
                    continue
                if obj.get("error"):
                    raise ClientError(resp.status_code, str(obj["error"]))
                yield obj

    # ------------------------------------------------------------------ routes

    def heartbeat(self) -> None:
        """Raise :class:`ServerUnreachable` unless a server answers ``HEAD /``."""
        self._request("HEAD", "/")

    def version(self) -> str:
        return str(self._json("GET", "/api/version").get("version", ""))

    def list_models(self) -> list[Json]:
        models = self._json("GET", "/api/tags").get("models") or []
        return [m for m in models if isinstance(m, dict)]

    def ps(self) -> list[Json]:
        models = self._json("GET", "/api/ps").get("models") or []
        return [m for m in models if isinstance(m, dict)]

    def show(self, model: str, *, verbose: bool = False) -> Json:
        body: Json = {"model": model}
        if verbose:
            body["verbose"] = True
        return self._json("POST", "/api/show", body)

    def copy(self, source: str, destination: str) -> None:
        self._request("POST", "/api/copy", {"source": source, "destination": destination})

    def delete(self, model: str) -> None:
        self._request("DELETE", "/api/delete", {"model": model})

    def blob_exists(self, digest: str) -> bool:
        with self._transport_errors():
            resp = self._http.head(f"/api/blobs/{digest}")
        if resp.status_code == 404:
            return False
        if resp.status_code >= 400:
            raise ClientError(resp.status_code, _error_text(resp))
        return True

    def create_blob(
        self, digest: str, path: Path, on_progress: Callable[[int], None] | None = None
    ) -> None:
        """Upload the file at ``path`` as the blob ``digest``; ``on_progress(bytes_sent)``."""

        def chunks() -> Iterator[bytes]:
            sent = 0
            with path.open("rb") as f:
                while block := f.read(UPLOAD_CHUNK):
                    sent += len(block)
                    yield block
                    if on_progress is not None:
                        on_progress(sent)

        with self._transport_errors():
            resp = self._http.post(
                f"/api/blobs/{digest}",
                content=chunks(),
                headers={"Content-Length": str(path.stat().st_size)},
                timeout=httpx.Timeout(None, connect=10.0),
            )
        if resp.status_code >= 400:
            raise ClientError(resp.status_code, _error_text(resp))

    def create(self, request: Json) -> Iterator[Json]:
        return self._stream("/api/create", {**request, "stream": True})

    def pull(self, model: str, *, insecure: bool = False) -> Iterator[Json]:
        return self._stream("/api/pull", {"model": model, "insecure": insecure, "stream": True})

    def push(self, model: str, *, insecure: bool = False) -> Iterator[Json]:
        return self._stream("/api/push", {"model": model, "insecure": insecure, "stream": True})

    def generate(self, request: Json) -> Iterator[Json]:
        return self._stream("/api/generate", {**request, "stream": True})

    def chat(self, request: Json) -> Iterator[Json]:
        return self._stream("/api/chat", {**request, "stream": True})

    def embed(self, request: Json) -> Json:
        return self._json("POST", "/api/embed", request)
