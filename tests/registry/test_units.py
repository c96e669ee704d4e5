"""Pure parts of the registry code: challenges, URLs, part plans, the partial-download records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corral.names import parse_name
from corral.registry.auth import parse_challenge
from corral.registry.client import RegistryError, RegistryOptions, backoff_delay, base_url
from corral.registry.download import progress
from corral.registry.partial import Part, PartialState, plan_parts
from corral.registry.upload import chunk_size, mount_source
from corral.store import Layer

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("header", "scheme", "params"),
    [
        (
            'Bearer realm="https://auth.example.com/token",service="registry.example.com",'
            'scope="repository:library/m:pull,push"',
            "bearer",
            {
                "realm": "https://auth.example.com/token",
                "service": "registry.example.com",
                "scope": "repository:library/m:pull,push",
            },
        ),
        ('Basic realm="Registry Realm"', "basic", {"realm": "Registry Realm"}),
        (
            "Bearer realm=https://a/t, service=svc",
            "bearer",
            {"realm": "https://a/t", "service": "svc"},
        ),
        ('Bearer realm="x\\"y"', "bearer", {"realm": 'x"y'}),
        ("", "", {}),
    ],
)
def test_parse_challenge(header: str, scheme: str, params: dict[str, str]) -> None:
    got = parse_challenge(header)
    assert got.scheme == scheme
    assert dict(got.params) == params


def test_base_url_rules() -> None:
    opts = RegistryOptions()
    assert base_url(parse_name("m"), opts) == "https://registry.ollama.ai"
    assert base_url(parse_name("h:5000/ns/m:t"), opts) == "https://h:5000"
    # insecure means plain http, as in Ollama
    assert base_url(parse_name("h:5000/ns/m"), RegistryOptions(insecure=True)) == "http://h:5000"
    with pytest.raises(RegistryError, match=r"^insecure protocol http$"):
        base_url(parse_name("http://h:5000/ns/m"), opts)
    assert base_url(parse_name("http://h/ns/m"), RegistryOptions(insecure=True)) == "http://h"


def test_backoff_grows_and_is_capped() -> None:
    opts = RegistryOptions(backoff=1.0, max_backoff=8.0)
    for attempt in range(10):
        d = backoff_delay(attempt, opts)
        base = min(2.0**attempt, 8.0)
        assert 0.5 * base <= d <= 1.5 * base


@pytest.mark.parametrize("total", [0, 1, 1000, 33 << 20, 253_113_024, 5 << 30])
def test_plan_parts_tiles_the_blob(total: int) -> None:
    opts = RegistryOptions()
    parts = plan_parts(total, opts)
    assert sum(p.size for p in parts) == total
    offset = 0
    for i, p in enumerate(parts):
        assert p.n == i and p.offset == offset and p.size > 0
        offset += p.size
    if total:
        assert all(p.size <= opts.max_part_size for p in parts)
        assert len(parts) <= max(opts.target_parts, -(-total // opts.max_part_size))


def test_partial_records_use_ollamas_names_and_format(tmp_path: Path) -> None:
    state = PartialState(tmp_path, DIGEST)
    assert state.data_path.name == f"sha256-{'ab' * 32}-partial"
    state.data_path.write_bytes(b"\0" * 300)
    parts = [Part(0, 0, 100, 100), Part(1, 100, 100, 40), Part(2, 200, 100, 0)]
    for p in parts:
        state.save(p)
    assert json.loads((tmp_path / f"sha256-{'ab' * 32}-partial-1").read_text()) == {
        "N": 1,
        "Offset": 100,
        "Size": 100,
        "Completed": 40,
    }
    assert state.load(300) == parts
    assert state.load(301) is None  # the records must tile the blob exactly
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_partial_records_written_by_ollama_are_resumed(tmp_path: Path) -> None:
    """Ollama writes ``json.Encoder`` output (with a newline) in place; corral reads it."""
    state = PartialState(tmp_path, DIGEST)
    state.data_path.write_bytes(b"\0" * 250)
    for n, (off, size, done) in enumerate([(0, 100, 100), (100, 100, 7), (200, 50, 0)]):
        doc = {"N": n, "Offset": off, "Size": size, "Completed": done}
        (tmp_path / f"sha256-{'ab' * 32}-partial-{n}").write_text(json.dumps(doc) + "\n")
    parts = state.load(250)
    assert parts is not None and [p.completed for p in parts] == [100, 7, 0]


@pytest.mark.parametrize(
    "records",
    [
        [],  # no records
        [(0, 0, 100, 10), (1, 50, 200, 0)],  # overlapping
        [(0, 0, 100, 10), (2, 100, 200, 0)],  # a gap in numbering
        [(0, 0, 100, 10)],  # does not reach the end
    ],
)
def test_bad_partial_records_are_ignored(tmp_path: Path, records: list[tuple[int, ...]]) -> None:
    state = PartialState(tmp_path, DIGEST)
    state.data_path.write_bytes(b"")
    for n, off, size, done in records:
        state.save(Part(n, off, size, done))
    assert state.load(300) is None


def test_records_without_data_file_are_ignored(tmp_path: Path) -> None:
    state = PartialState(tmp_path, DIGEST)
    state.save(Part(0, 0, 10, 5))
    assert state.load(10) is None
    (tmp_path / f"sha256-{'ab' * 32}-partial-0").write_text("{not json")
    state.data_path.write_bytes(b"")
    assert state.load(10) is None


def test_progress_leaves_out_empty_fields() -> None:
    assert progress("success") == {"status": "success"}
    assert progress("pulling abc", DIGEST, 10, 0) == {
        "status": "pulling abc",
        "digest": DIGEST,
        "total": 10,
    }


def test_upload_chunks_and_mount_source() -> None:
    assert chunk_size(10) == 100 << 20
    assert chunk_size(16 * (200 << 20)) == 200 << 20
    assert chunk_size(1 << 40) == 1000 << 20
    layer = Layer("application/vnd.ollama.image.model", DIGEST, 1)
    assert mount_source(layer) == ""
    assert mount_source(Layer(layer.media_type, DIGEST, 1, "h:5000/ns/src:v1")) == "ns/src"
    assert mount_source(Layer(layer.media_type, DIGEST, 1, "bad name!")) == ""
