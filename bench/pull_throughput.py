"""Pull and push throughput of a ~250 MB model against a local registry, relative to curl.

Starts Debian's ``docker-registry`` and a ``corral serve`` process on 127.0.0.1, creates a model
from the bundled Gemma 3 270M GGUF, then alternates, ``--runs`` times each:

- ``POST /api/pull`` (``stream: false``) of the model into an empty store, against ``curl -o``
  of the same blob into the same file system, ``curl -o`` followed by ``openssl dgst -sha256``
  (corral verifies every blob), and a plain sequential httpx GET to a file;
- ``POST /api/push`` to a fresh repository (so every byte is sent), against ``curl -T`` of the
  same blob to an upload URL.

Prints one JSON object: medians in MB/s and the ratios pull/curl and push/curl (the target of
issue 6 is >= 0.8). Interleaving the runs shares the machine's noise between the sides.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.registry.dockerregistry import DockerRegistry, registry_binary
from tests.serverproc import ServerProcess

from corral import bundled


def timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return "sha256:" + h.hexdigest()


class Api:
    """The corral server's API over one persistent client (building one costs ~0.1 s)."""

    def __init__(self, server: ServerProcess, http: httpx.Client) -> None:
        self.server, self.http = server, http

    def post(self, route: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self.http.post(f"{self.server.url}{route}", json=body)
        if r.status_code != 200:
            raise RuntimeError(f"{route}: {r.status_code} {r.text}")
        out: dict[str, Any] = r.json() if r.content else {}
        return out

    def delete(self, model: str) -> None:
        r = self.http.request("DELETE", f"{self.server.url}/api/delete", json={"model": model})
        r.raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if registry_binary() is None:
        sys.exit("docker-registry is not installed (apt-get install docker-registry)")
    gguf = bundled.gemma3_gguf()
    if gguf is None:
        sys.exit("the gemma3 part packages are not installed (make test installs them)")

    with (
        tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp,
        httpx.Client(timeout=600) as http,
    ):
        work = Path(tmp)
        registry = DockerRegistry(work / "registry").start()
        server = ServerProcess(work / "models").start()
        try:
            result = run(args.runs, registry, Api(server, http), gguf)
        finally:
            server.stop()
            registry.stop()
    print(json.dumps(result, indent=2))


def run(runs: int, registry: DockerRegistry, api: Api, gguf: Path) -> dict[str, Any]:
    load_before = os.getloadavg()
    size, digest = gguf.stat().st_size, sha256_file(gguf)
    server, http = api.server, api.http
    with gguf.open("rb") as f:
        http.post(f"{server.url}/api/blobs/{digest}", content=f).raise_for_status()
    api.post("/api/create", {"model": "bench-gemma", "files": {"m.gguf": digest}, "stream": False})
    remote = f"{registry.host}/library/gemma3:270m"
    api.post("/api/copy", {"source": "bench-gemma", "destination": remote})
    api.post("/api/push", {"model": remote, "insecure": True, "stream": False})

    push_s: list[float] = []
    curl_up_s: list[float] = []
    pushed = [f"{registry.host}/library/gemma3-push{i}:270m" for i in range(runs)]
    for i, target in enumerate(pushed):
        api.post("/api/copy", {"source": "bench-gemma", "destination": target})
        body = {"model": target, "insecure": True, "stream": False}
        push_s.append(timed(lambda b=body: api.post("/api/push", b)))
        curl_up_s.append(curl_upload(http, registry, f"library/curl-up{i}", gguf, digest))

    for name in ("bench-gemma", remote, *pushed):
        api.delete(name)
    blob = server.models / "blobs" / ("sha256-" + digest[7:])
    assert not blob.exists()

    url = f"{registry.url}/v2/library/gemma3/blobs/{digest}"
    out = server.models.parent / "download.bin"
    pull_s: list[float] = []
    curl_s: list[float] = []
    curl_sha_s: list[float] = []
    httpx_s: list[float] = []
    body = {"model": remote, "insecure": True, "stream": False}
    for _ in range(runs):
        pull_s.append(timed(lambda: api.post("/api/pull", body)))
        assert sha256_file(blob) == digest
        api.delete(remote)
        curl = ["curl", "-sf", "-o", str(out), url]
        curl_s.append(timed(lambda c=curl: subprocess.run(c, check=True)))
        out.unlink()
        # curl, then the check a careful user adds (corral verifies every blob it pulls);
        # openssl uses the CPU's SHA instructions, as Python's hashlib does
        check = f"curl -sf -o {out} {url} && openssl dgst -sha256 {out} >/dev/null"
        curl_sha_s.append(timed(lambda c=check: subprocess.run(c, shell=True, check=True)))
        out.unlink()
        httpx_s.append(timed(lambda: httpx_download(http, url, out)))
        out.unlink()

    def mbps(seconds: list[float]) -> float:
        return round(size / statistics.median(seconds) / 1e6, 1)

    def ratio(base: list[float], ours: list[float]) -> float:
        return round(statistics.median(base) / statistics.median(ours), 3)

    return {
        "model": "gemma3 270m Q4_K_M",
        "blob_bytes": size,
        "runs": runs,
        "cpus": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "pull_mb_s": mbps(pull_s),
        "curl_download_mb_s": mbps(curl_s),
        "httpx_download_mb_s": mbps(httpx_s),
        "curl_then_sha256_mb_s": mbps(curl_sha_s),
        "pull_vs_curl": ratio(curl_s, pull_s),
        "pull_vs_curl_then_sha256": ratio(curl_sha_s, pull_s),
        "pull_vs_httpx": ratio(httpx_s, pull_s),
        "push_mb_s": mbps(push_s),
        "curl_upload_mb_s": mbps(curl_up_s),
        "push_vs_curl": ratio(curl_up_s, push_s),
        "seconds": {
            "pull": [round(x, 3) for x in pull_s],
            "curl_download": [round(x, 3) for x in curl_s],
            "curl_then_sha256": [round(x, 3) for x in curl_sha_s],
            "httpx_download": [round(x, 3) for x in httpx_s],
            "push": [round(x, 3) for x in push_s],
            "curl_upload": [round(x, 3) for x in curl_up_s],
        },
    }


def httpx_download(http: httpx.Client, url: str, out: Path) -> None:
    with http.stream("GET", url) as r, out.open("wb") as f:
        r.raise_for_status()
        for chunk in r.iter_raw():
            f.write(chunk)


def curl_upload(
    http: httpx.Client, registry: DockerRegistry, repo: str, path: Path, digest: str
) -> float:
    r = http.post(f"{registry.url}/v2/{repo}/blobs/uploads/")
    r.raise_for_status()
    location = httpx.URL(registry.url).join(r.headers["location"])
    location = location.copy_merge_params({"digest": digest})
    cmd = [
        "curl", "-sf", "-T", str(path), "-H", "Content-Type: application/octet-stream",
        "-H", "Expect:", str(location),
    ]  # fmt: skip
    return timed(lambda: subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL))


if __name__ == "__main__":
    main()
