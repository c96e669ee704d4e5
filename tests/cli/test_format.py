"""Pure pieces of the CLI: sizes, times, durations, tables, show sections, wrapping, history."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from corral.cli.format import (
    go_duration,
    go_g,
    go_quote,
    go_value,
    human_bytes,
    human_number,
    human_time,
    parse_go_time,
    table,
)
from corral.cli.listing import list_table, processor_text, ps_table
from corral.cli.progress import eta_text
from corral.cli.repl import OllamaHistory, save_request
from corral.cli.run import ResponseWriter, RunOptions, summary
from corral.cli.show import format_show_info

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1 KB"),
        (1500, "1.5 KB"),
        (98_000_000, "98 MB"),
        (98_765_432, "98 MB"),
        (9_450_000, "9.4 MB"),
        (2_000_000_000, "2 GB"),
        (1_700_000_000_000, "1.7 TB"),
    ],
)
def test_human_bytes(n: int, text: str) -> None:
    assert human_bytes(n) == text


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (999, "999"),
        (22_000, "22K"),
        (134_515_008, "134.52M"),
        (7_000_000_000, "7B"),
        (1_500_000_000, "1.5B"),
    ],
)
def test_human_number(n: int, text: str) -> None:
    assert human_number(n) == text


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(0), "Less than a second ago"),
        (timedelta(seconds=1), "1 second ago"),
        (timedelta(seconds=45), "45 seconds ago"),
        (timedelta(seconds=90), "About a minute ago"),
        (timedelta(minutes=5), "5 minutes ago"),
        (timedelta(minutes=70), "About an hour ago"),
        (timedelta(hours=5), "5 hours ago"),
        (timedelta(days=3), "3 days ago"),
        (timedelta(days=20), "2 weeks ago"),
        (timedelta(days=100), "3 months ago"),
        (timedelta(days=800), "2 years ago"),
        (-timedelta(minutes=4, seconds=59), "4 minutes from now"),
        (-timedelta(days=365 * 200), "Forever"),
    ],
)
def test_human_time(delta: timedelta, text: str) -> None:
    assert human_time(NOW - delta, now=NOW) == text


def test_parse_go_time_and_zero_times() -> None:
    parsed = parse_go_time("2025-06-01T11:59:00.123456789+02:00")
    assert parsed == datetime(2025, 6, 1, 9, 59, 0, 123456, tzinfo=UTC)
    assert human_time("", "Never") == "Never"
    assert human_time("0001-01-01T00:00:00Z", "Never") == "Never"
    assert human_time("not a time", "Never") == "Never"


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (850, "850ns"),
        (1500, "1.5µs"),
        (12_345_000, "12.345ms"),
        (1_000_000_000, "1s"),
        (6_906_617_596, "6.906617596s"),
        (61_500_000_000, "1m1.5s"),
        (3_723_000_000_000, "1h2m3s"),
    ],
)
def test_go_duration(ns: int, text: str) -> None:
    assert go_duration(ns) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (576.0, "576"),
        (0.5, "0.5"),
        (100000.0, "100000"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (1e-5, "1e-05"),
        (0.0001, "0.0001"),
        (-2.5, "-2.5"),
    ],
)
def test_go_g(value: float, text: str) -> None:
    assert go_g(value) == text


def test_go_value_and_quote() -> None:
    assert go_value([1, "a", True, 0.25]) == "[1 a true 0.25]"
    assert go_quote("unknown parameter 'x'") == "\"unknown parameter 'x'\""
    assert go_quote('a"b\\c\n') == '"a\\"b\\\\c\\n"'


def test_table_pads_columns_with_four_spaces() -> None:
    out = table([["a", "bbb", "c"], ["dddd", "e", ""]], ["NAME", "ID", "X"])
    assert out == "NAME    ID     X\na       bbb    c\ndddd    e\n"
    assert table([], ["A", "B"]) == "A    B\n"


def test_list_table() -> None:
    models = [
        {
            "name": "smol:latest",
            "digest": "8da7d2357201aaaa",
            "size": 98_000_000,
            "modified_at": "2000-01-01T00:00:00Z",
        },
        {
            "name": "other:1b",
            "digest": "sha256:0123456789abcdef",
            "size": 1_300_000_000,
            "modified_at": "2000-01-01T00:00:00Z",
            "remote_model": "x",
        },
    ]
    lines = list_table(models).splitlines()
    assert lines[0].split() == ["NAME", "ID", "SIZE", "MODIFIED"]
    assert lines[1].startswith("smol:latest    8da7d2357201    98 MB    ")
    assert lines[1].endswith("years ago")
    assert lines[2].split()[:3] == ["other:1b", "0123456789ab", "-"]
    assert len(list_table(models, "SMOL").splitlines()) == 2


@pytest.mark.parametrize(
    ("size", "vram", "text"),
    [(100, 0, "100% CPU"), (100, 100, "100% GPU"), (100, 48, "52%/48% CPU/GPU"), (0, 5, "Unknown")],
)
def test_processor_text(size: int, vram: int, text: str) -> None:
    assert processor_text(size, vram) == text


def test_ps_table_until_column() -> None:
    soon = (datetime.now(UTC) + timedelta(minutes=4, seconds=30)).isoformat()
    past = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    models = [
        {
            "name": "a:latest",
            "digest": "1" * 64,
            "size": 549_000_000,
            "size_vram": 0,
            "context_length": 4096,
            "expires_at": soon,
        },
        {"name": "b:latest", "digest": "2" * 64, "size": 1, "expires_at": past},
        {"name": "c:latest", "digest": "3" * 64, "size": 1, "expires_at": "2318-08-21T00:00:00Z"},
    ]
    rows = [line.split("    ") for line in ps_table(models).splitlines()]
    assert [c.strip() for c in rows[1] if c.strip()] == [
        "a:latest",
        "111111111111",
        "549 MB",
        "100% CPU",
        "4096",
        "4 minutes from now",
    ]
    assert rows[2][-1].strip() == "Stopping..."
    assert rows[3][-1].strip() == "Forever"


def test_show_info_sections() -> None:
    resp: dict[str, Any] = {
        "details": {"parameter_size": "", "quantization_level": "Q8_0", "family": "llama"},
        "model_info": {
            "general.architecture": "llama",
            "general.parameter_count": 1_235_814_400,
            "llama.context_length": 131072,
            "llama.embedding_length": 2048,
            "llama.rope.freq_base": 500000.0,
            "tokenizer.ggml.tokens": ["a", "bb", "ccc", "dddd", "e"],
            "tokenizer.ggml.add_bos_token": True,
        },
        "capabilities": ["completion", "tools"],
        "parameters": 'stop    "<|eot_id|>"\ntemperature    0.6',
        "system": "line one\n\nline two\nline three",
        "license": "L",
    }
    out = format_show_info(resp)
    assert out == (
        "  Model\n"
        "    architecture        llama\n"
        "    parameters          1.2B\n"
        "    context length      131072\n"
        "    embedding length    2048\n"
        "    quantization        Q8_0\n"
        "\n"
        "  Capabilities\n"
        "    completion\n"
        "    tools\n"
        "\n"
        "  Parameters\n"
        '    stop           "<|eot_id|>"\n'
        "    temperature    0.6\n"
        "\n"
        "  System\n"
        "    line one\n"
        "    line two\n"
        "    ...\n"
        "\n"
        "  License\n"
        "    L\n"
        "\n"
    )
    verbose = format_show_info(resp, verbose=True)
    assert "    tokenizer.ggml.tokens           [a bb ...+3 more]\n" in verbose
    assert "    llama.rope.freq_base            500000\n" in verbose
    assert "    tokenizer.ggml.add_bos_token    true\n" in verbose
    bare = format_show_info({"details": {"family": "bert", "parameter_size": "22M"}})
    assert bare.startswith("  Model\n    architecture    bert\n    parameters      22M\n")


def test_eta_text() -> None:
    assert [eta_text(s) for s in (0, 59.4, 61, 3599, 3600 * 2 + 61, 1e9)] == [
        "0s",
        "59s",
        "1m1s",
        "59m59s",
        "2h1m",
        "99h+",
    ]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_word_wrap_moves_the_last_word_to_the_next_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "30")
    out = _Tty()
    writer = ResponseWriter(out, word_wrap=True)
    writer.write("aaaa bbbb cccc dddd ee ff")
    writer.write("ff gg")
    # 25 columns fit (30 - 5): the word cut there is erased and printed again on a new line.
    assert out.getvalue() == "aaaa bbbb cccc dddd ee ff\x1b[2D\x1b[K\nffff gg"
    writer.reset()
    out.seek(0)
    out.truncate()
    writer.write("x" * 24 + " yy")
    assert out.getvalue() == "x" * 24 + " \nyy"  # a space at the edge becomes the line end
    plain = io.StringIO()
    ResponseWriter(plain, word_wrap=True).write("x " * 50)
    assert plain.getvalue() == "x " * 50  # never wrapped when not a terminal


def test_summary_lines() -> None:
    err = io.StringIO()
    summary(
        {
            "total_duration": 1_500_000_000,
            "load_duration": 2_000_000,
            "prompt_eval_count": 10,
            "prompt_eval_duration": 500_000_000,
            "eval_count": 20,
            "eval_duration": 1_000_000_000,
        },
        err,
    )
    assert err.getvalue() == (
        "total duration:       1.5s\n"
        "load duration:        2ms\n"
        "prompt eval count:    10 token(s)\n"
        "prompt eval duration: 500ms\n"
        "prompt eval rate:     20.00 tokens/s\n"
        "eval count:           20 token(s)\n"
        "eval duration:        1s\n"
        "eval rate:            20.00 tokens/s\n"
    )


def test_history_file_keeps_ollamas_format(tmp_path: Path) -> None:
    path = tmp_path / ".ollama" / "history"
    path.parent.mkdir()
    path.write_text("".join(f"line {i}\n" for i in range(120)) + "\n   \n")
    history = OllamaHistory(path)
    loaded = list(history.load_history_strings())
    assert loaded[0] == "line 119" and len(loaded) == 100
    history.store_string("two\nlines")
    lines = path.read_text().splitlines()
    assert lines[-2:] == ["two", "lines"] and len(lines) == 100
    off = OllamaHistory(tmp_path / "none", enabled=False)
    off.store_string("x")
    assert not (tmp_path / "none").exists()


def test_save_request() -> None:
    opts = RunOptions(
        model="smol:latest",
        parent_model="base:1b",
        system="be nice",
        options={"temperature": 0.2},
        loaded_messages=[{"role": "user", "content": "stored"}],
        messages=[{"role": "user", "content": "new"}],
    )
    assert save_request("mine", opts) == {
        "model": "mine",
        "from": "base:1b",
        "system": "be nice",
        "parameters": {"temperature": 0.2},
        "messages": [{"role": "user", "content": "stored"}, {"role": "user", "content": "new"}],
    }
    assert save_request("m", RunOptions(model="x"))["from"] == "x"
