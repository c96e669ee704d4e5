"""Go's ``fmt`` printing for template output: ``Sprint``, ``Sprintln``, ``Sprintf`` and ``%v``.

Implements the verbs templates use (``%v %+v %s %q %d %b %o %O %x %X %c %U %e %E %f %F %g %G
%t %T %%``) with flags (``+ - # 0`` and space), width, precision, ``*`` and ``[n]`` argument
indexes, Go's spelling of floats (``1e+06``, ``+Inf``), of collections (``[a b]``,
``map[k:v]``, ``{f1 f2}``) and of mistakes (``%!d(string=x)``, ``%!s(MISSING)``,
``%!(EXTRA int=1)``). Values follow the data model of :mod:`corral.template.values`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from corral.template.gostr import can_backquote, quote, quote_rune
from corral.template.values import NO_VALUE, method_of, sorted_items, struct_fields, type_name

__all__ = ["format_float", "format_value", "shortest_digits", "sprint", "sprintf", "sprintln"]


def shortest_digits(f: float) -> tuple[str, int]:
    """Shortest round-trip decimal digits of ``abs(f)`` and the decimal point position.

    The value is ``0.DIGITS * 10**dp``; zero gives ``("", 0)``.
    """
    if f == 0:
        return "", 0
    text = repr(abs(f))
    mantissa, _, exponent = text.partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = whole + frac
    dp = len(whole) + (int(exponent) if exponent else 0)
    stripped = digits.lstrip("0")
    dp -= len(digits) - len(stripped)
    return stripped.rstrip("0"), dp


def _fmt_e(neg: bool, digits: str, dp: int, prec: int, letter: str) -> str:
    out = ["-" if neg else "", digits[:1] or "0"]
    if prec > 0:
        out.append("." + digits[1 : prec + 1].ljust(prec, "0"))
    exp = dp - 1 if digits else 0
    out.append(f"{letter}{'-' if exp < 0 else '+'}{abs(exp):02d}")
    return "".join(out)


def _fmt_f(neg: bool, digits: str, dp: int, prec: int) -> str:
    whole = digits[:dp].ljust(dp, "0") if dp > 0 else "0"
    text = ("-" if neg else "") + whole
    if prec > 0:
        frac = "".join(digits[dp + i] if 0 <= dp + i < len(digits) else "0" for i in range(prec))
        text += "." + frac
    return text


def _hex_float(f: float, upper: bool) -> str:
    sign = "-" if math.copysign(1.0, f) < 0 else ""
    if f == 0:
        body = "0x0p+00"
    else:
        mant, _, exp = float.hex(abs(f)).partition("p")
        mant = mant.rstrip("0").rstrip(".")
        exp_num = int(exp)
        body = f"{mant}p{'-' if exp_num < 0 else '+'}{abs(exp_num):02d}"
    return sign + (body.upper() if upper else body)


def format_float(f: float, verb: str = "g", prec: int = -1) -> str:
    """Go's ``strconv.FormatFloat(f, verb, prec, 64)`` for verbs e E f F g G x X."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if verb in "xX":
        return _hex_float(f, verb == "X")
    neg = math.copysign(1.0, f) < 0
    lower = verb.lower()
    if prec < 0:
        digits, dp = shortest_digits(f)
        if lower == "e":
            return _fmt_e(neg, digits, dp, len(digits) - 1, verb)
        if lower == "f":
            return _fmt_f(neg, digits, dp, max(len(digits) - dp, 0))
        exp = dp - 1 if digits else 0
        if exp < -4 or exp >= 6:
            return _fmt_e(neg, digits, dp, len(digits) - 1, "e" if verb == "g" else "E")
        return _fmt_f(neg, digits, dp, max(len(digits) - dp, 0))
    text = format(f, f".{prec}{'f' if lower == 'f' else verb}")
    return text


@dataclass(slots=True)
class _Flags:
    plus: bool = False
    minus: bool = False
    sharp: bool = False
    space: bool = False
    zero: bool = False
    plus_v: bool = False
    sharp_v: bool = False
    wid: int | None = None
    prec: int | None = None


_PLAIN = _Flags()


def _pad(s: str, f: _Flags) -> str:
    if f.wid is None or len(s) >= f.wid:
        return s
    fill = f.wid - len(s)
    if f.minus:
        return s + " " * fill
    return ("0" if f.zero else " ") * fill + s


def _bad_verb(value: Any, verb: str, f: _Flags) -> str:
    if value is None or value is NO_VALUE:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({type_name(value)}={_print(value, 'v', f, 0)})"


def _fmt_integer(n: int, verb: str, f: _Flags) -> str:
    if verb == "c":
        return _pad(chr(n) if 0 <= n <= 0x10FFFF else "\ufffd", f)
    if verb == "q":
        return _pad(quote_rune(n, ascii_only=f.plus), f)
    if verb == "U":
        text = f"U+{n:04X}" if n >= 0 else f"U+{n & 0xFFFFFFFFFFFFFFFF:04X}"
        if f.sharp and 0 <= n <= 0x10FFFF and chr(n).isprintable():
            text += f" '{chr(n)}'"
        return _pad(text, f)
    base = {"d": 10, "v": 10, "b": 2, "o": 8, "O": 8, "x": 16, "X": 16}[verb]
    digits = format(abs(n), {10: "d", 2: "b", 8: "o", 16: "x"}[base])
    if verb == "X":
        digits = digits.upper()
    if f.prec is not None:
        if f.prec == 0 and n == 0:
            return _pad("", _Flags(minus=f.minus, wid=f.wid))
        digits = digits.rjust(f.prec, "0")
    sign = "-" if n < 0 else "+" if f.plus else " " if f.space else ""
    if f.zero and f.prec is None and f.wid is not None and not f.minus:
        digits = digits.rjust(f.wid - len(sign), "0")
    prefix = ""
    if f.sharp:
        prefix = {2: "0b", 8: "" if digits.startswith("0") else "0", 16: "0x"}.get(base, "")
        if verb == "X":
            prefix = prefix.upper()
    if verb == "O":
        prefix = "0o"
    body = prefix + digits
    return _pad(sign + body, _Flags(minus=f.minus, wid=f.wid))


def _fmt_float(x: float, verb: str, f: _Flags) -> str:
    if verb == "v":
        verb = "g"
    prec = -1 if f.prec is None else f.prec
    if prec < 0 and verb in "eEfF":
        prec = 6
    text = format_float(x, verb, prec)
    if text[0] not in "+-":
        text = ("+" if f.plus else " " if f.space else "") + text
    elif text == "+Inf" and not f.plus:
        text = " Inf" if f.space else "+Inf"
    if text[-3:] in ("Inf", "NaN"):
        return _pad(text, _Flags(minus=f.minus, wid=f.wid))
    if f.zero and f.wid is not None and not f.minus and len(text) < f.wid:
        sign = text[0] if text[0] in "+- " else ""
        return sign + text[len(sign) :].rjust(f.wid - len(sign), "0")
    return _pad(text, f)


def _fmt_string(s: str, verb: str, f: _Flags) -> str:
    if f.prec is not None and verb in "vsq":
        s = s[: f.prec]
    if verb == "s" or (verb == "v" and not f.sharp_v):
        return _pad(s, f)
    if verb == "q" or verb == "v":
        if f.sharp and verb == "q" and can_backquote(s):
            return _pad("`" + s + "`", f)
        return _pad(quote(s, ascii_only=f.plus), f)
    data = s.encode("utf-8", "replace")
    if f.prec is not None:
        data = data[: f.prec]
    prefix = ("0X" if verb == "X" else "0x") if f.sharp else ""
    pairs = [format(b, "02X" if verb == "X" else "02x") for b in data]
    if f.space:
        text = " ".join(prefix + pair for pair in pairs)
    else:
        text = prefix + "".join(pairs) if pairs else ""
    return _pad(text, f)


def _fmt_complex(c: complex, verb: str, f: _Flags) -> str:
    inner = _Flags(plus=f.plus, space=f.space, prec=f.prec)
    real = _fmt_float(c.real, verb, inner)
    inner.plus = True
    imag = _fmt_float(c.imag, verb, inner)
    return _pad(f"({real}{imag}i)", _Flags(minus=f.minus, wid=f.wid))


def _stringer(value: Any, verb: str, f: _Flags) -> str | None:
    if verb not in "vsxXq" or f.sharp_v:
        return None
    method = method_of(value, "String")
    if method is None:
        return None
    try:
        text = method()
    except Exception as exc:
        return f"%!{verb}(PANIC=String method: {exc})"
    return _fmt_string(str(text), verb, f)


def _print(value: Any, verb: str, f: _Flags, depth: int) -> str:
    """Format one value like Go's ``pp.printArg``/``printValue``."""
    if value is None or value is NO_VALUE:
        if depth > 0 or verb == "v":
            return "<nil>" if depth > 0 else _pad("<nil>", f)
        return _bad_verb(None, verb, f)
    if isinstance(value, bool):
        return _pad("true" if value else "false", f) if verb in "vt" else _bad_verb(value, verb, f)
    if isinstance(value, int):
        if verb in "vdbcoOqxXU":
            return _fmt_integer(value, verb, f)
        return _bad_verb(value, verb, f)
    if isinstance(value, float):
        if verb in "vbeEfFgGxX":
            return _fmt_float(value, verb, f)
        return _bad_verb(value, verb, f)
    if isinstance(value, complex):
        return _fmt_complex(value, verb, f) if verb in "veEfFgG" else _bad_verb(value, verb, f)
    if isinstance(value, str):
        return _fmt_string(value, verb, f) if verb in "vsqxX" else _bad_verb(value, verb, f)
    if isinstance(value, (bytes, bytearray)):
        if verb in "sqxX":
            return _fmt_string(bytes(value).decode("utf-8", "replace"), verb, f)
        return "[" + " ".join(_print(b, verb, f, depth + 1) for b in value) + "]"
    text = _stringer(value, verb, f)
    if text is not None:
        return text
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(_print(v, verb, f, depth + 1) for v in value) + "]"
    if isinstance(value, Mapping):
        parts = (
            _print(k, verb, f, depth + 1) + ":" + _print(v, verb, f, depth + 1)
            for k, v in sorted_items(value)
        )
        return "map[" + " ".join(parts) + "]"
    if callable(value):
        return _pad(f"0x{id(value):x}", f) if verb in "vp" else _bad_verb(value, verb, f)
    fields = []
    for name, item, _ in struct_fields(value):
        rendered = _print(item, verb, f, depth + 1)
        fields.append(f"{name}:{rendered}" if f.plus_v else rendered)
    return "{" + " ".join(fields) + "}"


def format_value(value: Any) -> str:
    """``fmt.Sprint(value)`` for one value (``%v``)."""
    if type(value) is str:
        return value
    return _print(value, "v", _PLAIN, 0)


def sprint(args: list[Any]) -> str:
    """Go's ``fmt.Sprint``: spaces between operands when neither side is a string."""
    out: list[str] = []
    prev_string = False
    for i, arg in enumerate(args):
        is_string = isinstance(arg, str)
        if i > 0 and not is_string and not prev_string:
            out.append(" ")
        out.append(_print(arg, "v", _PLAIN, 0))
        prev_string = is_string
    return "".join(out)


def sprintln(args: list[Any]) -> str:
    """Go's ``fmt.Sprintln``: operands separated by spaces, newline appended."""
    return " ".join(_print(arg, "v", _PLAIN, 0) for arg in args) + "\n"


def _parse_num(fmt: str, i: int) -> tuple[int | None, int]:
    start = i
    while i < len(fmt) and fmt[i].isdigit() and fmt[i].isascii():
        i += 1
    return (int(fmt[start:i]) if i > start else None), i


class _Printf:
    def __init__(self, fmt: str, args: list[Any]) -> None:
        self.fmt = fmt
        self.args = args
        self.arg_num = 0
        self.reordered = False
        self.good_arg_num = True

    def arg_index(self, i: int) -> tuple[int, bool]:
        """Parse an optional ``[n]``; returns the new position and whether one was found."""
        fmt = self.fmt
        if i >= len(fmt) or fmt[i] != "[":
            return i, False
        self.reordered = True
        close = fmt.find("]", i + 1)
        index = fmt[i + 1 : close] if close > 0 else ""
        if close < 0 or not index.isdigit() or not 1 <= int(index) <= len(self.args):
            self.good_arg_num = False
            return (close + 1 if close > 0 else len(fmt)), True
        self.arg_num = int(index) - 1
        return close + 1, True

    def int_arg(self) -> int | None:
        if self.arg_num >= len(self.args):
            return None
        value = self.args[self.arg_num]
        self.arg_num += 1
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def run(self) -> str:
        fmt, out, i, end = self.fmt, [], 0, len(self.fmt)
        while i < end:
            pct = fmt.find("%", i)
            if pct < 0:
                out.append(fmt[i:])
                break
            out.append(fmt[i:pct])
            i = pct + 1
            f = _Flags()
            self.good_arg_num = True
            while i < end and fmt[i] in "#0+- ":
                c = fmt[i]
                f.sharp |= c == "#"
                f.plus |= c == "+"
                f.space |= c == " "
                if c == "0":
                    f.zero = not f.minus
                if c == "-":
                    f.minus, f.zero = True, False
                i += 1
            i, after_index = self.arg_index(i)
            if i < end and fmt[i] == "*":
                i += 1
                f.wid = self.int_arg()
                if f.wid is None:
                    out.append("%!(BADWIDTH)")
                elif f.wid < 0:
                    f.wid, f.minus, f.zero = -f.wid, True, False
                after_index = False
            else:
                f.wid, i = _parse_num(fmt, i)
                if after_index and f.wid is not None:
                    self.good_arg_num = False
            if i < end and fmt[i] == ".":
                i += 1
                if after_index:
                    self.good_arg_num = False
                i, after_index = self.arg_index(i)
                if i < end and fmt[i] == "*":
                    i += 1
                    f.prec = self.int_arg()
                    if f.prec is not None and f.prec < 0:
                        f.prec = None
                    if f.prec is None:
                        out.append("%!(BADPREC)")
                    after_index = False
                else:
                    f.prec, i = _parse_num(fmt, i)
                    f.prec = f.prec or 0
            if not after_index:
                i, after_index = self.arg_index(i)
            if i >= end:
                out.append("%!(NOVERB)")
                break
            verb = fmt[i]
            i += 1
            if verb == "%":
                out.append("%")
            elif not self.good_arg_num:
                out.append(f"%!{verb}(BADINDEX)")
            elif self.arg_num >= len(self.args):
                out.append(f"%!{verb}(MISSING)")
            else:
                arg = self.args[self.arg_num]
                self.arg_num += 1
                if verb == "v":
                    f.sharp_v, f.sharp, f.plus_v, f.plus = f.sharp, False, f.plus, False
                if verb == "T":
                    out.append(_pad(type_name(arg), f))
                else:
                    out.append(_print(arg, verb, f, 0))
        if not self.reordered and self.arg_num < len(self.args):
            extra = [
                "<nil>" if a is None else f"{type_name(a)}={_print(a, 'v', _PLAIN, 0)}"
                for a in self.args[self.arg_num :]
            ]
            out.append("%!(EXTRA " + ", ".join(extra) + ")")
        return "".join(out)


def sprintf(fmt: str, args: list[Any]) -> str:
    """Go's ``fmt.Sprintf``."""
    if "%" not in fmt and not args:
        return fmt
    return _Printf(fmt, args).run()
