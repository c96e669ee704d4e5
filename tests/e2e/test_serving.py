"""The serving core end to end on a real model: a single-slot ``corral serve`` with no queue
(``OLLAMA_NUM_PARALLEL=1``, ``OLLAMA_MAX_QUEUE=0``), so any request that would have to wait is
answered 503 at once. That makes "the slot is busy" observable, and so the tests can show,
ordered by what they observe, that a client who leaves a ``stream: false`` request frees the
slot, and that a stopped model leaves no runner process behind."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import openai
import pytest

from tests.conditions import wait_for
from tests.serverproc import ServerProcess

pytestmark = pytest.mark.slow

BUSY = "server busy, please try again.  maximum pending requests exceeded"
COUNTING = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,"  # a raw prompt SmolLM2 goes on counting from
LONG = {"num_predict": 100_000, "temperature": 0}  # counting goes on, through context shifts
COUNT_MESSAGES = [{"role": "user", "content": COUNTING}]


@pytest.fixture(scope="module")
def noqueue(
    tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path
) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        tmp_path_factory.mktemp("noqueue") / "models",
        env={"OLLAMA_NUM_PARALLEL": "1", "OLLAMA_MAX_QUEUE": "0"},
    ).start()
    c = ollama.Client(host=proc.url)
    c.create(model="smol", files={"m.gguf": c.create_blob(smollm2_gguf)})
    # the same runner, with a template that is only the messages' text: chat routes count too
    c.create(model="counter", from_="smol", template="{{ range .Messages }}{{ .Content }}{{ end }}")
    c.generate(model="smol", prompt="")  # load
    yield proc
    proc.stop()


def probe(url: str) -> int:
    """The status of a 1-token request: 503 while the only slot is taken."""
    body = {"model": "smol", "prompt": "Hi", "stream": False, "options": {"num_predict": 1}}
    return httpx.post(url + "/api/generate", json=body, timeout=60).status_code


def send_and_hold(url: str, path: str, body: dict[str, object]) -> socket.socket:
    """Send a request on a raw connection and leave it open, unread."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    data = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    )
    sock.sendall(head.encode() + data)
    return sock


def runner_pids(server: ServerProcess) -> list[int]:
    assert server.proc is not None
    pids = []
    for task in Path(f"/proc/{server.proc.pid}/task").iterdir():
        pids += [int(p) for p in (task / "children").read_text().split()]
    return pids


def test_a_request_past_the_queue_is_answered_503(noqueue: ServerProcess) -> None:
    c = ollama.Client(host=noqueue.url)
    stream = c.generate(model="smol", prompt=COUNTING, raw=True, options=LONG, stream=True)
    next(iter(stream))  # the only slot is now generating
    with pytest.raises(ollama.ResponseError) as e:
        c.generate(model="smol", prompt="Hi", options={"num_predict": 1})
    assert e.value.status_code == 503 and e.value.error == BUSY
    oai = openai.OpenAI(base_url=noqueue.url + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.APIStatusError) as oe:
        oai.chat.completions.create(model="smol", messages=[{"role": "user", "content": "Hi"}])
    assert oe.value.status_code == 503
    stream.close()  # type: ignore[attr-defined]
    wait_for(lambda: probe(noqueue.url) == 200, "the slot was not freed after the stream closed")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/generate", {"model": "smol", "prompt": COUNTING, "raw": True, "options": LONG}),
        ("/api/chat", {"model": "counter", "messages": COUNT_MESSAGES, "options": LONG}),
        (
            "/v1/chat/completions",
            {
                "model": "counter",
                "messages": COUNT_MESSAGES,
                "max_tokens": 100_000,
                "temperature": 0,
            },
        ),
    ],
)
def test_a_client_leaving_a_non_streamed_request_frees_the_slot(
    noqueue: ServerProcess, path: str, body: dict[str, object]
) -> None:
    sock = send_and_hold(noqueue.url, path, {"stream": False, **body})
    try:
        wait_for(lambda: probe(noqueue.url) == 503, "the held request never took the slot")
    finally:
        sock.close()
    wait_for(lambda: probe(noqueue.url) == 200, "the slot stayed taken after the client left")


def test_stop_after_cancelled_requests_leaves_no_runner(noqueue: ServerProcess) -> None:
    c = ollama.Client(host=noqueue.url)
    for _ in range(5):
        stream = c.generate(model="smol", prompt=COUNTING, raw=True, options=LONG, stream=True)
        next(iter(stream))
        stream.close()  # type: ignore[attr-defined]
        wait_for(lambda: probe(noqueue.url) == 200, "the slot was not freed")
    assert runner_pids(noqueue)
    r = c.generate(model="smol", prompt="", keep_alive=0)
    assert r.done_reason == "unload"
    assert c.ps().models == []
    wait_for(lambda: runner_pids(noqueue) == [], "a runner process outlived the unload")
    c.generate(model="smol", prompt="")  # loaded again for the other tests
