"""Tests of the options table and its two entry points (Modelfile strings, JSON values)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from corral.errors import BadRequest, ModelfileError
from corral.options import (
    DEPRECATED_PARAMETERS,
    OPTIONS,
    OptionValue,
    default_options,
    merge_options,
    parse_parameter,
    validate_options,
)


def test_table_matches_ollama() -> None:
    kinds = {name: spec.kind for name, spec in OPTIONS.items()}
    assert kinds == {
        "num_ctx": "int",
        "num_batch": "int",
        "num_gpu": "int",
        "main_gpu": "int",
        "use_mmap": "bool",
        "num_thread": "int",
        "draft_num_predict": "int",
        "num_keep": "int",
        "seed": "int",
        "num_predict": "int",
        "top_k": "int",
        "top_p": "float",
        "min_p": "float",
        "typical_p": "float",
        "repeat_last_n": "int",
        "temperature": "float",
        "repeat_penalty": "float",
        "presence_penalty": "float",
        "frequency_penalty": "float",
        "mirostat": "int",
        "mirostat_tau": "float",
        "mirostat_eta": "float",
        "stop": "str_list",
        "use_mlock": "bool",
    }
    runner = {name for name, spec in OPTIONS.items() if spec.runner}
    assert runner == {
        "num_ctx",
        "num_batch",
        "num_gpu",
        "main_gpu",
        "use_mmap",
        "use_mlock",
        "num_thread",
        "draft_num_predict",
    }
    assert not DEPRECATED_PARAMETERS & OPTIONS.keys()
    assert {"penalize_newline", "low_vram", "f16_kv"} <= DEPRECATED_PARAMETERS


def test_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        OPTIONS["x"] = OPTIONS["seed"]  # type: ignore[index]


def test_defaults() -> None:
    defaults = default_options()
    assert defaults == {
        "num_ctx": 0,
        "num_batch": 512,
        "num_gpu": -1,
        "num_thread": 0,
        "draft_num_predict": 4,
        "num_keep": 4,
        "seed": -1,
        "num_predict": -1,
        "top_k": 40,
        "top_p": 0.9,
        "typical_p": 1.0,
        "repeat_last_n": 64,
        "temperature": 0.8,
        "repeat_penalty": 1.0,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "mirostat": 0,
        "mirostat_tau": 5.0,
        "mirostat_eta": 0.1,
    }
    defaults["seed"] = 7
    assert default_options()["seed"] == -1  # a fresh copy each time


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("num_ctx", "4096", 4096),
        ("seed", "-1", -1),
        ("seed", "+42", 42),
        ("top_k", "007", 7),
        ("num_predict", "9223372036854775807", 9223372036854775807),
        ("main_gpu", "1", 1),
        ("temperature", "0.7", 0.7),
        ("temperature", "1", 1.0),
        ("temperature", "-.5", -0.5),
        ("top_p", "1e-1", 0.1),
        ("top_p", "2.", 2.0),
        ("min_p", "0x1p-2", 0.25),
        ("repeat_penalty", "0.1234567891", 0.12345679),  # kept as a float32
        ("use_mmap", "true", True),
        ("use_mmap", "T", True),
        ("use_mmap", "1", True),
        ("use_mmap", "False", False),
        ("use_mmap", "0", False),
        ("stop", "<|im_end|>", ["<|im_end|>"]),
        ("stop", "### User:\n", ["### User:\n"]),
        ("stop", ["a", "b"], ["a", "b"]),
        ("num_ctx", ["2048", "extra"], 2048),
    ],
)
def test_parse_parameter(name: str, raw: str | list[str], expected: OptionValue) -> None:
    value = parse_parameter(name, raw)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("foo", "1", "unknown parameter 'foo'"),
        ("Temperature", "1", "unknown parameter 'Temperature'"),
        ("numa", "true", "unknown parameter 'numa'"),
        ("tfs_z", "1", "unknown parameter 'tfs_z'"),
        ("", "x", "unknown parameter ''"),
        ("num_ctx", "4k", "invalid int value [4k]"),
        ("num_ctx", "1.0", "invalid int value [1.0]"),
        ("num_ctx", "1_000", "invalid int value [1_000]"),
        ("num_ctx", " 1", "invalid int value [ 1]"),
        ("num_ctx", "", "invalid int value []"),
        ("seed", "9223372036854775808", "invalid int value [9223372036854775808]"),
        ("main_gpu", "x", "invalid int value [x]"),
        ("num_ctx", ["a", "b"], "invalid int value [a b]"),
        ("temperature", "hot", "invalid float value [hot]"),
        ("temperature", "1e39", "invalid float value [1e39]"),
        ("temperature", "nan", "invalid float value [nan]"),
        ("temperature", "1,5", "invalid float value [1,5]"),
        ("use_mmap", "yes", "invalid bool value [yes]"),
        ("use_mmap", "TRUE ", "invalid bool value [TRUE ]"),
    ],
)
def test_parse_parameter_errors(name: str, raw: str | list[str], message: str) -> None:
    with pytest.raises(ModelfileError) as info:
        parse_parameter(name, raw)
    assert str(info.value) == message
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("opts", "expected"),
    [
        ({}, {}),
        ({"temperature": 0.5, "top_k": 10}, {"temperature": 0.5, "top_k": 10}),
        ({"num_ctx": 4096.0}, {"num_ctx": 4096}),
        ({"num_predict": 5.9}, {"num_predict": 5}),
        ({"seed": -3.7}, {"seed": -3}),
        ({"seed": 1e30}, {"seed": -(2**63)}),
        ({"temperature": 1}, {"temperature": 1.0}),
        ({"use_mmap": False}, {"use_mmap": False}),
        ({"main_gpu": 0}, {"main_gpu": 0}),
        ({"stop": ["a", "b"]}, {"stop": ["a", "b"]}),
        ({"stop": []}, {"stop": []}),
        ({"temperature": None, "top_k": None}, {}),
        ({"mirostat": 2, "unknown": "x", "top_p": 0.5}, {"mirostat": 2, "top_p": 0.5}),
    ],
)
def test_validate_options(opts: dict[str, Any], expected: dict[str, OptionValue]) -> None:
    out = validate_options(opts)
    assert out == expected
    for key, value in out.items():
        assert type(value) is type(expected[key])


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        ({"top_k": "40"}, 'option "top_k" must be of type integer'),
        ({"top_k": True}, 'option "top_k" must be of type integer'),
        ({"main_gpu": "0"}, 'option "main_gpu" must be of type integer'),
        ({"num_ctx": [1]}, 'option "num_ctx" must be of type integer'),
        ({"temperature": "0.5"}, 'option "temperature" must be of type float32'),
        ({"temperature": False}, 'option "temperature" must be of type float32'),
        ({"temperature": float("nan")}, 'option "temperature" must be of type float32'),
        ({"use_mmap": 1}, 'option "use_mmap" must be of type boolean'),
        ({"use_mmap": "true"}, 'option "use_mmap" must be of type boolean'),
        ({"stop": "###"}, 'option "stop" must be of type array'),
        ({"stop": ["a", 1]}, 'option "stop" must be of an array of strings'),
        ({"stop": [None]}, 'option "stop" must be of an array of strings'),
    ],
)
def test_validate_options_errors(opts: dict[str, Any], message: str) -> None:
    with pytest.raises(BadRequest) as info:
        validate_options(opts)
    assert str(info.value) == message
    assert info.value.status == 400


def test_unknown_option_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="corral.options"):
        assert validate_options({"penalize_newline": True}) == {}
    assert "invalid option provided" in caplog.text
    assert "penalize_newline" in caplog.text


def test_merge_options() -> None:
    model = {"temperature": 0.2, "stop": ["<|im_end|>"], "num_ctx": 8192}
    request = {"temperature": 0.9, "stop": None, "seed": 42, "bogus": 1}
    merged = merge_options(model, None, request)
    assert merged["temperature"] == 0.9
    assert merged["stop"] == ["<|im_end|>"]
    assert merged["num_ctx"] == 8192
    assert merged["seed"] == 42
    assert merged["top_k"] == 40
    assert "bogus" not in merged
    assert merge_options() == default_options()


def test_merge_options_reports_bad_model_options() -> None:
    with pytest.raises(BadRequest, match='option "top_k" must be of type integer'):
        merge_options({"top_k": "x"})
