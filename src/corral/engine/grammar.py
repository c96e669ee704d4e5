"""GBNF grammars for Ollama's ``format`` option: ``"json"`` or a JSON schema.

The converter is llama-cpp-python's ``llama_grammar`` module. Importing it the normal way
(``import llama_cpp.llama_grammar``) runs ``llama_cpp/__init__.py``, which loads the native
library (~0.3 s and the whole of libllama); the module itself is pure Python, so it is loaded
here straight from its file, without the package, and the server can build grammars without
ever touching llama.cpp.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

_MODULE_NAME = "corral_llama_grammar"
# The converter's string character rule admits raw control characters, which JSON forbids (a
# model that writes a literal newline inside a string would produce unparsable output).
_LOOSE_CHAR = r'char ::= [^"\\] |'
_STRICT_CHAR = r'char ::= [^"\\\x7F\x00-\x1F] |'


class GrammarError(ValueError):
    """A JSON schema the converter cannot turn into a grammar."""


@functools.cache
def _converter() -> ModuleType:
    spec = importlib.util.find_spec("llama_cpp")  # locates the package, does not import it
    if spec is None or not spec.submodule_search_locations:
        raise GrammarError("llama-cpp-python is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "llama_grammar.py"
    file_spec = importlib.util.spec_from_file_location(_MODULE_NAME, path)
    if file_spec is None or file_spec.loader is None:
        raise GrammarError(f"cannot load {path}")
    module = importlib.util.module_from_spec(file_spec)
    file_spec.loader.exec_module(module)
    return module


def json_grammar(schema: dict[str, Any] | None) -> str:
    """GBNF text constraining output to JSON: any JSON object when ``schema`` is None
    (``format: "json"``), else a value valid against the JSON schema."""
    mod = _converter()
    if schema is None:
        return str(mod.JSON_GBNF)
    try:
        gbnf = str(mod.json_schema_to_gbnf(json.dumps(schema)))
    except Exception as e:  # the converter raises bare Exceptions / KeyErrors / ValueErrors
        raise GrammarError(f"invalid JSON schema: {e}") from e
    return "\n".join(
        _STRICT_CHAR + line[len(_LOOSE_CHAR) :] if line.startswith(_LOOSE_CHAR) else line
        for line in gbnf.splitlines()
    )
