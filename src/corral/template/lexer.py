"""Lexer for Go ``text/template`` source with the default ``{{``/``}}`` delimiters.

Produces the same token stream as Go's ``text/template/parse`` lexer, including trim markers
(``{{- `` and `` -}}``: a ``-`` next to the delimiter plus one ASCII space, tab, CR or LF trims
all adjacent whitespace of the neighbouring text), comments (``{{/* */}}``, dropped), and the
lexical errors Go reports ("unclosed action", "bad character U+0021 '!'"...). The stream ends
with an EOF token or with one ERROR token that the parser reports when it reaches it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from corral.template.gostr import format_rune_u, quote

LEFT_DELIM = "{{"
RIGHT_DELIM = "}}"
SPACE_CHARS = " \t\r\n"
_DEC = "0123456789_"
_HEX = "0123456789abcdefABCDEF_"
_OCT = "01234567_"
_BIN = "01_"


class TokenType(enum.IntEnum):
    """Token kinds; every kind after KEYWORD is a keyword (Go prints those as ``<name>``)."""

    ERROR = 0
    BOOL = enum.auto()
    CHAR = enum.auto()
    CHAR_CONSTANT = enum.auto()
    COMPLEX = enum.auto()
    ASSIGN = enum.auto()
    DECLARE = enum.auto()
    EOF = enum.auto()
    FIELD = enum.auto()
    IDENTIFIER = enum.auto()
    LEFT_DELIM = enum.auto()
    LEFT_PAREN = enum.auto()
    NUMBER = enum.auto()
    PIPE = enum.auto()
    RAW_STRING = enum.auto()
    RIGHT_DELIM = enum.auto()
    RIGHT_PAREN = enum.auto()
    SPACE = enum.auto()
    STRING = enum.auto()
    TEXT = enum.auto()
    VARIABLE = enum.auto()
    KEYWORD = enum.auto()
    BLOCK = enum.auto()
    BREAK = enum.auto()
    CONTINUE = enum.auto()
    DOT = enum.auto()
    DEFINE = enum.auto()
    ELSE = enum.auto()
    END = enum.auto()
    IF = enum.auto()
    NIL = enum.auto()
    RANGE = enum.auto()
    TEMPLATE = enum.auto()
    WITH = enum.auto()


_KEYWORDS = {
    "block": TokenType.BLOCK,
    "break": TokenType.BREAK,
    "continue": TokenType.CONTINUE,
    "define": TokenType.DEFINE,
    "else": TokenType.ELSE,
    "end": TokenType.END,
    "if": TokenType.IF,
    "nil": TokenType.NIL,
    "range": TokenType.RANGE,
    "template": TokenType.TEMPLATE,
    "with": TokenType.WITH,
}


@dataclass(frozen=True, slots=True)
class Token:
    """One lexical item: its kind, start offset, source text (or error message) and line."""

    typ: TokenType
    pos: int
    val: str
    line: int

    def __str__(self) -> str:
        if self.typ == TokenType.EOF:
            return "EOF"
        if self.typ == TokenType.ERROR:
            return self.val
        if self.typ > TokenType.KEYWORD:
            return f"<{self.val}>"
        if len(self.val) > 10:
            return quote(self.val[:10]) + "..."
        return quote(self.val)


def is_alnum(ch: str) -> bool:
    """Go's isAlphaNumeric: underscore, Unicode letter or decimal digit."""
    return ch == "_" or ch.isalpha() or ch.isdecimal()


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.n = len(text)
        self.tokens: list[Token] = []
        self.paren_depth = 0
        self._line = 1
        self._line_pos = 0

    def _line_at(self, pos: int) -> int:
        if pos > self._line_pos:
            self._line += self.text.count("\n", self._line_pos, pos)
            self._line_pos = pos
        return self._line

    def emit(self, typ: TokenType, start: int, end: int) -> None:
        self.tokens.append(Token(typ, start, self.text[start:end], self._line_at(start)))

    def error(self, start: int, message: str) -> None:
        self.tokens.append(Token(TokenType.ERROR, start, message, self._line_at(start)))

    def has_left_trim(self, pos: int) -> bool:
        text = self.text
        return pos + 1 < self.n and text[pos] == "-" and text[pos + 1] in SPACE_CHARS

    def at_right_delim(self, pos: int) -> tuple[bool, bool]:
        """Whether ``pos`` starts a right delimiter, and whether it carries a trim marker."""
        text = self.text
        if (
            pos + 1 < self.n
            and text[pos] in SPACE_CHARS
            and text[pos + 1] == "-"
            and text.startswith(RIGHT_DELIM, pos + 2)
        ):
            return True, True
        return text.startswith(RIGHT_DELIM, pos), False

    def skip_spaces(self, pos: int) -> int:
        while pos < self.n and self.text[pos] in SPACE_CHARS:
            pos += 1
        return pos

    def at_terminator(self, pos: int) -> bool:
        if pos >= self.n:
            return True
        ch = self.text[pos]
        return ch in SPACE_CHARS or ch in ".,|:)(" or ch == RIGHT_DELIM[0]

    def run(self) -> list[Token]:
        text, pos = self.text, 0
        while True:
            x = text.find(LEFT_DELIM, pos)
            if x < 0:
                if pos < self.n:
                    self.emit(TokenType.TEXT, pos, self.n)
                self.emit(TokenType.EOF, self.n, self.n)
                return self.tokens
            after = x + len(LEFT_DELIM)
            trim = self.has_left_trim(after)
            end = x
            if trim:
                while end > pos and text[end - 1] in SPACE_CHARS:
                    end -= 1
            if end > pos:
                self.emit(TokenType.TEXT, pos, end)
            inner = after + 2 if trim else after
            if text.startswith("/*", inner):
                pos = self.lex_comment(inner)
            else:
                self.emit(TokenType.LEFT_DELIM, x, after)
                self.paren_depth = 0
                pos = self.lex_action(inner)
            if pos < 0:
                return self.tokens

    def lex_comment(self, start: int) -> int:
        close = self.text.find("*/", start + 2)
        if close < 0:
            self.error(start, "unclosed comment")
            return -1
        pos = close + 2
        delim, trim = self.at_right_delim(pos)
        if not delim:
            self.error(start, "comment ends before closing delimiter")
            return -1
        pos += (2 if trim else 0) + len(RIGHT_DELIM)
        return self.skip_spaces(pos) if trim else pos

    def lex_action(self, pos: int) -> int:
        text, n = self.text, self.n
        while True:
            delim, trim = self.at_right_delim(pos)
            if delim:
                if self.paren_depth:
                    self.error(pos, "unclosed left paren")
                    return -1
                if trim:
                    pos += 2
                self.emit(TokenType.RIGHT_DELIM, pos, pos + len(RIGHT_DELIM))
                pos += len(RIGHT_DELIM)
                return self.skip_spaces(pos) if trim else pos
            if pos >= n:
                self.error(pos, "unclosed action")
                return -1
            ch = text[pos]
            if ch in SPACE_CHARS:
                end = self.skip_spaces(pos)
                if text.startswith("-" + RIGHT_DELIM, end):
                    end -= 1  # leave the space of " -}}" for the delimiter
                if end > pos:
                    self.emit(TokenType.SPACE, pos, end)
                pos = end
            elif ch == "=":
                self.emit(TokenType.ASSIGN, pos, pos + 1)
                pos += 1
            elif ch == ":":
                if not text.startswith(":=", pos):
                    self.error(pos, "expected :=")
                    return -1
                self.emit(TokenType.DECLARE, pos, pos + 2)
                pos += 2
            elif ch == "|":
                self.emit(TokenType.PIPE, pos, pos + 1)
                pos += 1
            elif ch == '"':
                pos = self.lex_quote(pos, '"', TokenType.STRING, "unterminated quoted string")
            elif ch == "'":
                pos = self.lex_quote(
                    pos, "'", TokenType.CHAR_CONSTANT, "unterminated character constant"
                )
            elif ch == "`":
                close = text.find("`", pos + 1)
                if close < 0:
                    self.error(pos, "unterminated raw quoted string")
                    return -1
                self.emit(TokenType.RAW_STRING, pos, close + 1)
                pos = close + 1
            elif ch == "$":
                pos = self.lex_field_or_variable(pos, TokenType.VARIABLE)
            elif ch == "." and pos + 1 < n and not "0" <= text[pos + 1] <= "9":
                pos = self.lex_field_or_variable(pos, TokenType.FIELD)
            elif ch in "+-." or "0" <= ch <= "9":
                pos = self.lex_number(pos)
            elif is_alnum(ch):
                pos = self.lex_identifier(pos)
            elif ch == "(":
                self.emit(TokenType.LEFT_PAREN, pos, pos + 1)
                self.paren_depth += 1
                pos += 1
            elif ch == ")":
                self.emit(TokenType.RIGHT_PAREN, pos, pos + 1)
                self.paren_depth -= 1
                pos += 1
                if self.paren_depth < 0:
                    self.error(pos, f"unexpected right paren {format_rune_u(ch)}")
                    return -1
            elif ch.isascii() and ch.isprintable():
                self.emit(TokenType.CHAR, pos, pos + 1)
                pos += 1
            else:
                self.error(pos, f"unrecognized character in action: {format_rune_u(ch)}")
                return -1
            if pos < 0:
                return -1

    def lex_quote(self, start: int, close: str, typ: TokenType, message: str) -> int:
        text, n, pos = self.text, self.n, start + 1
        while True:
            if pos >= n or text[pos] == "\n":
                self.error(start, message)
                return -1
            ch = text[pos]
            if ch == "\\":
                if pos + 1 >= n or text[pos + 1] == "\n":
                    self.error(start, message)
                    return -1
                pos += 2
            elif ch == close:
                self.emit(typ, start, pos + 1)
                return pos + 1
            else:
                pos += 1

    def scan_alnum(self, pos: int) -> int:
        text, n = self.text, self.n
        while pos < n and is_alnum(text[pos]):
            pos += 1
        return pos

    def bad_character(self, start: int, pos: int) -> int:
        self.error(start, f"bad character {format_rune_u(self.text[pos])}")
        return -1

    def lex_field_or_variable(self, start: int, typ: TokenType) -> int:
        if self.at_terminator(start + 1):  # a lone "." or "$"
            self.emit(TokenType.DOT if typ == TokenType.FIELD else typ, start, start + 1)
            return start + 1
        end = self.scan_alnum(start + 1)
        if not self.at_terminator(end):
            return self.bad_character(start, end)
        self.emit(typ, start, end)
        return end

    def lex_identifier(self, start: int) -> int:
        end = self.scan_alnum(start)
        if not self.at_terminator(end):
            return self.bad_character(start, end)
        word = self.text[start:end]
        keyword = _KEYWORDS.get(word)
        if keyword is not None:
            self.emit(keyword, start, end)
        elif word in ("true", "false"):
            self.emit(TokenType.BOOL, start, end)
        else:
            self.emit(TokenType.IDENTIFIER, start, end)
        return end

    def accept_run(self, pos: int, valid: str) -> int:
        text, n = self.text, self.n
        while pos < n and text[pos] in valid:
            pos += 1
        return pos

    def accept(self, pos: int, valid: str) -> int:
        return pos + 1 if pos < self.n and self.text[pos] in valid else pos

    def scan_number(self, pos: int) -> tuple[bool, int]:
        pos = self.accept(pos, "+-")
        digits = _DEC
        if pos < self.n and self.text[pos] == "0":
            pos += 1
            for prefix, run in (("xX", _HEX), ("oO", _OCT), ("bB", _BIN)):
                if self.accept(pos, prefix) != pos:
                    pos += 1
                    digits = run
                    break
        pos = self.accept_run(pos, digits)
        if self.accept(pos, ".") != pos:
            pos = self.accept_run(pos + 1, digits)
        if digits is _DEC and self.accept(pos, "eE") != pos:
            pos = self.accept_run(self.accept(pos + 1, "+-"), "0123456789_")
        if digits is _HEX and self.accept(pos, "pP") != pos:
            pos = self.accept_run(self.accept(pos + 1, "+-"), "0123456789_")
        pos = self.accept(pos, "i")
        if pos < self.n and is_alnum(self.text[pos]):
            return False, pos + 1
        return True, pos

    def lex_number(self, start: int) -> int:
        ok, end = self.scan_number(start)
        if ok and end < self.n and self.text[end] in "+-":
            ok, end = self.scan_number(end)
            if not ok or self.text[end - 1] != "i":
                self.error(start, f"bad number syntax: {quote(self.text[start:end])}")
                return -1
            self.emit(TokenType.COMPLEX, start, end)
            return end
        if not ok:
            self.error(start, f"bad number syntax: {quote(self.text[start:end])}")
            return -1
        self.emit(TokenType.NUMBER, start, end)
        return end


def lex(text: str) -> list[Token]:
    """Tokenize ``text``; the list ends with an EOF token or a single ERROR token."""
    return _Lexer(text).run()
