"""Run Debian's ``docker-registry`` (CNCF distribution 2.x) on 127.0.0.1 for tests and benches.

The registry gets its own YAML config: no auth, filesystem storage in a given directory, deletes
enabled, access log on stderr (written to ``registry.log`` next to the storage). With ``tls`` it
serves HTTPS with a self-signed certificate for 127.0.0.1 (``cert``): a corral server started
with ``SSL_CERT_FILE`` pointing at it reaches the registry as it reaches registry.ollama.ai,
without ``insecure``.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import time
from pathlib import Path

import httpx

from tests.serverproc import free_port

BINARY = "/usr/bin/docker-registry"

CONFIG = """\
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
  secret: corral-tests
"""

TLS = """\
  tls:
    certificate: {cert}
    key: {key}
"""


def self_signed(workdir: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1, made with the openssl command."""
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    args = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"]
    san = ["-addext", "subjectAltName=IP:127.0.0.1"]
    subprocess.run(
        ["openssl", *args, *san, "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


def registry_binary() -> str | None:
    """The registry executable, or None when Debian's ``docker-registry`` is not installed."""
    if Path(BINARY).is_file():
        return BINARY
    return shutil.which("docker-registry")


class DockerRegistry:
    """One registry process; ``host`` is ``127.0.0.1:<port>`` (use it in model names)."""

    def __init__(self, workdir: Path, *, tls: bool = False) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.tls = tls
        self.url = f"{'https' if tls else 'http'}://{self.host}"
        self.cert: Path | None = None
        self.storage = workdir / "storage"
        self.log_path = workdir / "registry.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> DockerRegistry:
        binary = registry_binary()
        if binary is None:
            raise RuntimeError("docker-registry is not installed")
        self.storage.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "config.yml"
        text = CONFIG.format(root=self.storage, port=self.port)
        verify: ssl.SSLContext | bool = True
        if self.tls:
            self.cert, key = self_signed(self.workdir)
            text += TLS.format(cert=self.cert, key=key)
            verify = ssl.create_default_context(cafile=str(self.cert))
        config.write_text(text)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/v2/", timeout=1, verify=verify).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"docker-registry did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
