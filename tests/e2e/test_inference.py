"""Inference end to end on real models through the official ``ollama`` client.

No test is ordered by sleeping or judged by a clock; ``HANG_GUARD`` only turns a hang into a
failure. Model text is compared only between runs made under the same conditions: the first run
of a prompt evaluates it whole, a repeat finds it cached and evaluates only its last token, and
with flash attention off (the CPU default) a greedy near-tie can resolve differently between the
two. So a comparison starts with a warm-up run that caches the prompt (see ``warm_up``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import ollama
import pytest

from tests.serverproc import ServerProcess

pytestmark = pytest.mark.slow

GREEDY = {"temperature": 0, "num_predict": 24}
HANG_GUARD = 60.0  # seconds; never reached unless the server hangs


def warm_up(client: ollama.Client, **request: Any) -> None:
    """Run ``request`` once, so that the runs compared after it all find its prompt cached."""
    if "messages" in request:
        client.chat(**request)
    else:
        client.generate(**request)


def wait_until(what: str, cond: Callable[[], bool]) -> None:
    """Poll ``cond`` until it holds; fail after ``HANG_GUARD`` seconds."""
    deadline = time.monotonic() + HANG_GUARD
    while not cond():
        assert time.monotonic() < deadline, f"{what}: not within {HANG_GUARD} s"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def smol(client: ollama.Client, smollm2_digest: str) -> str:
    client.create(model="smollm2:135m", files={"model.gguf": smollm2_digest})
    return "smollm2:135m"


@pytest.fixture(scope="module")
def gemma(client: ollama.Client, gemma3_gguf: Path) -> str:
    client.create(model="gemma3:270m", files={"model.gguf": client.create_blob(gemma3_gguf)})
    return "gemma3:270m"


def test_generate_not_streaming(client: ollama.Client, smol: str) -> None:
    r = client.generate(model=smol, prompt="What is the capital of France?", options=GREEDY)
    assert r.done and r.done_reason in ("stop", "length")
    assert "Paris" in r.response
    assert r.eval_count and r.eval_count > 0
    assert r.prompt_eval_count and r.prompt_eval_count > 5
    assert r.total_duration and r.eval_duration and r.prompt_eval_duration
    assert r.total_duration >= r.eval_duration
    assert r.context and len(r.context) >= r.prompt_eval_count


def test_generate_streaming(client: ollama.Client, smol: str) -> None:
    parts = list(client.generate(model=smol, prompt="Count to five.", options=GREEDY, stream=True))
    assert len(parts) > 3
    assert all(not p.done for p in parts[:-1]) and parts[-1].done
    assert "".join(p.response for p in parts).strip()


def test_chat_streaming_and_not(client: ollama.Client, smol: str) -> None:
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    warm_up(client, model=smol, messages=msgs, options=GREEDY)
    r = client.chat(model=smol, messages=msgs, options=GREEDY)
    assert r.message.role == "assistant" and "Paris" in (r.message.content or "")
    streamed = list(client.chat(model=smol, messages=msgs, options=GREEDY, stream=True))
    text = "".join(p.message.content or "" for p in streamed)
    assert text == r.message.content
    assert streamed[-1].done and streamed[-1].eval_count == r.eval_count


def test_num_predict_length(client: ollama.Client, smol: str) -> None:
    r = client.generate(
        model=smol, prompt="Write a long story.", options={"num_predict": 5, "temperature": 0}
    )
    assert r.done_reason == "length"
    assert r.eval_count == 5


def test_stop_words(client: ollama.Client, smol: str) -> None:
    warm_up(client, model=smol, prompt="List three colors.", options=GREEDY)
    base = client.generate(model=smol, prompt="List three colors.", options=GREEDY).response
    words = base.split()
    assert len(words) > 2
    stop = words[1]
    r = client.generate(model=smol, prompt="List three colors.", options={**GREEDY, "stop": [stop]})
    assert stop not in r.response
    assert r.done_reason == "stop"
    assert base.startswith(r.response)


def test_seed_reproducible(client: ollama.Client, smol: str) -> None:
    opts = {"temperature": 0.9, "seed": 1234, "num_predict": 20}
    warm_up(client, model=smol, prompt="Tell me a word.", options=opts)
    a = client.generate(model=smol, prompt="Tell me a word.", options=opts).response
    b = client.generate(model=smol, prompt="Tell me a word.", options=opts).response
    assert a == b
    outs = {
        client.generate(
            model=smol, prompt="Tell me a word.", options={"temperature": 1.5, "num_predict": 20}
        ).response
        for _ in range(3)
    }
    assert len(outs) > 1  # unseeded requests draw their own seeds


class _Cut(Exception):
    """The text ended inside a JSON value."""


def is_json_object_prefix(text: str) -> bool:
    """Whether ``text`` is a JSON object, or the beginning of one: what the JSON grammar
    guarantees for output that ``num_predict`` cut off."""
    pos = 0
    number = re.compile(r"-?[0-9]*\.?[0-9]*(?:[eE][+-]?[0-9]*)?")

    def peek() -> str:
        nonlocal pos
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        if pos == len(text):
            raise _Cut
        return text[pos]

    def string() -> None:
        nonlocal pos
        pos += 1
        while pos < len(text) and text[pos] != '"':
            pos += 2 if text[pos] == "\\" else 1
        if pos >= len(text):
            raise _Cut
        pos += 1

    def container(close: str, keyed: bool) -> None:
        nonlocal pos
        pos += 1
        if peek() == close:
            pos += 1
            return
        while True:
            if keyed:
                if peek() != '"':
                    raise ValueError("a key must be a string")
                string()
                if peek() != ":":
                    raise ValueError("expected ':'")
                pos += 1
            value()
            sep = peek()
            pos += 1
            if sep == close:
                return
            if sep != ",":
                raise ValueError(f"unexpected {sep!r}")

    def value() -> None:
        nonlocal pos
        c = peek()
        if c in "{[":
            container("}" if c == "{" else "]", keyed=c == "{")
        elif c == '"':
            string()
        elif c in "-0123456789":
            end = number.match(text, pos)
            assert end is not None
            if end.end() == len(text):
                raise _Cut
            pos = end.end()
        else:
            word = next((w for w in ("true", "false", "null") if w[0] == c), None)
            piece = text[pos : pos + 5]
            if word is None or not word.startswith(piece[: len(word)]):
                raise ValueError(f"unexpected {c!r}")
            if pos + len(word) > len(text):
                raise _Cut
            pos += len(word)

    try:
        if peek() != "{":
            return False
        value()
        peek()
    except _Cut:
        return True  # cut off, or a complete object followed only by whitespace
    except ValueError:
        return False
    return False  # something follows the object


@pytest.mark.parametrize(
    ("text", "ok"),
    [('{"a": [1, true, "x\\"y"]}', True), ('{"capital": "Par', True), ('{"a": tr', True),
     ('{"a": 1.5e', True), ("{", True), ('{"a": 1}  ', True), ('{"a": 1} x', False),
     ('{"a" 1}', False), ("[1]", False), ('{"a": nul,', False), ('{"a": 1,}', False)],
)  # fmt: skip
def test_is_json_object_prefix(text: str, ok: bool) -> None:
    assert is_json_object_prefix(text) is ok


def test_json_mode_and_schema(client: ollama.Client, smol: str, gemma: str) -> None:
    # Plain JSON mode does not bound the output: a tiny model can nest or repeat keys until
    # num_predict, and whether this prompt's object closes within it is model text, which a
    # greedy near-tie can change. Either way the output must be JSON as far as it goes.
    prompt = 'Give the capital of France as JSON like {"capital": "..."}.'
    r = client.generate(
        model=gemma, prompt=prompt, format="json", options={"temperature": 0, "num_predict": 200}
    )
    text = r.response or ""
    assert r.done_reason in ("stop", "length")
    assert is_json_object_prefix(text), text
    if r.done_reason == "stop":
        assert isinstance(json.loads(text), dict)
    else:
        assert r.eval_count == 200
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 20}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    r2 = client.chat(
        model=smol,
        messages=[{"role": "user", "content": "A person, as JSON."}],
        format=schema,
        options={"temperature": 0, "num_predict": 200},
    )
    assert r2.done_reason == "stop"
    jsonschema.validate(json.loads(r2.message.content or ""), schema)


def test_prompt_eval_count_includes_the_cached_prefix(client: ollama.Client, smol: str) -> None:
    prompt = "Name three rivers in Europe, one per line."
    first = client.generate(model=smol, prompt=prompt, options={**GREEDY, "num_predict": 2})
    again = client.generate(model=smol, prompt=prompt, options={**GREEDY, "num_predict": 2})
    assert first.prompt_eval_count and first.prompt_eval_count > 10
    assert again.prompt_eval_count == first.prompt_eval_count  # as Ollama: cached tokens count


def test_context_continuation(client: ollama.Client, smol: str) -> None:
    first = client.generate(model=smol, prompt="My name is Ada.", options=GREEDY)
    second = client.generate(
        model=smol, prompt="What is my name?", context=first.context, options=GREEDY
    )
    assert second.context and first.context
    assert second.context[: len(first.context)] == first.context


def test_load_unload_and_ps(client: ollama.Client, gemma: str, server: ServerProcess) -> None:
    r = client.generate(model=gemma, prompt="")
    assert r.done and r.done_reason == "load"
    ps = {m.model: m for m in client.ps().models}
    assert gemma in ps
    m = ps[gemma]
    assert m.size and m.size > 50_000_000
    assert m.details and m.details.family == "gemma3"
    assert m.expires_at is not None
    raw = httpx.get(f"{server.url}/api/ps").json()["models"]
    assert any(x["model"] == gemma and x["context_length"] > 0 for x in raw)
    r = client.generate(model=gemma, prompt="", keep_alive=0)
    assert r.done_reason == "unload"
    assert gemma not in {m.model for m in client.ps().models}


def test_keep_alive_expiry(client: ollama.Client, gemma: str) -> None:
    client.generate(model=gemma, prompt="", keep_alive="1s")
    assert gemma in {m.model for m in client.ps().models}
    wait_until("expiry", lambda: gemma not in {m.model for m in client.ps().models})


def test_base_model_raw_generate(client: ollama.Client, gemma: str) -> None:
    r = client.generate(
        model=gemma,
        prompt="The capital of France is",
        raw=True,
        options={"temperature": 0, "num_predict": 8},
    )
    assert r.response.strip()
    assert r.done_reason in ("stop", "length")


def test_debug_render_only(client: ollama.Client, smol: str) -> None:
    # the ollama client's typed responses drop _debug_info (Ollama's key): read the raw answer
    msgs = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"}]
    body = {"model": smol, "messages": msgs, "_debug_render_only": True, "stream": False}
    r = client._request_raw("POST", "/api/chat", json=body).json()
    assert r["_debug_info"] == {
        "rendered_template": "<|im_start|>system\nBe kind.<|im_end|>\n<|im_start|>user\nHi"
        "<|im_end|>\n<|im_start|>assistant\n",
        "image_count": 0,
    }
    body = {"model": smol, "prompt": "Hi", "raw": True, "_debug_render_only": True, "stream": False}
    r = client._request_raw("POST", "/api/generate", json=body).json()
    assert r["_debug_info"] == {"rendered_template": "Hi", "image_count": 0}
    body = {
        "model": smol,
        "prompt": "Hi",
        "system": "S",
        "_debug_render_only": True,
        "stream": False,
    }
    r = client._request_raw("POST", "/api/generate", json=body).json()
    assert r["_debug_info"]["rendered_template"] == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_tools_refused_without_template_support(client: ollama.Client, smol: str) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "f",
            "description": "d",
            "parameters": {"type": "object", "properties": {}},
        },
    }
    with pytest.raises(ollama.ResponseError) as e:
        client.chat(model=smol, messages=[{"role": "user", "content": "x"}], tools=[tool])
    assert e.value.status_code == 400
    assert "does not support tools" in e.value.error


def test_end_to_end_tool_call(client: ollama.Client, smol: str) -> None:
    """A real model's answer, forced into the tool-call JSON shape, comes back as tool_calls."""
    client.create(
        model="smol-tools",
        from_="smollm2:135m",
        template=(
            "{{- range .Messages }}<|im_start|>{{ .Role }}\n"
            '{{- if and (eq .Role "system") $.Tools }} Tools: {{ json $.Tools }}{{ end }}\n'
            "{{- if .ToolCalls }}{{ range .ToolCalls }}"
            '{"name": "{{ .Function.Name }}", "arguments": {{ json .Function.Arguments }}}'
            "{{ end }}{{ else }}{{ .Content }}{{ end }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"
        ),
    )
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "enum": ["get_weather"]},
            "arguments": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
        "required": ["name", "arguments"],
    }
    msgs = [{"role": "user", "content": "What is the weather in Paris?"}]
    r = client.chat(
        model="smol-tools",
        messages=msgs,
        tools=[tool],
        format=schema,
        options={"temperature": 0, "num_predict": 60},
    )
    calls = r.message.tool_calls or []
    assert len(calls) == 1
    assert calls[0].function.name == "get_weather"
    assert isinstance(calls[0].function.arguments, dict)
    assert "city" in calls[0].function.arguments
    streamed = list(
        client.chat(
            model="smol-tools",
            messages=msgs,
            tools=[tool],
            format=schema,
            options={"temperature": 0, "num_predict": 60},
            stream=True,
        )
    )
    scalls = [c for p in streamed for c in (p.message.tool_calls or [])]
    assert [c.function.name for c in scalls] == ["get_weather"]
    assert "".join(p.message.content or "" for p in streamed).strip() == ""


INFER_BAD = [
    ("/api/generate", {"model": "no-such-model", "prompt": "x"}, 404, "not found"),
    ("/api/generate", {"prompt": "x"}, 400, "model is required"),
    (
        "/api/generate",
        {"model": "smollm2:135m", "prompt": "x", "options": {"top_k": "many"}},
        400,
        "top_k",
    ),
    (
        "/api/generate",
        {"model": "smollm2:135m", "prompt": "x", "format": "yaml"},
        400,
        "invalid format",
    ),
    (
        "/api/generate",
        {"model": "smollm2:135m", "prompt": "x", "keep_alive": "soon"},
        400,
        "invalid duration",
    ),
    (
        "/api/generate",
        {"model": "smollm2:135m", "prompt": "x", "raw": True, "system": "s"},
        400,
        "raw mode does not support",
    ),
    (
        "/api/generate",
        {"model": "smollm2:135m", "prompt": "x", "suffix": "y"},
        400,
        "does not support insert",
    ),
    (
        "/api/generate",
        {"model": "smollm2:135m", "prompt": "x", "think": True},
        400,
        "does not support thinking",
    ),
    ("/api/generate", {"model": "smollm2:135m", "prompt": 5}, 400, '"prompt"'),
    ("/api/chat", {"model": "smollm2:135m", "messages": [{"content": "x"}]}, 400, "role"),
    ("/api/chat", {"model": "smollm2:135m", "messages": "hello"}, 400, '"messages"'),
    (
        "/api/chat",
        {"model": "smollm2:135m", "messages": [{"role": "wizard", "content": "x"}]},
        400,
        "role",
    ),
    ("/api/chat", {"model": "bad name!", "messages": []}, 400, "invalid model name"),
    ("/api/chat", {"model": "smollm2:135m", "messages": [], "format": {"type": 5}}, 400, "format"),
]


@pytest.mark.parametrize(("path", "body", "status", "message"), INFER_BAD)
def test_inference_bad_input(
    server: ServerProcess, smol: str, path: str, body: dict[str, object], status: int, message: str
) -> None:
    r = httpx.post(server.url + path, json=body, timeout=60)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]


def test_empty_messages_load(client: ollama.Client, smol: str) -> None:
    r = client.chat(model=smol, messages=[])
    assert r.done and r.done_reason == "load"


# ---- process-level behaviour on a dedicated single-slot server ------------------------------


@pytest.fixture(scope="module")
def solo(tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        tmp_path_factory.mktemp("solo") / "models", env={"OLLAMA_NUM_PARALLEL": "1"}
    ).start()
    c = ollama.Client(host=proc.url)
    c.create(model="smol", files={"m.gguf": c.create_blob(smollm2_gguf)})
    yield proc
    proc.stop()


def _runner_pids(server: ServerProcess) -> list[int]:
    assert server.proc is not None
    pids = []
    for task in Path(f"/proc/{server.proc.pid}/task").iterdir():
        pids += [int(p) for p in (task / "children").read_text().split()]
    return pids


# Counting goes on: with context shifts this runs for 100,000 tokens unless it is cancelled.
COUNTING = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,"
ENDLESS_OPTIONS = {"num_predict": 100_000, "temperature": 0}
ENDLESS = {"model": "smol", "prompt": COUNTING, "raw": True, "options": ENDLESS_OPTIONS}


def test_disconnect_cancels_generation(solo: ServerProcess) -> None:
    """A client that leaves frees the only slot: the next request is served (without the cancel
    it would wait behind ENDLESS and fail the hang guard)."""
    c = ollama.Client(host=solo.url, timeout=HANG_GUARD)
    c.generate(model="smol", prompt="")  # load
    with httpx.stream("POST", f"{solo.url}/api/generate", timeout=HANG_GUARD, json=ENDLESS) as r:
        for i, _line in enumerate(r.iter_lines()):
            if i == 3:
                break
    # a story never ends within 3 greedy tokens: the answer is cut by num_predict
    story = {"num_predict": 3, "temperature": 0}
    out = c.generate(model="smol", prompt="Write a long story.", options=story)
    assert out.done and out.done_reason == "length" and out.eval_count == 3


def test_killed_runner_errors_then_reloads(solo: ServerProcess) -> None:
    c = ollama.Client(host=solo.url, timeout=HANG_GUARD)
    c.generate(model="smol", prompt="")
    pids = _runner_pids(solo)
    assert pids
    streaming = threading.Event()
    errors: list[str] = []

    def long_request() -> None:
        try:
            for _ in c.generate(
                model="smol", prompt=COUNTING, raw=True, options=ENDLESS_OPTIONS, stream=True
            ):
                streaming.set()
        except ollama.ResponseError as e:
            errors.append(e.error)

    t = threading.Thread(target=long_request)
    t.start()
    assert streaming.wait(HANG_GUARD), "the long request never streamed"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    t.join(HANG_GUARD)
    assert not t.is_alive()
    assert errors and "runner" in errors[0]
    r = c.generate(model="smol", prompt="Hi", options={"num_predict": 3})
    assert r.done
    assert set(_runner_pids(solo)).isdisjoint(pids)


def test_chat_model_embeddings(client: ollama.Client, smol: str) -> None:
    """Like Ollama, a chat model answers /api/embed (last-token pooling, normalised)."""
    r = client.embed(model=smol, input=["hello there", "general kenobi"])
    assert len(r.embeddings) == 2 and len(r.embeddings[0]) == 576
    assert abs(sum(v * v for v in r.embeddings[0]) - 1.0) < 1e-3
    # and it still chats afterwards (a separate runner serves the embeddings)
    assert client.generate(model=smol, prompt="Hi", options={"num_predict": 2}).done
