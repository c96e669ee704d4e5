"""JSON grammars for `format`, built without loading llama.cpp's native library."""

from __future__ import annotations

import subprocess
import sys

import pytest

from corral.engine.grammar import GrammarError, json_grammar


def test_generic_json_grammar() -> None:
    g = json_grammar(None)
    assert "root" in g and "object" in g


def test_schema_grammar_forbids_raw_control_characters() -> None:
    g = json_grammar({"type": "object", "properties": {"name": {"type": "string"}}})
    assert 'name-kv ::= "\\"name\\""' in g
    assert r'char ::= [^"\\\x7F\x00-\x1F]' in g


def test_bad_schema() -> None:
    with pytest.raises(GrammarError):
        json_grammar({"$ref": "#/definitions/missing"})


def test_does_not_load_the_native_library() -> None:
    code = (
        "import sys; from corral.engine.grammar import json_grammar; json_grammar(None); "
        "json_grammar({'type': 'integer'}); "
        "print(any(m == 'llama_cpp' or m.startswith('llama_cpp.') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
