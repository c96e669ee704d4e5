"""The OpenAI-compatible API end to end: the official ``openai`` SDK and LangChain against live
corral servers.

Most tests run against a real HTTP server whose runners are scripted fake engines
(:mod:`tests.openai.fakeserver`), so replies, tool calls and token counts are known exactly. The
API-key tests run ``corral serve`` itself (``CORRAL_ENGINE=fake``, ``CORRAL_API_KEY``); the tests
marked ``slow`` run SmolLM2 for real.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import jsonschema
import ollama
import openai
import pytest
from langchain_ollama import ChatOllama
from langchain_openai import ChatOpenAI

from corral.engine.fake import DEFAULT_REPLY, Endless, Reply
from tests.conditions import wait_for
from tests.fakerunner import InProcessRunner
from tests.openai.fakeserver import FakeServer
from tests.serverproc import ServerProcess
from tests.tinygguf import write_tiny_bert

TOOLS_TEMPLATE = (
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n"
    '{{- if and (eq .Role "system") $.Tools }} Tools: {{ json $.Tools }}{{ end }}\n'
    "{{- if .ToolCalls }}{{ range .ToolCalls }}"
    '{"name": "{{ .Function.Name }}", "arguments": {{ json .Function.Arguments }}}'
    "{{ end }}{{ else }}{{ .Content }}{{ end }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"
)
WEATHER_TOOL = {
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
TOOL_REPLY = '{"name": "get_weather", "arguments": {"city": "Paris"}}'
JSON_REPLY = '{"name": "Ada", "age": 36}'
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}
SCRIPT: dict[str, Reply] = {
    "weather": TOOL_REPLY,
    "JSON please": JSON_REPLY,
    "forever": Endless("la "),
}
CHAT = "fake-chat"
EMBED = "fake-embed"


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path) -> Iterator[FakeServer]:
    root = tmp_path_factory.mktemp("openai-fake")
    server = FakeServer(root / "models", script=SCRIPT).start()
    try:
        client = ollama.Client(host=server.url)
        digest = client.create_blob(smollm2_gguf)
        client.create(model=CHAT, files={"model.gguf": digest}, template=TOOLS_TEMPLATE)
        client.copy(CHAT, "jane/fake-chat:v1")
        bert = write_tiny_bert(root / "bert.gguf")
        client.create(model=EMBED, files={"model.gguf": client.create_blob(bert)})
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def oai(fake: FakeServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.url + "/v1", api_key="ignored", max_retries=0)


def ask(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


# ---- chat completions -------------------------------------------------------------------------


def test_chat_not_streaming(oai: openai.OpenAI) -> None:
    r = oai.chat.completions.create(model=CHAT, messages=ask("hello"))
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    assert r.model == CHAT and r.created > 0
    (choice,) = r.choices
    assert choice.message.role == "assistant"
    assert choice.message.content == DEFAULT_REPLY
    assert choice.finish_reason == "stop"
    assert r.usage is not None
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > len(DEFAULT_REPLY) - 2
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_chat_streaming(oai: openai.OpenAI) -> None:
    chunks = list(
        oai.chat.completions.create(
            model=CHAT,
            messages=ask("hello again"),
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert len({c.id for c in chunks}) == 1
    first, finish, last = chunks[0], chunks[-2], chunks[-1]
    assert first.choices[0].delta.role == "assistant"
    assert all(c.choices[0].delta.role is None for c in chunks[1:-1])
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == DEFAULT_REPLY
    assert finish.choices[0].finish_reason == "stop"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-2])
    assert last.choices == [] and last.usage is not None and last.usage.completion_tokens > 0


def test_chat_stream_wire_format(fake: FakeServer) -> None:
    body = {"model": CHAT, "messages": ask("hi"), "stream": True, "max_tokens": 3}
    with httpx.stream("POST", fake.url + "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = r.read().decode()
    events = raw.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    payloads = [json.loads(e.removeprefix("data: ")) for e in events[:-2]]
    assert all(e.startswith("data: {") for e in events[:-2])
    assert payloads[-1]["choices"][0]["finish_reason"] == "length"
    assert all("usage" not in p for p in payloads)
    assert "".join(p["choices"][0]["delta"].get("content", "") for p in payloads) == "The"


def test_chat_max_tokens_stop_and_seed(oai: openai.OpenAI) -> None:
    r = oai.chat.completions.create(model=CHAT, messages=ask("forever"), max_tokens=6, seed=1)
    assert r.choices[0].message.content == "la la "
    assert r.choices[0].finish_reason == "length"
    r = oai.chat.completions.create(
        model=CHAT, messages=ask("forever"), max_completion_tokens=50, stop=["a l"]
    )
    assert r.choices[0].message.content == "l" and r.choices[0].finish_reason == "stop"


def test_client_disconnect_cancels_generation(oai: openai.OpenAI, fake: FakeServer) -> None:
    """The runner pauses 50 steps into an endless answer; the client leaves after 10 events;
    the server must then cancel the request (seen by the runner while it is paused), and the
    request ends there instead of filling the context."""
    oai.chat.completions.create(model=CHAT, messages=ask("hi"), max_tokens=1)  # load
    (loaded,) = fake.services.scheduler.running()
    runner = cast(InProcessRunner, loaded.runner)
    before, cancels = runner.engine.steps, runner.cancels
    runner.pause_after = before + 50
    body = {"model": CHAT, "messages": ask("forever and ever"), "stream": True}
    try:
        with httpx.stream("POST", fake.url + "/v1/chat/completions", json=body) as r:
            events = [line for _, line in zip(range(10), r.iter_lines(), strict=False) if line]
            assert all(e.startswith("data: {") for e in events)
        wait_for(lambda: runner.cancels > cancels, "the server did not cancel the request")
    finally:
        runner.pause_after = None
        fake.call(runner.gate.set)
    wait_for(lambda: not runner.engine.has_work(), "generation went on after the client left")
    assert runner.engine.steps - before <= 52


def test_json_mode(oai: openai.OpenAI) -> None:
    r = oai.chat.completions.create(
        model=CHAT, messages=ask("JSON please"), response_format={"type": "json_object"}
    )
    assert json.loads(r.choices[0].message.content or "") == {"name": "Ada", "age": 36}


def test_json_schema_response_format(oai: openai.OpenAI) -> None:
    fmt: Any = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}}
    r = oai.chat.completions.create(model=CHAT, messages=ask("JSON please"), response_format=fmt)
    jsonschema.validate(json.loads(r.choices[0].message.content or ""), PERSON)
    # the schema reaches the native layer, which checks it
    bad: Any = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": 5}}}
    with pytest.raises(openai.BadRequestError) as e:
        oai.chat.completions.create(model=CHAT, messages=ask("JSON please"), response_format=bad)
    assert "format" in e.value.message


def test_tool_call(oai: openai.OpenAI) -> None:
    tools: Any = [WEATHER_TOOL]
    r = oai.chat.completions.create(
        model=CHAT, messages=ask("What is the weather in Paris?"), tools=tools
    )
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]

    # the answer goes back as a tool message naming the call by id
    follow = oai.chat.completions.create(
        model=CHAT,
        messages=[
            *ask("What is the weather in Paris?"),
            choice.message.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call.id, "content": "sunny, 24 C"},
        ],
        tools=tools,
    )
    assert follow.choices[0].finish_reason in ("stop", "tool_calls")

    # tool_choice "none" drops the tools: the reply stays text
    r = oai.chat.completions.create(
        model=CHAT, messages=ask("What is the weather?"), tools=tools, tool_choice="none"
    )
    assert r.choices[0].message.tool_calls is None
    assert r.choices[0].message.content == TOOL_REPLY


def test_tool_call_streaming(oai: openai.OpenAI) -> None:
    tools: Any = [WEATHER_TOOL]
    chunks = list(
        oai.chat.completions.create(
            model=CHAT, messages=ask("weather in Paris?"), tools=tools, stream=True
        )
    )
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert len(calls) == 1 and calls[0].index == 0 and (calls[0].id or "").startswith("call_")
    assert calls[0].function is not None and calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments or "") == {"city": "Paris"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == ""


def test_image_content_parts_reach_the_model(oai: openai.OpenAI) -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()
    content: Any = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
    ]
    # a text-only model: the native flow refuses images, with its own message
    with pytest.raises(openai.BadRequestError) as e:
        oai.chat.completions.create(model=CHAT, messages=[{"role": "user", "content": content}])
    assert "vision" in e.value.message


# ---- completions ------------------------------------------------------------------------------


def test_completions(oai: openai.OpenAI) -> None:
    r = oai.completions.create(model=CHAT, prompt="Say something")
    assert r.object == "text_completion" and r.id.startswith("cmpl-")
    assert [c.text for c in r.choices] == [DEFAULT_REPLY]
    assert r.choices[0].finish_reason == "stop"
    assert r.usage is not None and r.usage.completion_tokens > 0

    r = oai.completions.create(model=CHAT, prompt=["one", "forever"], max_tokens=5, echo=True)
    assert [(c.index, c.text, c.finish_reason) for c in r.choices] == [
        (0, "one" + DEFAULT_REPLY[:5], "length"),
        (1, "foreverla la", "length"),
    ]
    assert r.usage is not None and r.usage.completion_tokens == 10


def test_completions_streaming(oai: openai.OpenAI) -> None:
    chunks = list(
        oai.completions.create(
            model=CHAT,
            prompt=["a", "forever"],
            max_tokens=4,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    texts = ["", ""]
    reasons: list[str | None] = [None, None]
    for c in chunks[:-1]:
        (choice,) = c.choices
        texts[choice.index] += choice.text
        reasons[choice.index] = choice.finish_reason or reasons[choice.index]
    assert texts == [DEFAULT_REPLY[:4], "la l"]
    assert reasons == ["length", "length"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 8


def test_completions_suffix_needs_insert(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        oai.completions.create(model=CHAT, prompt="def f(", suffix="return 1")
    assert "does not support insert" in e.value.message


# ---- embeddings -------------------------------------------------------------------------------


def test_embeddings_base64_and_float(oai: openai.OpenAI, fake: FakeServer) -> None:
    default = oai.embeddings.create(model=EMBED, input=["hello", "world"])  # SDK asks base64
    floats = oai.embeddings.create(model=EMBED, input=["hello", "world"], encoding_format="float")
    assert [d.index for d in default.data] == [0, 1]
    for a, b in zip(default.data, floats.data, strict=True):
        assert len(a.embedding) == 16
        assert a.embedding == pytest.approx(b.embedding, rel=1e-6)
    assert default.usage.prompt_tokens > 0 and default.model == EMBED

    raw = httpx.post(
        fake.url + "/v1/embeddings",
        json={"model": EMBED, "input": "hello", "encoding_format": "base64"},
    ).json()
    text = raw["data"][0]["embedding"]
    assert isinstance(text, str)
    assert list(struct.unpack("<16f", base64.b64decode(text))) == pytest.approx(
        floats.data[0].embedding, rel=1e-6
    )


def test_embeddings_dimensions(oai: openai.OpenAI) -> None:
    r = oai.embeddings.create(model=EMBED, input="hello", dimensions=4, encoding_format="float")
    (d,) = r.data
    assert len(d.embedding) == 4
    assert sum(v * v for v in d.embedding) == pytest.approx(1.0, rel=1e-5)


def test_embeddings_bad_encoding(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        oai.embeddings.create(model=EMBED, input="x", encoding_format="int8")  # type: ignore[arg-type]
    assert "encoding_format" in e.value.message


# ---- models -----------------------------------------------------------------------------------


def test_models_list_and_retrieve(oai: openai.OpenAI) -> None:
    models = {m.id: m for m in oai.models.list()}
    assert {f"{CHAT}:latest", "jane/fake-chat:v1", f"{EMBED}:latest"} <= set(models)
    m = models[f"{CHAT}:latest"]
    assert m.object == "model" and m.owned_by == "library" and m.created > 1_600_000_000
    assert models["jane/fake-chat:v1"].owned_by == "jane"

    one = oai.models.retrieve(f"{CHAT}:latest")
    assert (one.id, one.owned_by, one.created) == (m.id, "library", m.created)
    other = oai.models.retrieve("jane/fake-chat:v1")
    assert other.id == "jane/fake-chat:v1" and other.owned_by == "jane"
    with pytest.raises(openai.NotFoundError) as e:
        oai.models.retrieve("no-such-model:1")
    assert e.value.body == {
        "message": "model 'no-such-model:1' not found",
        "type": "not_found_error",
        "param": None,
        "code": None,
    }


# ---- errors, extra fields ---------------------------------------------------------------------


def test_unknown_model(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as e:
        oai.chat.completions.create(model="nope", messages=ask("hi"))
    assert e.value.status_code == 404
    assert e.value.body == {
        "message": "model 'nope' not found",
        "type": "not_found_error",
        "param": None,
        "code": None,
    }
    with pytest.raises(openai.NotFoundError):
        oai.completions.create(model="nope", prompt="hi", stream=True)
    with pytest.raises(openai.NotFoundError):
        oai.embeddings.create(model="nope", input="hi")


BAD_REQUESTS: list[tuple[str, Any, str]] = [
    ("/v1/chat/completions", b"{not json", "invalid JSON"),
    ("/v1/chat/completions", b"", "missing request body"),
    ("/v1/chat/completions", [1, 2], "JSON object"),
    ("/v1/chat/completions", {"model": CHAT, "messages": []}, "too short"),
    ("/v1/chat/completions", {"model": CHAT, "messages": "hi"}, "messages"),
    ("/v1/chat/completions", {"model": CHAT, "messages": ask("x"), "temperature": "hot"}, "temp"),
    ("/v1/chat/completions", {"model": CHAT, "messages": ask("x"), "stream": "yes"}, "stream"),
    ("/v1/chat/completions", {"messages": ask("x")}, "model is required"),
    ("/v1/chat/completions", {"model": "bad name!", "messages": ask("x")}, "invalid model name"),
    (
        "/v1/chat/completions",
        {"model": CHAT, "messages": [{"role": "wizard", "content": "x"}]},
        "role",
    ),
    ("/v1/chat/completions", {"model": CHAT, "messages": ask("x"), "keep_alive": "soon"}, "dur"),
    ("/v1/completions", {"model": CHAT, "prompt": [1, 2]}, "prompt"),
    ("/v1/completions", {"model": CHAT, "prompt": []}, "empty"),
    ("/v1/completions", {"model": CHAT, "prompt": "x", "max_tokens": 1.5}, "max_tokens"),
    ("/v1/embeddings", {"model": EMBED}, "invalid input"),
    ("/v1/embeddings", {"model": EMBED, "input": [[1, 2]]}, "input"),
]


@pytest.mark.parametrize(("path", "body", "message"), BAD_REQUESTS)
def test_bad_requests(fake: FakeServer, path: str, body: Any, message: str) -> None:
    if isinstance(body, bytes):
        r = httpx.post(fake.url + path, content=body)
    else:
        r = httpx.post(fake.url + path, json=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == "invalid_request_error"
    assert message.lower() in err["message"].lower()


def test_bad_request_through_the_sdk(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        oai.chat.completions.create(model=CHAT, messages=[])
    assert e.value.status_code == 400
    assert isinstance(e.value.body, dict) and e.value.body["type"] == "invalid_request_error"


def test_unknown_fields_are_ignored(oai: openai.OpenAI) -> None:
    r = oai.chat.completions.create(
        model=CHAT,
        messages=ask("hello"),
        n=1,
        user="someone",
        logprobs=True,
        top_logprobs=2,
        extra_body={"frobnicate": {"deep": [1]}, "logit_bias": {"50256": -100}},
    )
    assert r.choices[0].message.content == DEFAULT_REPLY
    lp = r.choices[0].logprobs  # honoured now: one entry per token, 2 alternatives each
    assert lp is not None and lp.content is not None
    assert "".join(t.token for t in lp.content) == DEFAULT_REPLY
    assert all(len(t.top_logprobs) == 2 for t in lp.content)


def ps(url: str) -> dict[str, Any]:
    models = httpx.get(url + "/api/ps").json()["models"]
    return {m["name"]: m for m in models}


def test_extra_body_num_ctx_and_keep_alive(oai: openai.OpenAI, fake: FakeServer) -> None:
    oai.chat.completions.create(
        model=CHAT, messages=ask("hello"), extra_body={"num_ctx": 1024, "keep_alive": "1h"}
    )
    loaded = ps(fake.url)[f"{CHAT}:latest"]
    assert loaded["context_length"] == 1024
    oai.completions.create(model=CHAT, prompt="hi", extra_body={"num_ctx": 2048})
    assert ps(fake.url)[f"{CHAT}:latest"]["context_length"] == 2048
    oai.embeddings.create(model=EMBED, input="x", extra_body={"num_ctx": 256, "keep_alive": 0})
    assert f"{EMBED}:latest" not in ps(fake.url)  # keep_alive 0 unloads after the request
    oai.chat.completions.create(model=CHAT, messages=ask("hello"), extra_body={"keep_alive": 0})
    assert f"{CHAT}:latest" not in ps(fake.url)


# ---- LangChain --------------------------------------------------------------------------------


def test_langchain_chat_openai(fake: FakeServer) -> None:
    llm = ChatOpenAI(base_url=fake.url + "/v1", api_key="x", model=CHAT, max_retries=0)  # type: ignore[arg-type]
    assert llm.invoke("hello").content == DEFAULT_REPLY
    assert "".join(str(c.content) for c in llm.stream("hello")) == DEFAULT_REPLY
    bound = llm.bind_tools([WEATHER_TOOL])
    msg = bound.invoke("What is the weather in Paris?")
    assert [(c["name"], c["args"]) for c in msg.tool_calls] == [("get_weather", {"city": "Paris"})]  # type: ignore[attr-defined]


def test_langchain_chat_ollama(fake: FakeServer) -> None:
    llm = ChatOllama(base_url=fake.url, model=CHAT)
    assert llm.invoke("hello").content == DEFAULT_REPLY


# ---- API key ----------------------------------------------------------------------------------

KEY = "s3cret-key"
ROUTES: list[tuple[str, str]] = [
    ("GET", "/api/tags"),
    ("GET", "/api/version"),
    ("GET", "/api/ps"),
    ("POST", "/api/show"),
    ("POST", "/api/generate"),
    ("POST", "/api/chat"),
    ("POST", "/api/embed"),
    ("POST", "/api/embeddings"),
    ("POST", "/api/create"),
    ("POST", "/api/copy"),
    ("DELETE", "/api/delete"),
    ("POST", "/api/pull"),
    ("POST", "/api/push"),
    ("HEAD", "/api/blobs/sha256:" + "0" * 64),
    ("POST", "/api/blobs/sha256:" + "0" * 64),
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/completions"),
    ("POST", "/v1/embeddings"),
    ("GET", "/v1/models"),
    ("GET", "/v1/models/smollm2:135m"),
    ("GET", "/v1/models/jane/x:1"),
]


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"CORRAL_ENGINE": "fake", "CORRAL_API_KEY": KEY}
    proc = ServerProcess(tmp_path_factory.mktemp("openai-key") / "models", env=env).start()
    yield proc
    proc.stop()


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_api_key_required(keyed: ServerProcess, method: str, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
        r = httpx.request(method, keyed.url + path, headers=headers, json={})
        assert r.status_code == 401, (method, path, headers)
        if method == "HEAD":
            continue
        if path.startswith("/v1/"):
            assert r.json()["error"]["code"] == "invalid_api_key"
            assert r.json()["error"]["type"] == "invalid_request_error"
        else:
            assert r.json() == {"error": "unauthorized"}
    r = httpx.request(method, keyed.url + path, headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code != 401


def test_api_key_health_check_and_preflight_stay_open(keyed: ServerProcess) -> None:
    assert httpx.get(keyed.url + "/").text == "Ollama is running"
    assert httpx.head(keyed.url + "/").status_code == 200
    r = httpx.options(
        keyed.url + "/v1/chat/completions",
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "http://localhost:3000"
    r = httpx.get(keyed.url + "/api/tags", headers={"Origin": "http://localhost:3000"})
    assert r.status_code == 401
    assert r.headers["access-control-allow-origin"] == "http://localhost:3000"


def test_api_key_clients(keyed: ServerProcess, smollm2_gguf: Path) -> None:
    client = ollama.Client(host=keyed.url, headers={"Authorization": f"Bearer {KEY}"})
    client.create(model=CHAT, files={"model.gguf": client.create_blob(smollm2_gguf)})
    assert [m.model for m in client.list().models] == [f"{CHAT}:latest"]
    assert client.chat(model=CHAT, messages=ask("hi")).message.content == DEFAULT_REPLY
    with pytest.raises(ollama.ResponseError) as e:
        ollama.Client(host=keyed.url).list()
    assert e.value.status_code == 401

    good = openai.OpenAI(base_url=keyed.url + "/v1", api_key=KEY, max_retries=0)
    r = good.chat.completions.create(model=CHAT, messages=ask("hi"))
    assert r.choices[0].message.content == DEFAULT_REPLY
    assert [m.id for m in good.models.list()] == [f"{CHAT}:latest"]
    bad = openai.OpenAI(base_url=keyed.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


def test_no_api_key_ignores_authorization(fake: FakeServer) -> None:
    r = httpx.get(fake.url + "/api/tags", headers={"Authorization": "Bearer anything"})
    assert r.status_code == 200
    r = httpx.get(fake.url + "/v1/models", headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert r.status_code == 200


# ---- a real model -----------------------------------------------------------------------------

GREEDY: dict[str, Any] = {"temperature": 0, "max_tokens": 24}


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("openai-real") / "models").start()
    try:
        client = ollama.Client(host=proc.url)
        digest = client.create_blob(smollm2_gguf)
        client.create(model="smollm2:135m", files={"model.gguf": digest})
        client.create(model="smol-tools", from_="smollm2:135m", template=TOOLS_TEMPLATE)
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def real_oai(real: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=real.url + "/v1", api_key="ollama", max_retries=0)


@pytest.mark.slow
def test_real_chat(real_oai: openai.OpenAI) -> None:
    msgs = ask("What is the capital of France?")
    r = real_oai.chat.completions.create(model="smollm2:135m", messages=msgs, **GREEDY)
    text = r.choices[0].message.content or ""
    assert "Paris" in text
    assert r.choices[0].finish_reason in ("stop", "length")
    streamed = real_oai.chat.completions.create(
        model="smollm2:135m", messages=msgs, stream=True, **GREEDY
    )
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == text


@pytest.mark.slow
def test_real_json_schema(real_oai: openai.OpenAI) -> None:
    fmt: Any = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}}
    r = real_oai.chat.completions.create(
        model="smollm2:135m",
        messages=ask("A person, as JSON."),
        response_format=fmt,
        temperature=0,
        max_tokens=80,
    )
    jsonschema.validate(json.loads(r.choices[0].message.content or ""), PERSON)
    r = real_oai.chat.completions.create(
        model="smollm2:135m",
        messages=ask("Give me a JSON object with a name and an age."),
        response_format={"type": "json_object"},
        temperature=0,
        max_tokens=200,
    )
    assert r.choices[0].finish_reason == "stop"
    json.loads(r.choices[0].message.content or "")


@pytest.mark.slow
def test_real_tool_call(real_oai: openai.OpenAI) -> None:
    """The model's answer, forced into the tool-call shape by a schema, comes back as a call."""
    shape: Any = {
        "type": "json_schema",
        "json_schema": {
            "name": "call",
            "schema": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "enum": ["get_weather"]},
                    "arguments": WEATHER_TOOL["function"]["parameters"],  # type: ignore[index]
                },
                "required": ["name", "arguments"],
            },
        },
    }
    r = real_oai.chat.completions.create(
        model="smol-tools",
        messages=ask("What is the weather in Paris?"),
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        response_format=shape,
        temperature=0,
        max_tokens=60,
    )
    (call,) = r.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert "city" in json.loads(call.function.arguments)  # type: ignore[union-attr]
    assert r.choices[0].finish_reason == "tool_calls"


@pytest.mark.slow
def test_real_completions_and_num_ctx(real_oai: openai.OpenAI, real: ServerProcess) -> None:
    r = real_oai.completions.create(
        model="smollm2:135m",
        prompt="Write a long story.",
        max_tokens=5,
        temperature=0,
        extra_body={"num_ctx": 1024},
    )
    assert r.choices[0].finish_reason == "length"
    assert r.usage is not None and r.usage.completion_tokens == 5
    assert ps(real.url)["smollm2:135m"]["context_length"] == 1024


@pytest.mark.slow
def test_real_langchain(real: ServerProcess) -> None:
    oa = ChatOpenAI(
        base_url=real.url + "/v1",
        api_key="ollama",  # type: ignore[arg-type]
        model="smollm2:135m",
        temperature=0,
        max_completion_tokens=24,
    )
    assert "Paris" in str(oa.invoke("What is the capital of France?").content)
    ol = ChatOllama(base_url=real.url, model="smollm2:135m", temperature=0, num_predict=24)
    assert "Paris" in str(ol.invoke("What is the capital of France?").content)
