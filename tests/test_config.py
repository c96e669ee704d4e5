"""Settings from OLLAMA_* variables: Ollama's defaults, lenient parsing."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest

from corral.config import HostAddr, Settings, parse_host


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", HostAddr("http", "127.0.0.1", 11434)),
        ("1.2.3.4", HostAddr("http", "1.2.3.4", 11434)),
        (":1234", HostAddr("http", "0.0.0.0", 1234)),
        ("1.2.3.4:1234", HostAddr("http", "1.2.3.4", 1234)),
        ("example.com", HostAddr("http", "example.com", 11434)),
        ("example.com:1234", HostAddr("http", "example.com", 1234)),
        ("http://1.2.3.4", HostAddr("http", "1.2.3.4", 80)),
        ("http://1.2.3.4:4321", HostAddr("http", "1.2.3.4", 4321)),
        ("https://1.2.3.4", HostAddr("https", "1.2.3.4", 443)),
        ("[::1]", HostAddr("http", "::1", 11434)),
        ("[::1]:1337", HostAddr("http", "::1", 1337)),
        ("0.0.0.0", HostAddr("http", "0.0.0.0", 11434)),
        ("127.0.0.1:99999", HostAddr("http", "127.0.0.1", 11434)),
        ("127.0.0.1:abc", HostAddr("http", "127.0.0.1", 11434)),
        ("  127.0.0.1:5000  ", HostAddr("http", "127.0.0.1", 5000)),
        ("http://example.com/path", HostAddr("http", "example.com", 80)),
    ],
)
def test_parse_host(raw: str, expected: HostAddr) -> None:
    assert parse_host(raw) == expected


def test_base_url_rewrites_unspecified() -> None:
    assert parse_host("0.0.0.0:8080").base_url == "http://127.0.0.1:8080"
    assert parse_host("[::]:8080").base_url == "http://[::1]:8080"
    assert parse_host("").base_url == "http://127.0.0.1:11434"


def test_defaults() -> None:
    s = Settings.from_env({})
    assert s.models == Path.home() / ".ollama" / "models"
    assert s.keep_alive == 300
    assert s.num_parallel == 4
    assert s.max_queue == 512
    assert s.noprune is False
    assert s.log_level == logging.INFO
    assert "http://localhost" in s.origins and "app://*" in s.origins


@pytest.mark.parametrize(
    ("env", "attr", "value"),
    [
        ({"OLLAMA_KEEP_ALIVE": "10m"}, "keep_alive", 600),
        ({"OLLAMA_KEEP_ALIVE": "42"}, "keep_alive", 42),
        ({"OLLAMA_KEEP_ALIVE": "-1"}, "keep_alive", math.inf),
        ({"OLLAMA_KEEP_ALIVE": "1h30m"}, "keep_alive", 5400),
        ({"OLLAMA_KEEP_ALIVE": "bogus"}, "keep_alive", 300),
        ({"OLLAMA_NUM_PARALLEL": "2"}, "num_parallel", 2),
        ({"OLLAMA_NUM_PARALLEL": "two"}, "num_parallel", 4),
        ({"OLLAMA_NUM_PARALLEL": "-3"}, "num_parallel", 4),
        ({"OLLAMA_MAX_QUEUE": "7"}, "max_queue", 7),
        ({"OLLAMA_MAX_QUEUE": "x"}, "max_queue", 512),
        ({"OLLAMA_MAX_LOADED_MODELS": "2"}, "max_loaded_models", 2),
        ({"OLLAMA_CONTEXT_LENGTH": "8192"}, "context_length", 8192),
        ({"OLLAMA_CONTEXT_LENGTH": "lots"}, "context_length", 4096),
        ({"OLLAMA_NOPRUNE": "1"}, "noprune", True),
        ({"OLLAMA_NOPRUNE": "false"}, "noprune", False),
        ({"OLLAMA_NOPRUNE": "maybe"}, "noprune", True),
        ({}, "flash_attention", None),
        ({"OLLAMA_FLASH_ATTENTION": "1"}, "flash_attention", True),
        ({"OLLAMA_FLASH_ATTENTION": "false"}, "flash_attention", False),
        ({"OLLAMA_DEBUG": "1"}, "log_level", logging.DEBUG),
        ({"OLLAMA_DEBUG": "0"}, "log_level", logging.INFO),
        ({"OLLAMA_DEBUG": "2"}, "log_level", logging.DEBUG),
        ({"OLLAMA_MODELS": "/tmp/x"}, "models", Path("/tmp/x")),
        ({"OLLAMA_LOAD_TIMEOUT": "0"}, "load_timeout", math.inf),
        ({"OLLAMA_LOAD_TIMEOUT": "2m"}, "load_timeout", 120),
    ],
)
def test_env_values(env: dict[str, str], attr: str, value: object) -> None:
    assert getattr(Settings.from_env(env), attr) == value


def test_bad_value_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        s = Settings.from_env({"OLLAMA_MAX_QUEUE": "many"})
    assert s.max_queue == 512
    assert "OLLAMA_MAX_QUEUE" in caplog.text


def test_origins_extend_defaults() -> None:
    s = Settings.from_env({"OLLAMA_ORIGINS": "https://a.example, chrome-extension://*"})
    assert s.origins[:2] == ("https://a.example", "chrome-extension://*")
    assert "http://127.0.0.1:*" in s.origins
