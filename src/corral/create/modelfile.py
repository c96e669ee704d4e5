"""The Modelfile: parser and formatter, with Ollama's grammar, quirks and error texts.

The parser is a rune-by-rune state machine with Ollama's exact behaviour:

* instructions (case-insensitive): ``FROM``, ``PARAMETER``, ``TEMPLATE``, ``SYSTEM``,
  ``ADAPTER``, ``LICENSE``, ``MESSAGE``, ``DRAFT``, ``RENDERER``, ``PARSER``, ``REQUIRES``;
* a value is bare (to the end of the line, trimmed), ``"quoted"`` or ``\"\"\"quoted\"\"\"``;
  a quoted value may span lines, and ends at the first line end where the whole value, trimmed,
  is a closed quoted string;
* ``#`` starts a comment only at the start of a line; non-printable characters (other than
  spaces, tabs and line ends inside a value) are dropped, as Ollama drops them;
* each ``\\r`` and each ``\\n`` counts as a line in ``(line N)`` error prefixes.

A parsed command is named as in Ollama: ``model`` for ``FROM``, the lower-case keyword for the
other instructions, and the parameter's own name for ``PARAMETER``. A ``MESSAGE`` command's
args are ``"role: content"``.

:func:`parse_modelfile` also does what Ollama's client does next (``CreateRequest``): it checks
every parameter's name and value (see :mod:`corral.options`) and the ``REQUIRES`` version, so a
bad Modelfile is refused with the texts an ``ollama create`` user sees.

The formatter writes what ``/api/show`` returns in ``modelfile`` and ``parameters``.
"""

from __future__ import annotations

import enum
import logging
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from corral.errors import ModelfileError
from corral.options import DEPRECATED_PARAMETERS, OptionValue, parse_parameter
from corral.template.gofmt import format_float

__all__ = [
    "Command",
    "Modelfile",
    "format_modelfile",
    "format_parameters",
    "parse_modelfile",
]

_log = logging.getLogger(__name__)

_KEYWORDS = frozenset(
    {
        "from",
        "license",
        "template",
        "system",
        "adapter",
        "draft",
        "renderer",
        "parser",
        "parameter",
        "message",
        "requires",
    }
)
# Command names that are instructions rather than parameters (FROM is named "model").
_INSTRUCTION_NAMES = (_KEYWORDS - {"from", "parameter"}) | {"model"}
_ROLES = ("system", "user", "assistant")

ERR_MISSING_FROM = "no FROM line"
ERR_INVALID_ROLE = 'message role must be one of "system", "user", or "assistant"'
ERR_INVALID_COMMAND = (
    'command must be one of "from", "license", "template", "system", "adapter", "draft", '
    '"renderer", "parser", "parameter", "message", or "requires"'
)
ERR_UNEXPECTED_EOF = "unexpected EOF"
ERR_REQUIRES = "requires must be a valid semver (e.g. 0.14.0)"


@dataclass(frozen=True)
class Command:
    """One instruction. ``line`` (1-based, 0 when not parsed) is left out of equality."""

    name: str
    args: str
    line: int = field(default=0, compare=False)

    @property
    def is_parameter(self) -> bool:
        return self.name not in _INSTRUCTION_NAMES

    @property
    def message(self) -> tuple[str, str]:
        """``(role, content)`` of a ``message`` command."""
        role, _, content = self.args.partition(": ")
        return role, content

    def to_text(self) -> str:
        """The command as one Modelfile instruction (without the line end)."""
        if self.name == "model":
            return f"FROM {_quote(self.args, bare_unless_needed=True)}"
        if self.name == "message":
            role, content = self.message
            return f"MESSAGE {role} {_quote(content)}"
        if self.name in _INSTRUCTION_NAMES:
            return f"{self.name.upper()} {_quote(self.args)}"
        return f"PARAMETER {self.name} {_quote(self.args)}"


@dataclass(frozen=True)
class Modelfile:
    """A parsed Modelfile: its commands in file order."""

    commands: tuple[Command, ...]

    def values(self, name: str) -> list[str]:
        """The args of every command called ``name``, in order (e.g. ``"license"``)."""
        return [cmd.args for cmd in self.commands if cmd.name == name]

    def messages(self) -> list[tuple[str, str]]:
        return [cmd.message for cmd in self.commands if cmd.name == "message"]

    def parameters(self) -> dict[str, OptionValue]:
        """The typed parameters, as Ollama's client builds them for a create request.

        Deprecated parameters are skipped (:func:`parse_modelfile` warns about them once);
        ``stop`` values accumulate in order; for other options the last line wins. Raises
        :class:`ModelfileError`.
        """
        return _collect_parameters(self.commands, warn=False)

    def to_text(self) -> str:
        """Ollama's ``Modelfile.String()``: one instruction per line."""
        return "".join(cmd.to_text() + "\n" for cmd in self.commands)


def _collect_parameters(commands: Iterable[Command], *, warn: bool) -> dict[str, OptionValue]:
    params: dict[str, OptionValue] = {}
    for cmd in commands:
        if not cmd.is_parameter:
            continue
        if cmd.name in DEPRECATED_PARAMETERS:
            if warn:
                _log.warning("parameter %s is deprecated", cmd.name)
            continue
        value = parse_parameter(cmd.name, cmd.args)
        previous = params.get(cmd.name)
        if isinstance(previous, list) and isinstance(value, list):
            params[cmd.name] = previous + value
        else:
            params[cmd.name] = value
    return params


# --------------------------------------------------------------------------------------------
# parsing


class _State(enum.Enum):
    NIL = enum.auto()
    NAME = enum.auto()
    VALUE = enum.auto()
    PARAMETER = enum.auto()
    MESSAGE = enum.auto()
    COMMENT = enum.auto()


class _Unexpected(Exception):
    """Ollama's io.ErrUnexpectedEOF raised in the middle of the input."""


class _InvalidCommand(Exception):
    pass


def _is_alpha(ch: str) -> bool:
    return ("a" <= ch <= "z") or ("A" <= ch <= "Z")


def _is_print(ch: str) -> bool:
    """Go's unicode.IsPrint: letters, marks, numbers, punctuation, symbols and ASCII space."""
    if " " <= ch <= "~":
        return True
    return unicodedata.category(ch)[0] in "LMNPS"


def _next_state(ch: str, state: _State) -> tuple[_State, str]:
    """The state after ``ch`` and the character to keep ("" for none)."""
    if state is _State.NIL:
        if ch == "#":
            return _State.COMMENT, ""
        if ch in " \t\r\n":
            return _State.NIL, ""
        return _State.NAME, ch
    if state is _State.NAME:
        if _is_alpha(ch):
            return _State.NAME, ch
        if ch in " \t":
            return _State.VALUE, ""
        raise _InvalidCommand
    if state is _State.VALUE:
        if ch in " \t\r\n":
            return _State.NIL, ch
        return _State.VALUE, ch
    if state is _State.PARAMETER:
        if _is_alpha(ch) or "0" <= ch <= "9" or ch == "_":
            return _State.PARAMETER, ch
        if ch in " \t":
            return _State.VALUE, ""
        raise _Unexpected
    if state is _State.MESSAGE:
        if _is_alpha(ch):
            return _State.MESSAGE, ch
        if ch in " \t":
            return _State.VALUE, ""
        raise _Unexpected
    if ch in "\r\n":
        return _State.NIL, ""
    return _State.COMMENT, ""


def _unquote(text: str) -> str | None:
    """The value inside quotes, the text itself if unquoted, or None if a quote is unclosed."""
    if text.startswith('"""'):
        if len(text) >= 6 and text.endswith('"""'):
            return text[3:-3]
        return None
    if text.startswith('"'):
        if len(text) >= 2 and text.endswith('"'):
            return text[1:-1]
        return None
    return text


# Go's unicode.IsSpace set, which strings.TrimSpace trims (str.strip() would trim more).
_GO_SPACES = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def _go_trim_space(text: str) -> str:
    return text.strip(_GO_SPACES)


def _decode(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    if data.startswith(b"\xff\xfe"):
        return data[2:].decode("utf-16-le", errors="replace")
    if data.startswith(b"\xfe\xff"):
        return data[2:].decode("utf-16-be", errors="replace")
    return data.decode("utf-8", errors="replace")


class _Buffer:
    """The characters of the word or value being read, with its trimmed ends tracked.

    Ollama re-checks the trimmed value at every space and line end; tracking the first and last
    non-space characters keeps that check O(1) instead of rescanning a long value.
    """

    def __init__(self) -> None:
        self.chars: list[str] = []
        self.first = -1
        self.last = -1

    def append(self, ch: str) -> None:
        if ch not in _GO_SPACES:
            if self.first < 0:
                self.first = len(self.chars)
            self.last = len(self.chars)
        self.chars.append(ch)

    def clear(self) -> None:
        self.chars.clear()
        self.first = self.last = -1

    def text(self) -> str:
        return "".join(self.chars)

    def closed(self) -> bool:
        """Whether the trimmed value would unquote (not an open quoted string)."""
        chars, first, last = self.chars, self.first, self.last
        if first < 0 or chars[first] != '"':
            return True
        size = last - first + 1
        if size >= 3 and chars[first + 1] == chars[first + 2] == '"':
            return size >= 6 and chars[last] == chars[last - 1] == chars[last - 2] == '"'
        return size >= 2 and chars[last] == '"'


def _parse_commands(text: str) -> list[Command]:
    commands: list[Command] = []
    state = _State.NIL
    line = 1
    start_line = 1
    buf = _Buffer()
    name = ""
    role = ""

    def finish() -> None:
        nonlocal role
        value = _unquote(_go_trim_space(buf.text()))
        if value is None:
            raise ModelfileError(ERR_UNEXPECTED_EOF)
        if role:
            value = f"{role}: {value}"
            role = ""
        commands.append(Command(name, value, start_line))

    for ch in text:
        if state is _State.VALUE and ch not in " \t\r\n":
            # fast path: the common case of a character inside a value
            if _is_print(ch):
                buf.append(ch)
            continue
        if ch == "\n" or ch == "\r":
            line += 1
        try:
            nxt, keep = _next_state(ch, state)
        except _Unexpected:
            raise ModelfileError(f"{ERR_UNEXPECTED_EOF}: {buf.text()}") from None
        except _InvalidCommand:
            raise ModelfileError(f"(line {line}): {ERR_INVALID_COMMAND}") from None

        if nxt is not state:
            if state is _State.NAME:
                lowered = buf.text().lower()
                if lowered not in _KEYWORDS:
                    raise ModelfileError(f"(line {line}): {ERR_INVALID_COMMAND}")
                if lowered == "parameter":
                    nxt = _State.PARAMETER
                elif lowered == "message":
                    nxt = _State.MESSAGE
                    name = lowered
                else:
                    name = "model" if lowered == "from" else lowered
            elif state is _State.PARAMETER:
                name = buf.text()
            elif state is _State.MESSAGE:
                word = buf.text()
                if word not in _ROLES:
                    raise ModelfileError(f"(line {line}): {ERR_INVALID_ROLE}")
                role = word
            elif state is _State.VALUE:
                # A value ends only at a line end, and only once its quotes are closed.
                if not buf.closed() or ch in " \t":
                    buf.append(ch)
                    continue
                finish()
            elif nxt is _State.NAME:
                start_line = line
            buf.clear()
            state = nxt

        if keep and _is_print(keep):
            buf.append(keep)

    if state is _State.VALUE:
        finish()
    elif state not in (_State.NIL, _State.COMMENT):
        raise ModelfileError(ERR_UNEXPECTED_EOF)
    return commands


# x/mod/semver: vMAJOR[.MINOR[.PATCH[-PRERELEASE][+BUILD]]]
_NUM = r"(?:0|[1-9][0-9]*)"
_PRE = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_BUILD = r"[0-9A-Za-z-]+"
_SEMVER = re.compile(
    rf"v{_NUM}(?:\.{_NUM}(?:\.{_NUM}(?:-{_PRE}(?:\.{_PRE})*)?(?:\+{_BUILD}(?:\.{_BUILD})*)?)?)?"
)


def _check(commands: Sequence[Command]) -> None:
    """The checks Ollama's client makes when it turns the commands into a create request."""
    _collect_parameters(commands, warn=True)
    for cmd in commands:
        if cmd.name == "requires":
            version = cmd.args if cmd.args.startswith("v") else "v" + cmd.args
            if not _SEMVER.fullmatch(version):
                raise ModelfileError(ERR_REQUIRES)


def parse_modelfile(text: str | bytes, *, check: bool = True) -> Modelfile:
    """Parse a Modelfile; raise :class:`ModelfileError` with Ollama's message on a bad one.

    ``bytes`` are decoded as Ollama reads a file: UTF-8, or UTF-16 after a byte-order mark.
    With ``check`` (the default) parameter names and values and the ``REQUIRES`` version are
    validated too, after the syntax and the ``FROM`` line.
    """
    if isinstance(text, bytes):
        text = _decode(text)
    elif text.startswith("\ufeff"):
        text = text[1:]
    commands = _parse_commands(text)
    if not any(cmd.name == "model" for cmd in commands):
        raise ModelfileError(ERR_MISSING_FROM)
    if check:
        _check(commands)
    return Modelfile(tuple(commands))


# --------------------------------------------------------------------------------------------
# formatting


def _quote(value: str, *, bare_unless_needed: bool = False) -> str:
    """Quote a value as Ollama does, and also where a bare value would not parse back.

    Ollama quotes a value with a line feed or a leading or trailing space, with triple quotes
    when it holds a double quote. corral quotes as well a value that a bare form would change:
    other surrounding white space, a carriage return, a leading double quote.
    """
    ollama_quotes = not bare_unless_needed and (
        "\n" in value or value.startswith(" ") or value.endswith(" ")
    )
    needed = (
        "\n" in value or "\r" in value or _go_trim_space(value) != value or value.startswith('"')
    )
    if not (ollama_quotes or needed):
        return value
    if '"' in value:
        return f'"""{value}"""'
    return f'"{value}"'


_GO_ESCAPES: Mapping[str, str] = MappingProxyType(
    {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}
)


def _go_quote(text: str) -> str:
    """Go's ``strconv.Quote`` (what ``%#v`` prints for a string)."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif _is_print(ch):
            out.append(ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\\ufffd")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def _plain(value: Any) -> str:
    """A parameter value as a Modelfile writes it (Go's ``%v``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format_float(value, "g", -1)
    return str(value)


def _go_syntax(value: Any) -> str:
    """A parameter value as ``/api/show`` lists it (Go's ``%#v``)."""
    if isinstance(value, str):
        return _go_quote(value)
    return _plain(value)


def _parameter_items(parameters: Mapping[str, Any]) -> Iterable[tuple[str, Any]]:
    # Ollama walks a Go map (random order); corral sorts by name so the output is stable.
    for key in sorted(parameters):
        value = parameters[key]
        if value is None:
            continue
        if isinstance(value, list | tuple):
            for item in value:
                yield key, item
        else:
            yield key, value


def format_parameters(parameters: Mapping[str, Any]) -> str:
    """The ``parameters`` text of ``/api/show``: ``name`` padded to 30 columns, a space, the value.

    Strings are Go-quoted, list options give one line per item; lines are joined by ``\\n``
    without a final line end.
    """
    return "\n".join(
        f"{key:<30} {_go_syntax(value)}" for key, value in _parameter_items(parameters)
    )


def format_modelfile(
    *,
    model_name: str,
    from_: str,
    template: str | None = None,
    system: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    licenses: Sequence[str] = (),
    messages: Sequence[tuple[str, str]] = (),
    adapters: Sequence[str] = (),
    draft: str | None = None,
    projectors: Sequence[str] = (),
    renderer: str | None = None,
    parser: str | None = None,
) -> str:
    """The ``modelfile`` text of ``/api/show`` for a stored model.

    ``model_name`` is the short name shown in the header, ``from_`` the model blob's path.
    The order is Ollama's: FROM, ADAPTER, DRAFT, FROM (projectors), TEMPLATE, SYSTEM, RENDERER,
    PARSER, PARAMETER, LICENSE, MESSAGE. Ollama always has a template (``{{ .Prompt }}`` when the
    model has none); pass it, ``None`` leaves the line out.
    """
    commands = [Command("model", from_)]
    commands += [Command("adapter", path) for path in adapters]
    if draft:
        commands.append(Command("draft", draft))
    commands += [Command("model", path) for path in projectors]
    if template is not None:
        commands.append(Command("template", template))
    if system:
        commands.append(Command("system", system))
    if renderer:
        commands.append(Command("renderer", renderer))
    if parser:
        commands.append(Command("parser", parser))
    for key, value in _parameter_items(parameters or {}):
        commands.append(Command(key, _plain(value)))
    commands += [Command("license", text) for text in licenses]
    commands += [Command("message", f"{role}: {content}") for role, content in messages]
    header = (
        '# Modelfile generated by "ollama show"\n'
        "# To build a new Modelfile based on this, replace FROM with:\n"
        f"# FROM {model_name}\n\n"
    )
    return header + Modelfile(tuple(commands)).to_text()
