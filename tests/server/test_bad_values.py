"""Bad values on the JSON endpoints (issue 14): strings with invalid UTF-8, lone surrogates and
NULs, invalid and unknown names, huge strings and arrays, and option values at their extremes.
Each is served or answered with a clear 4xx, never a 5xx or a hang, and the store's files are
exactly what they were after every case.

As in Ollama (Go's JSON decoder), invalid UTF-8 and lone surrogates in strings become U+FFFD and
NUL is text like any other; option values are checked for their type, not their range.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from corral.prompt import ChatMessage, PromptTemplate, chat_prompt
from tests.server import badinput
from tests.server.badinput import (
    BY_NAME,
    NO_BLOB,
    USER,
    Endpoint,
    chat_with,
    check,
    models_all_there,
    parts,
    refused,
)
from tests.server.conftest import Served

pytestmark = pytest.mark.anyio

# the module's server and its store check (module-scoped fixtures: one server per module)
anyio_backend = badinput.anyio_backend
store_root = badinput.store_root
shared = badinput.shared
intact = badinput.intact

# ---- strings: invalid UTF-8, lone surrogates, NUL -----------------------------------------------


def rendered(r: httpx.Response) -> str:
    assert r.status_code == 200, r.text
    return str(r.json()["_debug_info"]["rendered_template"])


async def test_invalid_utf8_in_a_string_becomes_replacement_characters(shared: Served) -> None:
    body = b'{"model": "a", "prompt": "\xff\xfeONE\xc3", "_debug_render_only": true}'
    r = await check(shared, BY_NAME["generate"], body)
    assert "\ufffd\ufffdONE\ufffd" in rendered(r)


@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "\\uDBFF", "\\ud800\\ud800"])
async def test_lone_surrogates_become_replacement_characters(shared: Served, escape: str) -> None:
    body = f'{{"model": "a", "prompt": "<{escape}>", "_debug_render_only": true}}'.encode()
    r = await check(shared, BY_NAME["generate"], body)
    assert f"<{chr(0xFFFD) * escape.count('u')}>" in rendered(r)


async def test_a_surrogate_pair_stays_one_character(shared: Served) -> None:
    body = b'{"model": "a", "prompt": "<\\ud83d\\ude00>", "_debug_render_only": true}'
    assert "<\U0001f600>" in rendered(await check(shared, BY_NAME["generate"], body))


async def test_surrogates_in_keys_and_nested_values(shared: Served, intact: None) -> None:
    body = (
        b'{"model": "a", "stream": false, "options": {"\\ud800": 1, "stop": ["\\udc00"]},'
        b' "messages": [{"role": "user", "content": "ONE\\udfff"}]}'
    )
    r = await check(shared, BY_NAME["chat"], body)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("generate", {"model": "a", "prompt": "ONE\u0000\u0000", "stream": False}),
        ("chat", chat_with(content="\u0000ONE")),
        ("embed", {"model": "e", "input": ["\u0000", "x\u0000y"]}),
        ("embeddings", {"model": "e", "prompt": "\u0000"}),
        ("openai-chat", parts("ONE\u0000")),
        ("openai-completions", {"model": "a", "prompt": "\u0000ONE"}),
        ("openai-embeddings", {"model": "e", "input": "\u0000"}),
    ],
    ids=lambda x: x if isinstance(x, str) else "",
)
async def test_nul_bytes_in_text_are_served(
    shared: Served, intact: None, name: str, body: dict[str, Any]
) -> None:
    r = await check(shared, BY_NAME[name], body)
    assert r.status_code == 200, r.text


# ---- names ---------------------------------------------------------------------------------------

INVALID_NAMES = [
    "a\u0000",
    "\u0000",
    "a\ud800",
    "a b",
    "../a",
    "..",
    "a/../../b",
    "/etc/passwd",
    "C:\\models\\a",
    "a\\b",
    "%2e%2e/a",
    "x/y/z/w/v",
    "a:b:c",
    "a@sha256:" + "0" * 64,
    "-a",
    ".a",
    "a" * 81,
]
NAMED = ["generate", "chat", "embed", "embeddings", "show", "delete", "create", "pull", "push"]
NAMED += ["openai-chat", "openai-completions", "openai-embeddings"]


def name_field(ep: Endpoint) -> str:
    return "source" if ep.name == "copy" else "model"


@pytest.mark.parametrize("ep", [BY_NAME[n] for n in [*NAMED, "copy"]], ids=lambda e: e.name)
async def test_invalid_names_are_400(shared: Served, intact: None, ep: Endpoint) -> None:
    for bad in INVALID_NAMES:
        message = await refused(shared, ep, {**ep.base, name_field(ep): bad}, 400)
        assert "invalid" in message, (bad, message)
    if ep.name == "copy":  # the destination too
        for bad in INVALID_NAMES:
            body = {"source": "a", "destination": bad}
            assert "invalid" in await refused(shared, ep, body, 400)


@pytest.mark.parametrize(
    "ep", [BY_NAME[n] for n in NAMED if n != "pull"] + [BY_NAME["copy"]], ids=lambda e: e.name
)
async def test_unknown_models_are_404(shared: Served, intact: None, ep: Endpoint) -> None:
    body = {**ep.base, name_field(ep): "nope"}
    if ep.name == "create":  # (FROM an unknown model pulls it: a blob stands in here)
        body = {"model": "new", "modelfile": "FROM @" + NO_BLOB}
        assert await refused(shared, ep, body, 404) == f"blob {NO_BLOB} not found"
        return
    message = await refused(shared, ep, body, 404)
    quote = '"' if ep.name == "copy" else "'"
    assert message == f"model {quote}nope{quote} not found"


# ---- huge strings and arrays ---------------------------------------------------------------------

TEN_MB = "word " * 2_000_000
HUGE: dict[str, tuple[str, dict[str, Any]]] = {
    "generate-10mb-prompt": ("generate", {"model": "a", "prompt": TEN_MB, "stream": False}),
    "chat-10mb-message": ("chat", chat_with(content=TEN_MB)),
    "embed-10mb-input": ("embed", {"model": "e", "input": TEN_MB}),
    "embeddings-10mb-prompt": ("embeddings", {"model": "e", "prompt": TEN_MB}),
    "openai-chat-10mb-message": ("openai-chat", parts(TEN_MB)),
    "openai-completions-10mb-prompt": ("openai-completions", {"model": "a", "prompt": TEN_MB}),
    "openai-embeddings-10mb-input": ("openai-embeddings", {"model": "e", "input": TEN_MB}),
    "chat-100k-messages": ("chat", {**chat_with(), "messages": USER * 100_000}),
    "openai-chat-100k-messages": ("openai-chat", {"model": "a", "messages": USER * 100_000}),
    "embed-100k-inputs": ("embed", {"model": "e", "input": ["x"] * 100_000}),
    "openai-embeddings-100k-inputs": (
        "openai-embeddings",
        {"model": "e", "input": ["x"] * 100_000},
    ),
    "generate-100k-context": ("generate", {**BY_NAME["generate"].base, "context": [5] * 100_000}),
    "generate-100k-images": ("generate", {**BY_NAME["generate"].base, "images": ["x"] * 100_000}),
    "chat-100k-tools": (
        "chat",
        {**chat_with(), "tools": [{"type": "function", "function": {"name": "f"}}] * 100_000},
    ),
    "show-10mb-name": ("show", {"model": "a" * 10_000_000}),
    "create-10mb-system": (
        "create",
        {"model": "new", "files": {"m.gguf": NO_BLOB}, "system": TEN_MB},
    ),
    "create-100k-files": (
        "create",
        {"model": "new", "files": {f"f{i}.gguf": NO_BLOB for i in range(100_000)}},
    ),
}


@pytest.mark.parametrize(("name", "body"), HUGE.values(), ids=HUGE.keys())
async def test_huge_strings_and_arrays_are_answered(
    shared: Served, intact: None, name: str, body: dict[str, Any]
) -> None:
    """Answered (served, truncated to the context, or refused with a 4xx) within the guard."""
    await check(shared, BY_NAME[name], body)


def test_history_truncation_renders_a_few_times_not_once_per_message() -> None:
    """100k messages, of which only the last few hundred fit: the first kept message is found
    in O(log n) renders (one render per dropped message was a hang on long histories)."""
    renders = 0

    class Counting(PromptTemplate):
        def render(self, *args: Any, **kwargs: Any) -> str:
            nonlocal renders
            renders += 1
            return super().render(*args, **kwargs)

    async def tokenize(text: str) -> list[int]:
        return [0] * len(text.split())

    template = Counting("{{ range .Messages }}{{ .Content }} {{ end }}")
    messages = [ChatMessage(role="user", content=f"m{i}") for i in range(100_000)]
    text, _ = asyncio.run(chat_prompt(template, messages, [], None, tokenize, 500))
    assert text.split() == [f"m{i}" for i in range(99_500, 100_000)]
    assert renders <= 2 * 17 + 2


# ---- options and keep_alive at their extremes ----------------------------------------------------

EXTREMES = [0, -1, 1, 2**31, -(2**31), 2**63, -(2**63), 2**64, 1.5, -0.5, 1e30]
NUMERIC_OPTIONS = ["num_ctx", "num_predict", "top_k", "top_p", "temperature", "seed", "num_batch"]
NUMERIC_OPTIONS += ["repeat_last_n", "num_keep", "min_p", "typical_p", "repeat_penalty"]
TYPE_WORD = {"top_p": "float32", "temperature": "float32", "min_p": "float32"}
TYPE_WORD |= {"typical_p": "float32", "repeat_penalty": "float32"}


@pytest.mark.parametrize("option", NUMERIC_OPTIONS)
@pytest.mark.parametrize("route", ["generate", "chat", "embed"])
async def test_numeric_options_at_extremes_are_served(
    shared: Served, intact: None, option: str, route: str
) -> None:
    """Like Ollama: any JSON number is taken (integers truncate floats), ranges are the engine's
    business (a context is clamped to what the model can hold); a string is a 400."""
    ep = BY_NAME[route]
    for value in EXTREMES:
        if option == "num_predict" and route != "embed" and not -1 <= value <= 4:
            value = 4  # an Endless-free reply ends anyway; keep generations short
        r = await check(shared, ep, {**ep.base, "options": {option: value}})
        assert r.status_code == 200, (option, value, r.text)
        for model in (await shared.client.get("/api/ps")).json()["models"]:
            assert 1 <= model["context_length"] <= 1 << 20
    message = await refused(shared, ep, {**ep.base, "options": {option: "5"}}, 400)
    assert message == f'option "{option}" must be of type {TYPE_WORD.get(option, "integer")}'


@pytest.mark.parametrize(
    "value", [0, -1, 1.5, 2**31, 2**63, 2**64, 10**400, 1e300, "0", "5m", "-5m", "2562047h"]
)
@pytest.mark.parametrize("route", ["generate", "chat", "embed", "embeddings", "openai-chat"])
async def test_keep_alive_extremes_are_served(
    shared: Served, intact: None, value: Any, route: str
) -> None:
    ep = BY_NAME[route]
    r = await check(shared, ep, {**ep.base, "keep_alive": value})
    assert r.status_code == 200, r.text


# Go's time.ParseDuration: a number needs a unit (but "0"), and ~292 years is the longest
@pytest.mark.parametrize("value", ["soon", "5 minutes", "", "1e9", "-1", "2562048h", True, [], {}])
@pytest.mark.parametrize("route", ["generate", "chat", "embed", "openai-chat"])
async def test_bad_keep_alive_is_400(shared: Served, intact: None, value: Any, route: str) -> None:
    await refused(shared, BY_NAME[route], {**BY_NAME[route].base, "keep_alive": value}, 400)


@pytest.mark.parametrize(
    "extra",
    [
        {"max_tokens": 0},
        {"max_tokens": -1},
        {"max_tokens": 2**31},
        {"max_tokens": 2**63},
        {"temperature": -1},
        {"temperature": 1e30},
        {"top_p": -5},
        {"seed": 2**64},
        {"seed": -(2**63)},
        {"num_ctx": 0},
        {"num_ctx": -1},
        {"num_ctx": 2**63},
        {"frequency_penalty": 1e30},
    ],
    ids=lambda d: "-".join(f"{k}={v}" for k, v in d.items()),
)
@pytest.mark.parametrize("route", ["openai-chat", "openai-completions"])
async def test_openai_sampling_extremes_are_answered(
    shared: Served, intact: None, extra: dict[str, Any], route: str
) -> None:
    ep = BY_NAME[route]
    await check(shared, ep, {**ep.base, **extra})


async def test_the_models_are_all_still_there(shared: Served) -> None:
    await models_all_there(shared)
