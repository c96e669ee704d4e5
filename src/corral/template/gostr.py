"""Go string literal helpers: ``strconv.Quote``/``QuoteRune``/``Unquote`` and ``%#U``.

The template engine needs Go's exact spelling of quoted strings in error messages and in the
``%q`` verb, and Go's literal syntax for the string, raw-string and character constants that a
template may contain.
"""

from __future__ import annotations

_SIMPLE_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}

_UNESCAPES = {
    "a": 0x07,
    "b": 0x08,
    "f": 0x0C,
    "n": 0x0A,
    "r": 0x0D,
    "t": 0x09,
    "v": 0x0B,
    "\\": 0x5C,
}

_HEX = "0123456789abcdefABCDEF"


def is_print(ch: str) -> bool:
    """Go's ``strconv.IsPrint``: letters, marks, numbers, punctuation, symbols and ASCII space."""
    if ch.isascii():
        return " " <= ch <= "~"
    return ch.isprintable() and not ("\ud800" <= ch <= "\udfff")


def _quote_char(ch: str, quote: str, ascii_only: bool) -> str:
    if ch == quote or ch == "\\":
        return "\\" + ch
    if ascii_only:
        if " " <= ch <= "~":
            return ch
    elif is_print(ch):
        return ch
    simple = _SIMPLE_ESCAPES.get(ch)
    if simple is not None:
        return simple
    code = ord(ch)
    if "\ud800" <= ch <= "\udfff":
        return "\\ufffd"
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def quote(s: str, *, ascii_only: bool = False) -> str:
    """Go's ``strconv.Quote`` (or ``QuoteToASCII`` when ``ascii_only``)."""
    if s.isascii() and s.isprintable() and '"' not in s and "\\" not in s:
        return f'"{s}"'
    return '"' + "".join(_quote_char(ch, '"', ascii_only) for ch in s) + '"'


def quote_rune(code: int, *, ascii_only: bool = False) -> str:
    """Go's ``strconv.QuoteRune``: invalid code points become U+FFFD."""
    if code < 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        code = 0xFFFD
    return "'" + _quote_char(chr(code), "'", ascii_only) + "'"


def can_backquote(s: str) -> bool:
    """Go's ``strconv.CanBackquote``: one line, no backquote, no control characters but tab."""
    for ch in s:
        if ch == "`" or ch == "\ufeff":
            return False
        if ch < " " and ch != "\t":
            return False
        if ch == "\x7f":
            return False
    return True


def format_rune_u(ch: str) -> str:
    """Go's ``%#U`` of a rune: ``U+0029 ')'`` (the quoted form only when printable)."""
    code = ord(ch)
    if is_print(ch):
        return f"U+{code:04X} '{ch}'"
    return f"U+{code:04X}"


def _read_hex(s: str, i: int, n: int) -> tuple[int, int]:
    digits = s[i : i + n]
    if len(digits) != n or any(d not in _HEX for d in digits):
        raise ValueError("invalid syntax")
    return int(digits, 16), i + n


def unquote_char(s: str, i: int, quote: str) -> tuple[int, bool, int]:
    """Decode one (possibly escaped) character of a Go literal starting at ``s[i]``.

    Returns ``(value, is_byte, next_index)``; ``is_byte`` is true for ``\\x`` and octal escapes,
    whose value is a raw byte rather than a code point. Raises ``ValueError("invalid syntax")``.
    """
    if i >= len(s):
        raise ValueError("invalid syntax")
    ch = s[i]
    if ch == quote and quote in "'\"":
        raise ValueError("invalid syntax")
    if ch != "\\":
        return ord(ch), False, i + 1
    if i + 1 >= len(s):
        raise ValueError("invalid syntax")
    esc = s[i + 1]
    i += 2
    simple = _UNESCAPES.get(esc)
    if simple is not None:
        return simple, False, i
    if esc == "x":
        value, i = _read_hex(s, i, 2)
        return value, True, i
    if esc in "uU":
        value, i = _read_hex(s, i, 4 if esc == "u" else 8)
        if value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
            raise ValueError("invalid syntax")
        return value, False, i
    if "0" <= esc <= "7":
        digits = s[i - 1 : i + 2]
        if len(digits) != 3 or any(not "0" <= d <= "7" for d in digits):
            raise ValueError("invalid syntax")
        value = int(digits, 8)
        if value > 255:
            raise ValueError("invalid syntax")
        return value, True, i + 2
    if esc in "'\"" and esc == quote:
        return ord(esc), False, i
    raise ValueError("invalid syntax")


def unquote(s: str) -> str:
    """Go's ``strconv.Unquote`` for a double-quoted or back-quoted string literal.

    Byte escapes that do not form valid UTF-8 are replaced by U+FFFD (a Python ``str`` cannot
    hold raw bytes). Raises ``ValueError("invalid syntax")``.
    """
    if len(s) < 2 or s[0] != s[-1] or s[0] not in '"`':
        raise ValueError("invalid syntax")
    body = s[1:-1]
    if s[0] == "`":
        if "`" in body:
            raise ValueError("invalid syntax")
        return body.replace("\r", "")
    if "\n" in body:
        raise ValueError("invalid syntax")
    if "\\" not in body:
        if '"' in body:
            raise ValueError("invalid syntax")
        return body
    out = bytearray()
    i = 0
    while i < len(body):
        value, is_byte, i = unquote_char(body, i, '"')
        if is_byte:
            out.append(value)
        else:
            out += chr(value).encode("utf-8", "surrogatepass")
    return out.decode("utf-8", "replace")
