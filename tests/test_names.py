"""Tests of corral.names: Ollama's name grammar, defaults, display forms, paths and digests."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from corral.errors import BadRequest, InvalidModelName
from corral.names import (
    ModelName,
    blob_filename,
    existing_spelling,
    find_case_insensitive,
    is_valid_name,
    iter_stored_names,
    parse_digest,
    parse_manifest_relpath,
    parse_name,
)

P80 = "8" * 80
P350 = "3" * 350
HEX = "0123456789abcdef" * 4
DEFAULTS = ("registry.ollama.ai", "library")


# ---- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parts", "scheme"),
    [
        ("model", (*DEFAULTS, "model", "latest"), "https"),
        ("m", (*DEFAULTS, "m", "latest"), "https"),
        ("model:tag", (*DEFAULTS, "model", "tag"), "https"),
        ("namespace/model", ("registry.ollama.ai", "namespace", "model", "latest"), "https"),
        ("namespace/model:tag", ("registry.ollama.ai", "namespace", "model", "tag"), "https"),
        ("host/namespace/model", ("host", "namespace", "model", "latest"), "https"),
        ("host/namespace/model:tag", ("host", "namespace", "model", "tag"), "https"),
        ("host:port/namespace/model", ("host:port", "namespace", "model", "latest"), "https"),
        ("host:port/namespace/model:tag", ("host:port", "namespace", "model", "tag"), "https"),
        ("host:https/namespace/model:tag", ("host:https", "namespace", "model", "tag"), "https"),
        ("h/nn/mm:t", ("h", "nn", "mm", "t"), "https"),
        ("h/n/m:t", ("h", "n", "m", "t"), "https"),
        ("_why/_the/_lucky:_stiff", ("_why", "_the", "_lucky", "_stiff"), "https"),
        (
            "registry.ollama.ai/library/dolphin-mistral:7b-v2.6-dpo-laser-q6_K",
            ("registry.ollama.ai", "library", "dolphin-mistral", "7b-v2.6-dpo-laser-q6_K"),
            "https",
        ),
        ("llama3.2:3b-instruct-q4_K_M", (*DEFAULTS, "llama3.2", "3b-instruct-q4_K_M"), "https"),
        (
            "hf.co/bartowski/Llama-3.2-1B-GGUF:Q4_K_M",
            ("hf.co", "bartowski", "Llama-3.2-1B-GGUF", "Q4_K_M"),
            "https",
        ),
        (
            "scheme://host:port/namespace/model:tag",
            ("host:port", "namespace", "model", "tag"),
            "scheme",
        ),
        ("https://example.com/ns/model", ("example.com", "ns", "model", "latest"), "https"),
        ("http://localhost:5000/ns/model:v1", ("localhost:5000", "ns", "model", "v1"), "http"),
        # Ollama's host split leaves an empty host here, which then takes the default.
        ("http:///ns/model", ("registry.ollama.ai", "ns", "model", "latest"), "http"),
        ("Foo:Latest", (*DEFAULTS, "Foo", "Latest"), "https"),
        # the scheme is not checked; the path parts still are, so this one is harmless
        ("file:///etc/passwd", ("registry.ollama.ai", "etc", "passwd", "latest"), "file"),
        ("127.0.0.1:5000/a/b:c", ("127.0.0.1:5000", "a", "b", "c"), "https"),
        ("a./b/c:d", ("a.", "b", "c", "d"), "https"),
    ],
)
def test_parse_valid(text: str, parts: tuple[str, str, str, str], scheme: str) -> None:
    name = parse_name(text)
    assert name.parts() == parts
    assert (name.host, name.namespace, name.model, name.tag) == parts
    assert name.scheme == scheme
    assert is_valid_name(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "^",
        "mm:",
        "n/m:",
        ":t",
        "/nn/mm",
        "//",
        "//mm",
        "hh//",
        "hh//mm",
        "//mm:@",
        "h/n/m/x",
        "a/b/c/d:e",
        # digests are not part of Ollama's name grammar any more
        "@",
        "@t",
        "m@d",
        "00@",
        "model@sha256:" + HEX,
        "model:tag@sha256:" + HEX,
        "ns/model@sha256-" + HEX,
        # first characters
        "-mm",
        ".mm",
        "mm:-tt",
        "mm:.tt",
        "-hh/nn/mm:tt",
        ".hh/nn/mm:tt",
        "hh/-nn/mm:tt",
        "hh/nn/-mm:tt",
        "hh/nn/mm:-tt",
        # other characters
        "host/name:space/model:tag",
        "name.space/model",
        "ns/mo:del:tag",
        "mod:el:tag",
        "mo del",
        " model",
        "model ",
        "model:t g",
        "model:t+g",
        "mo+del",
        "mo~del",
        "m*",
        "model:cloud:local",
        # a scheme needs a host, namespace and model after it
        "https://model",
        "https://ns/model",
        "a://b://c/ns/m",
        # non-ASCII, including characters Python calls alphanumeric
        "modèle",
        "model:ver²",
        "ｍodel",
        "ns/mödel:tag",
        "ĸ",
    ],
)
def test_parse_invalid(text: str) -> None:
    with pytest.raises(InvalidModelName) as info:
        parse_name(text)
    assert str(info.value) == "invalid model name"
    assert info.value.status == 400
    assert isinstance(info.value, BadRequest)
    assert not is_valid_name(text)


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        (f"{P80}/{P80}/{P80}:{P80}", True),
        (f"{P350}/{P80}/{P80}:{P80}", True),
        (f"{P350}3/ns/m:t", False),
        (f"h/{P80}8/m:t", False),
        (f"h/ns/{P80}8:t", False),
        (f"h/ns/m:{P80}8", False),
        (P80, True),
        (P80 + "8", False),
        (f"m:{P80}", True),
        (f"m:{P80}8", False),
        (f"{P80}/m", True),
        (f"{P80}8/m", False),
        ("h" * 81 + "/ns/m:t", True),  # the host may be longer than other parts
        ("_" * 80, True),
    ],
)
def test_length_limits(text: str, valid: bool) -> None:
    assert is_valid_name(text) is valid


@pytest.mark.parametrize(
    "text",
    [
        "h/n/m:t",
        "_why/_the/_lucky:_stiff",
        f"{P80}/{P80}/{P80}:{P80}",
        f"{P350}/{P80}/{P80}:{P80}",
        "host:https/namespace/model:tag",
    ],
)
def test_full_names_round_trip(text: str) -> None:
    assert str(parse_name(text)) == text
    assert parse_name(text).display_long() == text


# ---- construction, defaults, equality --------------------------------------------------------


def test_defaults() -> None:
    name = ModelName(model="xx")
    assert name.parts() == ("registry.ollama.ai", "library", "xx", "latest")
    assert name.scheme == "https"
    assert str(parse_name("xx")) == "registry.ollama.ai/library/xx:latest"
    assert parse_name("xx") == name


@pytest.mark.parametrize(
    "fields",
    [
        {"model": ".."},
        {"model": "."},
        {"model": ""},
        {"model": "a/b"},
        {"model": "a\\b"},
        {"model": "a\x00"},
        {"host": "..", "model": "m"},
        {"host": "", "model": "m"},
        {"namespace": "..", "model": "m"},
        {"namespace": "a.b", "model": "m"},
        {"model": "m", "tag": ".."},
        {"model": "m", "tag": ""},
        {"model": "m", "tag": "a:b"},
        {"model": "m" * 81},
    ],
)
def test_construction_validates(fields: dict[str, str]) -> None:
    with pytest.raises(InvalidModelName):
        ModelName(**fields)


def test_model_name_is_frozen() -> None:
    name = parse_name("model")
    with pytest.raises(AttributeError):
        name.model = "other"  # type: ignore[misc]


def test_equality_is_exact_and_ignores_scheme() -> None:
    assert parse_name("http://h/n/m:t") == parse_name("h/n/m:t")
    assert hash(parse_name("http://h/n/m:t")) == hash(parse_name("h/n/m:t"))
    assert parse_name("Foo:Latest") != parse_name("foo:latest")


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("Foo:Latest", "foo:latest", True),
        ("foo", "FOO:LATEST", True),
        ("REGISTRY.OLLAMA.AI/Library/Foo", "foo", True),
        ("Alice/Model:V1", "alice/model:v1", True),
        ("Host:5000/NS/M:T", "host:5000/ns/m:t", True),
        ("foo:latest", "foo:v1", False),
        ("alice/foo", "bob/foo", False),
        ("foo", "food", False),
    ],
)
def test_key_is_case_insensitive(a: str, b: str, same: bool) -> None:
    assert (parse_name(a).key() == parse_name(b).key()) is same


def test_key_is_folded() -> None:
    assert parse_name("H/N/M:T").key() == ("h", "n", "m", "t")


# ---- display ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shortest", "long"),
    [
        ("model", "model:latest", "registry.ollama.ai/library/model:latest"),
        ("registry.ollama.ai/library/model:latest", "model:latest", None),
        ("registry.ollama.ai/library/model:tag", "model:tag", None),
        ("registry.ollama.ai/namespace/model:tag", "namespace/model:tag", None),
        ("namespace/model", "namespace/model:latest", "registry.ollama.ai/namespace/model:latest"),
        ("host/namespace/model:tag", "host/namespace/model:tag", None),
        ("host/library/model:tag", "host/library/model:tag", None),
        (
            "https://host:5000/library/model",
            "host:5000/library/model:latest",
            "host:5000/library/model:latest",
        ),
        ("Registry.Ollama.AI/LIBRARY/Model:Tag", "Model:Tag", None),
        ("REGISTRY.OLLAMA.AI/Alice/Model:Tag", "Alice/Model:Tag", None),
    ],
)
def test_display(text: str, shortest: str, long: str | None) -> None:
    name = parse_name(text)
    assert name.display_shortest() == shortest
    assert name.display_long() == (long or text)
    assert parse_name(name.display_shortest()).key() == name.key()


# ---- manifest paths --------------------------------------------------------------------------


def test_manifest_relpath_and_path(tmp_path: Path) -> None:
    name = parse_name("host:5000/ns/model:tag")
    assert name.manifest_relpath() == ("host:5000", "ns", "model", "tag")
    assert name.manifest_path(tmp_path) == tmp_path / "manifests/host:5000/ns/model/tag"
    assert parse_name("llama3.2").manifest_relpath() == (
        "registry.ollama.ai",
        "library",
        "llama3.2",
        "latest",
    )


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (
            ("host", "namespace", "model", "tag"),
            ModelName(host="host", namespace="namespace", model="model", tag="tag"),
        ),
        (
            ("host:port", "namespace", "model", "tag"),
            ModelName(host="host:port", namespace="namespace", model="model", tag="tag"),
        ),
        (("registry.ollama.ai", "library", "Foo", "Latest"), ModelName(model="Foo", tag="Latest")),
        (("namespace", "model", "tag"), None),
        (("model", "tag"), None),
        (("model",), None),
        ((), None),
        (("h", "n", "m", "t", "x"), None),
        (("..", "..", "model", "tag"), None),
        (("", "namespace", ".", "tag"), None),
        ((".", ".", ".", "."), None),
        (("/", "path", "to", "random"), None),
        (("h", "n", "m", ".tmp-123"), None),
        (("h", "n", "m", "t.partial~"), None),
        (("h", "n.s", "m", "t"), None),
        (("h", "n", "m", "t:x"), None),
        ("abcd", None),
    ],
)
def test_parse_manifest_relpath(parts: tuple[str, ...] | str, expected: ModelName | None) -> None:
    assert parse_manifest_relpath(parts) == expected


@pytest.mark.parametrize(
    "text",
    [
        "model",
        "ns/model:tag",
        "host:5000/ns/model:tag",
        f"{P350}/{P80}/{P80}:{P80}",
    ],
)
def test_manifest_relpath_round_trip(text: str) -> None:
    name = parse_name(text)
    assert parse_manifest_relpath(name.manifest_relpath()) == name


# ---- path traversal --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "..",
        ".",
        "...",
        "../x",
        "x/..",
        "../../etc/passwd",
        "../../../../etc/passwd:latest",
        "a/../../b",
        "a/b/../c",
        "h/../m:t",
        "h/n/..:t",
        "h/n/m:..",
        "model:..",
        "./model",
        "%2e%2e",
        "%2e%2e/%2e%2e/etc/passwd",
        "ns/%2e%2e",
        "..%2f..%2fetc",
        "/etc/passwd",
        "/model",
        "//etc/passwd",
        "/h/n/m:t",
        "C:\\Windows\\win.ini",
        "..\\..\\etc\\passwd",
        "a\\b",
        "ns\\model",
        "model:t\\..",
        "model\x00",
        "mo\x00del",
        "model:tag\x00",
        "\x00",
        "ns/\x00/model",
        "model\n",
        "model\r\n",
        "model\t",
        "~/model",
        "$HOME/model",
    ],
)
def test_traversal_attempts_are_rejected(text: str) -> None:
    with pytest.raises(InvalidModelName):
        parse_name(text)


def test_random_names_never_escape_the_store(tmp_path: Path) -> None:
    rng = random.Random(1234)
    alphabet = "ab_-.:/\\@%\x00 Z9~é"
    accepted = 0
    manifests = (tmp_path / "manifests").resolve()
    for _ in range(20000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        try:
            name = parse_name(text)
        except InvalidModelName:
            continue
        accepted += 1
        for part in name.manifest_relpath():
            assert part not in (".", "..")
            assert not part.startswith(".")
            assert not any(c in part for c in "/\\\x00")
        resolved = name.manifest_path(tmp_path).resolve()
        assert resolved.is_relative_to(manifests)
        assert len(resolved.relative_to(manifests).parts) == 4
    assert accepted > 100


# ---- case-insensitive lookup on disk ---------------------------------------------------------


def _store(root: Path, *names: str) -> dict[str, Path]:
    paths: dict[str, Path] = {}
    for text in names:
        path = parse_name(text).manifest_path(root)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
        paths[text] = path
    return paths


@pytest.mark.parametrize(
    ("stored", "lookup", "found"),
    [
        ("Foo:Latest", "foo:latest", "Foo:Latest"),
        ("Foo:Latest", "FOO", "Foo:Latest"),
        ("foo", "foo", "foo"),
        ("foo", "Foo:LATEST", "foo"),
        ("Alice/Model:V1", "alice/model:v1", "Alice/Model:V1"),
        ("Host:5000/NS/M:T", "host:5000/ns/m:t", "Host:5000/NS/M:T"),
        ("REGISTRY.OLLAMA.AI/LIBRARY/x", "x", "REGISTRY.OLLAMA.AI/LIBRARY/x"),
        ("foo:v1", "foo:v2", None),
        ("foo", "bar", None),
        ("alice/foo", "foo", None),
        ("alice/foo", "bob/foo", None),
    ],
)
def test_find_case_insensitive(tmp_path: Path, stored: str, lookup: str, found: str | None) -> None:
    paths = _store(tmp_path, stored)
    result = find_case_insensitive(tmp_path, parse_name(lookup))
    assert result == (paths[found] if found is not None else None)


def test_find_case_insensitive_prefers_exact_spelling(tmp_path: Path) -> None:
    paths = _store(tmp_path, "Foo:latest", "foo:latest", "FOO:latest")
    assert find_case_insensitive(tmp_path, parse_name("foo")) == paths["foo:latest"]
    assert find_case_insensitive(tmp_path, parse_name("FOO")) == paths["FOO:latest"]
    assert find_case_insensitive(tmp_path, parse_name("fOO")) == paths["FOO:latest"]


def test_find_case_insensitive_backtracks(tmp_path: Path) -> None:
    # "foo" exists but holds another tag; the matching manifest is under "Foo".
    paths = _store(tmp_path, "foo:v1", "Foo:v2")
    assert find_case_insensitive(tmp_path, parse_name("foo:v2")) == paths["Foo:v2"]
    assert find_case_insensitive(tmp_path, parse_name("FOO:V1")) == paths["foo:v1"]


def test_find_case_insensitive_wants_files_and_dirs_in_place(tmp_path: Path) -> None:
    base = tmp_path / "manifests" / "registry.ollama.ai" / "library"
    (base / "foo" / "latest").mkdir(parents=True)  # a directory where the tag file belongs
    assert find_case_insensitive(tmp_path, parse_name("foo")) is None
    base.mkdir(parents=True, exist_ok=True)
    (base / "bar").write_text("{}")  # a file where the model directory belongs
    assert find_case_insensitive(tmp_path, parse_name("bar")) is None


def test_find_case_insensitive_ignores_invalid_entries(tmp_path: Path) -> None:
    base = tmp_path / "manifests" / "registry.ollama.ai" / "library"
    (base / "\u212a").mkdir(parents=True)  # KELVIN SIGN: Python lower-cases it to "k"
    (base / "\u212a" / "latest").write_text("{}")
    assert find_case_insensitive(tmp_path, parse_name("k")) is None


def test_find_case_insensitive_without_store(tmp_path: Path) -> None:
    assert find_case_insensitive(tmp_path / "missing", parse_name("foo")) is None


def test_iter_stored_names(tmp_path: Path) -> None:
    _store(tmp_path, "foo", "Alice/Bar:V1", "host:5000/ns/baz:t")
    manifests = tmp_path / "manifests"
    (manifests / "registry.ollama.ai" / "library" / "foo" / ".tmp-1").write_text("")
    (manifests / "registry.ollama.ai" / "library" / "..foo").mkdir()
    (manifests / "stray").write_text("")
    (manifests / "a" / "b" / "c" / "d" / "e").mkdir(parents=True)
    assert sorted(n.display_long() for n in iter_stored_names(tmp_path)) == [
        "host:5000/ns/baz:t",
        "registry.ollama.ai/Alice/Bar:V1",
        "registry.ollama.ai/library/foo:latest",
    ]
    assert list(iter_stored_names(tmp_path / "missing")) == []


@pytest.mark.parametrize(
    ("stored", "wanted", "spelled"),
    [
        ((), "foo", "foo"),
        (("Foo:Latest",), "foo:latest", "Foo:Latest"),
        (("Foo:Latest",), "FOO:LATEST", "Foo:Latest"),
        # each part is respelled on its own, as Ollama's getExistingName does
        (("Foo:v1",), "foo:v2", "Foo:v2"),
        (("Alice/foo",), "alice/bar", "Alice/bar"),
        (("Alice/Foo",), "bob/foo", "bob/Foo"),
        (("bar:Latest",), "foo", "foo:Latest"),
        (("Host:5000/NS/m:t",), "host:5000/ns/x", "Host:5000/NS/x:latest"),
        # an exact spelling among several wins, else the first in sorted order
        (("Foo", "foo"), "foo", "foo"),
        (("Foo", "fOO"), "foo", "Foo"),
    ],
)
def test_existing_spelling(
    tmp_path: Path, stored: tuple[str, ...], wanted: str, spelled: str
) -> None:
    _store(tmp_path, *stored)
    result = existing_spelling(tmp_path, parse_name(wanted))
    assert result.parts() == parse_name(spelled).parts()


def test_existing_spelling_keeps_scheme(tmp_path: Path) -> None:
    _store(tmp_path, "Host/NS/M:T")
    result = existing_spelling(tmp_path, parse_name("http://host/ns/m:t"))
    assert result.parts() == ("Host", "NS", "M", "T")
    assert result.scheme == "http"


# ---- digests ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical", "filename"),
    [
        (f"sha256:{HEX}", f"sha256:{HEX}", f"sha256-{HEX}"),
        (f"sha256-{HEX}", f"sha256:{HEX}", f"sha256-{HEX}"),
        (f"sha256:{HEX.upper()}", f"sha256:{HEX.upper()}", f"sha256-{HEX.upper()}"),
        (f"sha256-{'0' * 64}", f"sha256:{'0' * 64}", f"sha256-{'0' * 64}"),
    ],
)
def test_parse_digest_valid(text: str, canonical: str, filename: str) -> None:
    assert parse_digest(text) == canonical
    assert blob_filename(text) == filename
    assert blob_filename(canonical) == filename


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sha256:",
        "sha256-",
        HEX,
        f"sha256:{HEX[:-1]}",
        f"sha256:{HEX}0",
        f"sha256:{HEX[:-1]}g",
        f"sha256_{HEX}",
        f"sha256::{HEX}",
        f"SHA256:{HEX}",
        f"sha512:{HEX}{HEX}",
        f"sha256:{HEX}\n",
        f" sha256:{HEX}",
        f"sha256:{HEX} ",
        f"sha256:{HEX}/../../etc/passwd",
        f"../sha256-{HEX}",
        f"sha256:{HEX[:-1]}\x00",
        f"sha256:{HEX[:-1]}٣",  # an Arabic-Indic digit
        "sha256:../../../../../../etc/passwd",
    ],
)
def test_parse_digest_invalid(text: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_digest(text)
    assert str(info.value) == "invalid digest format"
    assert info.value.status == 400
    with pytest.raises(BadRequest):
        blob_filename(text)
