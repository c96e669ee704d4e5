"""Malformed JSON and wrong types on every JSON endpoint (issue 14): each is answered with a
400 in the route's error shape (``{"error": "..."}`` natively, OpenAI's error object on ``/v1``),
never a 5xx or a hang, and the store's files are exactly what they were after every case.

The tables cover empty, truncated and malformed bodies, JSON nested too deep for Python's parser,
numbers Go would refuse (``NaN``, ``1e400``, 5000-digit integers), top-level values that are not
objects, every field of every endpoint given each JSON kind it does not accept, and wrong types
below the top level (messages, tool calls, tools, options, content parts, files...).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.server import badinput
from tests.server.badinput import (
    BY_NAME,
    ENDPOINTS,
    FLOAT,
    INT,
    NO_BLOB,
    SAMPLES,
    USER,
    Endpoint,
    ask,
    assistant_calls,
    chat_with,
    check,
    models_all_there,
    parts,
    refused,
    with_tools,
)
from tests.server.conftest import Served

pytestmark = pytest.mark.anyio

# the module's server and its store check (module-scoped fixtures: one server per module)
anyio_backend = badinput.anyio_backend
store_root = badinput.store_root
shared = badinput.shared
intact = badinput.intact

# ---- the base bodies -----------------------------------------------------------------------------

BASE_STATUS = {"copy": 404, "delete": 404, "create": 404, "pull": 400, "push": 404}


@pytest.mark.parametrize("ep", ENDPOINTS, ids=lambda e: e.name)
async def test_base_bodies(shared: Served, intact: None, ep: Endpoint) -> None:
    """The bodies the tables below spoil: each is answered as expected on its own."""
    r = await check(shared, ep, ep.base)
    assert r.status_code == BASE_STATUS.get(ep.name, 200), r.text


# ---- malformed JSON ------------------------------------------------------------------------------

MALFORMED: dict[str, tuple[bytes, str]] = {
    "empty": (b"", "missing request body"),
    "blank": (b" \r\n\t ", "missing request body"),
    "open-brace": (b"{", "unexpected EOF"),
    "cut-in-a-string": (b'{"model": "a", "prom', "unexpected EOF"),
    "cut-after-a-colon": (b'{"model":', "unexpected EOF"),
    "trailing-comma": (b'{"model": "a",}', "invalid JSON"),
    "single-quotes": (b"{'model': 'a'}", "invalid JSON"),
    "no-colon": (b'{"model" "a"}', "invalid JSON"),
    "garbage-after": (b'{"model": "a"} x', "invalid JSON"),
    "two-objects": (b'{"model": "a"}{"model": "a"}', "invalid JSON"),
    "bare-word": (b"model", "invalid JSON"),
    "invalid-byte-outside-strings": (b'\xff{"model": "a"}', "invalid JSON"),
    "utf8-bom": (b'\xef\xbb\xbf{"model": "a"}', "invalid JSON"),
    "utf16-body": ('{"model": "a"}'.encode("utf-16"), "invalid JSON"),
    "nan": (b'{"model": "a", "keep_alive": NaN}', "invalid JSON"),
    "infinity": (b'{"model": "a", "keep_alive": -Infinity}', "invalid JSON"),
    "float-beyond-float64": (b'{"model": "a", "keep_alive": 1e400}', "out of range"),
    "integer-of-5000-digits": (b'{"model": "a", "keep_alive": ' + b"9" * 5000 + b"}", "invalid"),
    "array-nested-100k-deep": (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    "object-nested-100k-deep": (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "nested too deeply"),
    "field-nested-100k-deep": (
        b'{"model": "a", "options": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "nested too deeply",
    ),
}
TOP_LEVEL = {
    "array": b"[]",
    "array-of-object": b'[{"model": "a"}]',
    "string": b'"a"',
    "number": b"1",
    "null": b"null",
    "true": b"true",
}


@pytest.mark.parametrize("ep", ENDPOINTS, ids=lambda e: e.name)
@pytest.mark.parametrize(("body", "text"), MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_json(
    shared: Served, intact: None, ep: Endpoint, body: bytes, text: str
) -> None:
    assert text in await refused(shared, ep, body, 400)


@pytest.mark.parametrize("ep", ENDPOINTS, ids=lambda e: e.name)
async def test_truncated_base_body(shared: Served, intact: None, ep: Endpoint) -> None:
    whole = json.dumps(ep.base).encode()
    for cut in (1, len(whole) // 3, len(whole) // 2, len(whole) - 1):
        assert await refused(shared, ep, whole[:cut], 400) == "unexpected EOF"


@pytest.mark.parametrize("ep", ENDPOINTS, ids=lambda e: e.name)
@pytest.mark.parametrize("body", TOP_LEVEL.values(), ids=TOP_LEVEL.keys())
async def test_top_level_must_be_an_object(
    shared: Served, intact: None, ep: Endpoint, body: bytes
) -> None:
    assert "must be a JSON object" in await refused(shared, ep, body, 400)


# ---- wrong types at the top level ---------------------------------------------------------------

WRONG_TYPES = [
    pytest.param(ep, name, kind, id=f"{ep.name}-{name}-{kind}")
    for ep in ENDPOINTS
    for name, accepted in ep.fields.items()
    for kind in SAMPLES
    if kind not in accepted and not (kind == INT and FLOAT in accepted)
]


@pytest.mark.parametrize(("ep", "name", "kind"), WRONG_TYPES)
async def test_a_field_of_the_wrong_type(
    shared: Served, intact: None, ep: Endpoint, name: str, kind: str
) -> None:
    message = await refused(shared, ep, {**ep.base, name: SAMPLES[kind]}, 400)
    assert name in message or ep.openai, message


NESTED: dict[str, tuple[str, dict[str, Any]]] = {
    "chat-message-number": ("chat", {**chat_with(), "messages": [1]}),
    "chat-message-string": ("chat", {**chat_with(), "messages": ["hi"]}),
    "chat-message-array": ("chat", {**chat_with(), "messages": [[]]}),
    "chat-message-null": ("chat", {**chat_with(), "messages": [None]}),
    "chat-role-number": ("chat", chat_with(role=1)),
    "chat-role-null": ("chat", chat_with(role=None)),
    "chat-content-number": ("chat", chat_with(content=1)),
    "chat-content-array": ("chat", chat_with(content=["ONE"])),
    "chat-content-object": ("chat", chat_with(content={"text": "ONE"})),
    "chat-images-string": ("chat", chat_with(images="aGk=")),
    "chat-images-of-numbers": ("chat", chat_with(images=[1])),
    "chat-images-not-base64": ("chat", chat_with(images=["%%%"])),
    "chat-images-not-an-image": ("chat", chat_with(images=["aGVsbG8="])),
    "chat-tool-calls-string": ("chat", assistant_calls("call")),
    "chat-tool-call-number": ("chat", assistant_calls([1])),
    "chat-tool-call-function-number": ("chat", assistant_calls([{"function": 1}])),
    "chat-tool-call-name-number": ("chat", assistant_calls([{"function": {"name": 1}}])),
    "chat-tool-call-arguments-string": (
        "chat",
        assistant_calls([{"function": {"name": "f", "arguments": "{}"}}]),
    ),
    "chat-tool-call-arguments-array": (
        "chat",
        assistant_calls([{"function": {"name": "f", "arguments": [1]}}]),
    ),
    "chat-tool-number": ("chat", with_tools([1])),
    "chat-tool-string": ("chat", with_tools(["f"])),
    "chat-tool-function-number": ("chat", with_tools([{"type": "function", "function": 1}])),
    "chat-tool-function-missing": ("chat", with_tools([{"type": "function"}])),
    "chat-option-string-for-int": ("chat", {**chat_with(), "options": {"num_ctx": "big"}}),
    "chat-option-array-for-float": ("chat", {**chat_with(), "options": {"temperature": [1]}}),
    "chat-option-number-for-bool": ("chat", {**chat_with(), "options": {"use_mmap": 1}}),
    "chat-option-string-for-list": ("chat", {**chat_with(), "options": {"stop": "x"}}),
    "chat-option-list-of-numbers": ("chat", {**chat_with(), "options": {"stop": [1]}}),
    "chat-option-object": ("chat", {**chat_with(), "options": {"seed": {"v": 1}}}),
    "chat-format-number": ("chat", {**chat_with(), "format": 1}),
    "chat-format-unknown": ("chat", {**chat_with(), "format": "yaml"}),
    "chat-format-bad-schema": ("chat", {**chat_with(), "format": {"type": 5}}),
    "generate-images-of-numbers": ("generate", {**BY_NAME["generate"].base, "images": [1]}),
    "generate-images-not-base64": ("generate", {**BY_NAME["generate"].base, "images": ["%%"]}),
    "generate-context-of-strings": ("generate", {**BY_NAME["generate"].base, "context": ["1"]}),
    "generate-context-of-floats": ("generate", {**BY_NAME["generate"].base, "context": [1.5]}),
    "generate-option-string-for-int": (
        "generate",
        {**BY_NAME["generate"].base, "options": {"top_k": "many"}},
    ),
    "embed-input-of-numbers": ("embed", {"model": "e", "input": [1, 2]}),
    "embed-input-of-arrays": ("embed", {"model": "e", "input": [["x"]]}),
    "embed-input-of-nulls": ("embed", {"model": "e", "input": [None]}),
    "embed-negative-dimensions": ("embed", {"model": "e", "input": "x", "dimensions": -1}),
    "embed-option-string-for-int": (
        "embed",
        {"model": "e", "input": "x", "options": {"num_ctx": "x"}},
    ),
    "create-file-digest-number": ("create", {"model": "new", "files": {"m.gguf": 1}}),
    "create-file-digest-empty": ("create", {"model": "new", "files": {"m.gguf": ""}}),
    "create-file-digest-not-a-digest": ("create", {"model": "new", "files": {"m.gguf": "abc"}}),
    "create-parameter-string-for-int": (
        "create",
        {"model": "new", "files": {"m.gguf": NO_BLOB}, "parameters": {"top_k": "x"}},
    ),
    "create-message-role-number": (
        "create",
        {"model": "new", "files": {"m.gguf": NO_BLOB}, "messages": [{"role": 1}]},
    ),
    "create-message-unknown-role": (
        "create",
        {"model": "new", "files": {"m.gguf": NO_BLOB}, "messages": [{"role": "x", "content": ""}]},
    ),
    "create-license-of-numbers": (
        "create",
        {"model": "new", "files": {"m.gguf": NO_BLOB}, "license": [1]},
    ),
    "create-unknown-quantization": (
        "create",
        {"model": "new", "files": {"m.gguf": NO_BLOB}, "quantize": "q9_z"},
    ),
    "create-neither-from-nor-files": ("create", {"model": "new"}),
    "openai-chat-message-number": ("openai-chat", {"model": "a", "messages": [1]}),
    "openai-chat-role-number": ("openai-chat", {"model": "a", "messages": [{"role": 1}]}),
    "openai-chat-content-number": ("openai-chat", parts(1)),
    "openai-chat-part-number": ("openai-chat", parts([1])),
    "openai-chat-part-text-number": ("openai-chat", parts([{"type": "text", "text": 1}])),
    "openai-chat-part-unknown-type": ("openai-chat", parts([{"type": "audio", "audio": "x"}])),
    "openai-chat-image-url-number": ("openai-chat", parts([{"type": "image_url", "image_url": 1}])),
    "openai-chat-image-url-url-number": (
        "openai-chat",
        parts([{"type": "image_url", "image_url": {"url": 1}}]),
    ),
    "openai-chat-image-not-base64": (
        "openai-chat",
        parts([{"type": "image_url", "image_url": {"url": "data:image/png;base64,%%"}}]),
    ),
    "openai-chat-image-remote": (
        "openai-chat",
        parts([{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]),
    ),
    "openai-chat-tool-number": ("openai-chat", with_tools([1], "openai-chat")),
    "openai-chat-tool-function-number": (
        "openai-chat",
        with_tools([{"type": "function", "function": 1}], "openai-chat"),
    ),
    "openai-chat-stop-of-numbers": ("openai-chat", {"model": "a", "messages": USER, "stop": [1]}),
    "openai-chat-response-format-type-number": (
        "openai-chat",
        {"model": "a", "messages": USER, "response_format": {"type": 1}},
    ),
    "openai-chat-stream-options-string": (
        "openai-chat",
        {"model": "a", "messages": USER, "stream_options": {"include_usage": "yes"}},
    ),
    "openai-completions-prompt-of-numbers": ("openai-completions", {"model": "a", "prompt": [1]}),
    "openai-completions-prompt-of-arrays": (
        "openai-completions",
        {"model": "a", "prompt": [[1, 2]]},
    ),
    "openai-embeddings-input-of-numbers": ("openai-embeddings", {"model": "e", "input": [1]}),
    "openai-embeddings-input-of-arrays": ("openai-embeddings", {"model": "e", "input": [[1]]}),
    "openai-embeddings-unknown-encoding": (
        "openai-embeddings",
        {"model": "e", "input": "x", "encoding_format": "xml"},
    ),
}


@pytest.mark.parametrize(("name", "body"), NESTED.values(), ids=NESTED.keys())
async def test_a_nested_value_of_the_wrong_type(
    shared: Served, intact: None, name: str, body: dict[str, Any]
) -> None:
    ep = BY_NAME[name]
    r = await ask(shared, ep, body)
    assert 400 <= r.status_code < 500, r.text
    ep.error(r)


async def test_the_models_are_all_still_there(shared: Served) -> None:
    await models_all_there(shared)
