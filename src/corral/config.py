"""Settings from the ``OLLAMA_*`` environment variables, with Ollama's defaults.

Every variable is parsed leniently: a bad value logs a warning and falls back to the default, so
a typo in the environment never stops the server. ``Settings.from_env`` is a pure function of a
mapping, which keeps tests free of global state.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from corral.durations import parse_go_duration, parse_keep_alive

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_PORT = 11434
DEFAULT_NUM_PARALLEL = 4
DEFAULT_CONTEXT_LENGTH = 4096
DEFAULT_MAX_QUEUE = 512
DEFAULT_KEEP_ALIVE = 300.0
DEFAULT_LOAD_TIMEOUT = 300.0
DEFAULT_MAX_LOADED_MODELS = 3
DEFAULT_MAX_BODY = 64 << 20  # bytes of a JSON request body (CORRAL_MAX_BODY)


@dataclass(frozen=True)
class HostAddr:
    """Where the server listens and where clients connect (from ``OLLAMA_HOST``)."""

    scheme: str = "http"
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT

    @property
    def base_url(self) -> str:
        host = self.host
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = None
        if ip is not None and ip.is_unspecified:
            host = "127.0.0.1" if ip.version == 4 else "::1"
            ip = ipaddress.ip_address(host)
        if ip is not None and ip.version == 6:
            host = f"[{host}]"
        return f"{self.scheme}://{host}:{self.port}"


def parse_host(value: str | None) -> HostAddr:
    """Parse ``OLLAMA_HOST`` as Ollama does: scheme, host and port are each optional."""
    s = (value or "").strip()
    default_port = DEFAULT_PORT
    scheme, sep, hostport = s.partition("://")
    if not sep:
        scheme, hostport = "http", s
    elif scheme == "http":
        default_port = 80
    elif scheme == "https":
        default_port = 443
    hostport = hostport.partition("/")[0]
    host, port_text = _split_host_port(hostport)
    if host is None:
        host, port_text = "127.0.0.1", str(default_port)
        bare = hostport.strip("[]")
        if bare:
            host = bare
    try:
        port = int(port_text or "")
        if not 0 <= port <= 65535:
            raise ValueError(port_text)
    except ValueError:
        log.warning("invalid port %r in OLLAMA_HOST, using default %d", port_text, default_port)
        port = default_port
    # Go listens on every interface for an empty host (":1234"); so does corral.
    return HostAddr(scheme=scheme or "http", host=host or "0.0.0.0", port=port)


def _split_host_port(hostport: str) -> tuple[str | None, str | None]:
    """Go's net.SplitHostPort: ('host', 'port') or (None, None) if there is no port."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0 or not hostport[end + 1 :].startswith(":"):
            return None, None
        return hostport[1:end], hostport[end + 2 :]
    if hostport.count(":") != 1:
        return None, None
    host, _, port = hostport.partition(":")
    return host, port


def default_origins(extra: list[str]) -> tuple[str, ...]:
    """Allowed CORS origins: ``OLLAMA_ORIGINS`` plus Ollama's built-in local ones."""
    origins = list(extra)
    for origin in ("localhost", "127.0.0.1", "0.0.0.0"):
        origins += [
            f"http://{origin}",
            f"https://{origin}",
            f"http://{origin}:*",
            f"https://{origin}:*",
        ]
    origins += ["app://*", "file://*", "tauri://*", "vscode-webview://*", "vscode-file://*"]
    return tuple(origins)


@dataclass(frozen=True)
class Settings:
    """Every setting corral honours. Build with :meth:`from_env`."""

    host: HostAddr = field(default_factory=HostAddr)
    models: Path = field(default_factory=lambda: Path.home() / ".ollama" / "models")
    keep_alive: float = DEFAULT_KEEP_ALIVE
    load_timeout: float = DEFAULT_LOAD_TIMEOUT
    num_parallel: int = DEFAULT_NUM_PARALLEL
    max_loaded_models: int = DEFAULT_MAX_LOADED_MODELS
    max_queue: int = DEFAULT_MAX_QUEUE
    context_length: int = DEFAULT_CONTEXT_LENGTH
    origins: tuple[str, ...] = field(default_factory=lambda: default_origins([]))
    log_level: int = logging.INFO
    noprune: bool = False
    nohistory: bool = False
    flash_attention: bool | None = None  # unset: timed on this CPU (CPU builds), llama.cpp's on GPU
    api_key: str | None = None
    max_body: int = DEFAULT_MAX_BODY  # a larger JSON body is answered 413; blobs are exempt
    no_cloud: bool = False  # OLLAMA_NO_CLOUD: only reported (corral never reaches a cloud)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env

        def get(key: str) -> str:
            return e.get(key, "").strip()

        models = get("OLLAMA_MODELS")
        extra_origins = [o.strip() for o in get("OLLAMA_ORIGINS").split(",") if o.strip()]
        return cls(
            host=parse_host(get("OLLAMA_HOST")),
            models=Path(models).expanduser() if models else Path.home() / ".ollama" / "models",
            keep_alive=_lenient(e, "OLLAMA_KEEP_ALIVE", parse_keep_alive, DEFAULT_KEEP_ALIVE),
            load_timeout=_lenient(e, "OLLAMA_LOAD_TIMEOUT", _load_timeout, DEFAULT_LOAD_TIMEOUT),
            num_parallel=_lenient(e, "OLLAMA_NUM_PARALLEL", _uint, DEFAULT_NUM_PARALLEL)
            or DEFAULT_NUM_PARALLEL,
            max_loaded_models=_lenient(
                e, "OLLAMA_MAX_LOADED_MODELS", _uint, DEFAULT_MAX_LOADED_MODELS
            )
            or DEFAULT_MAX_LOADED_MODELS,
            max_queue=_lenient(e, "OLLAMA_MAX_QUEUE", _uint, DEFAULT_MAX_QUEUE),
            context_length=_lenient(e, "OLLAMA_CONTEXT_LENGTH", _uint, DEFAULT_CONTEXT_LENGTH)
            or DEFAULT_CONTEXT_LENGTH,
            origins=default_origins(extra_origins),
            log_level=_log_level(get("OLLAMA_DEBUG")),
            noprune=_lenient(e, "OLLAMA_NOPRUNE", _bool, False),
            nohistory=_lenient(e, "OLLAMA_NOHISTORY", _bool, False),
            flash_attention=_lenient(e, "OLLAMA_FLASH_ATTENTION", _bool, None),
            api_key=get("CORRAL_API_KEY") or None,
            max_body=_lenient(e, "CORRAL_MAX_BODY", parse_byte_size, DEFAULT_MAX_BODY),
            no_cloud=_lenient(e, "OLLAMA_NO_CLOUD", _bool, False),
        )


def _lenient(env: Mapping[str, str], key: str, parse: Callable[[str], T], default: T) -> T:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        return parse(raw)
    except ValueError:
        log.warning("invalid environment variable %s=%r, using default %r", key, raw, default)
        return default


_SIZE = re.compile(r"([0-9]+)\s*([kmgt]?)(i?)(b?)", re.IGNORECASE)
_SIZE_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


def parse_byte_size(raw: str) -> int:
    """A positive byte count: ``1048576``, or a whole number with a unit, in any case:
    ``K``/``KB``/``KiB``, ``M``/``MB``/``MiB``, ``G``/``GB``/``GiB``, ``T``/``TB``/``TiB``, all
    powers of 1024 (``64MB`` is the default, 64 MiB), or ``B``."""
    m = _SIZE.fullmatch(raw.strip())
    if m is None:
        raise ValueError(raw)
    digits, prefix, binary, _b = m.groups()
    if binary and not prefix:
        raise ValueError(raw)
    n: int = int(digits) * 1024 ** _SIZE_POWERS[prefix.lower()]
    if n <= 0:
        raise ValueError(raw)
    return n


def _uint(raw: str) -> int:
    n = int(raw, 10)
    if n < 0:
        raise ValueError(raw)
    return n


_TRUE = {"1", "t", "true", "y", "yes", "on"}
_FALSE = {"0", "f", "false", "n", "no", "off"}


def _bool(raw: str) -> bool:
    """Go's strconv.ParseBool, except that Ollama treats an unparsable value as true."""
    return raw.lower() not in _FALSE


def _load_timeout(raw: str) -> float:
    try:
        seconds = float(int(raw))
    except ValueError:
        seconds = parse_go_duration(raw)
    return float("inf") if seconds <= 0 else seconds


def _log_level(raw: str) -> int:
    if not raw:
        return logging.INFO
    low = raw.lower()
    if low in _TRUE:
        return logging.DEBUG
    try:
        return logging.DEBUG if int(raw) > 0 else logging.INFO
    except ValueError:
        return logging.INFO
