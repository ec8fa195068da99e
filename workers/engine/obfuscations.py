"""Ways people disguise text from filters, each a function str -> str: the robustness check
(`triage eval --robustness`, and its test) requires every one to change no decision."""
from __future__ import annotations

import re
from collections.abc import Callable

_CYRILLIC = str.maketrans({"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "y": "у", "x": "х", "i": "і",
                           "j": "ј", "s": "ѕ", "d": "ԁ", "h": "һ", "A": "А", "E": "Е", "O": "О", "P": "Р",
                           "C": "С", "T": "Т", "H": "Н", "K": "К", "M": "М", "B": "В", "X": "Х"})
_LEET = str.maketrans({"a": "4", "e": "3", "i": "1", "o": "0", "s": "5"})


def _per_letter(text: str, after: str) -> str:
    return "".join(c + after if c.isalpha() else c for c in text)


def _between_letters(text: str, sep: str) -> str:
    return re.sub(r"(?<=[^\W\d_])(?=[^\W\d_])", sep, text)


_LINK = re.compile(r"\S+\.(?:com|net|org|ly|gl|io|co|me|info|biz|example|uk|de|fr|es|it)\S*|https?://\S+|www\.\S+|\S+@\S+")


def _words(text: str, fn: Callable[[str], str]) -> str:
    """fn applied to every word outside links and addresses (a dotted link is no link)."""
    out, pos = [], 0
    for m in _LINK.finditer(text):
        out.append(re.sub(r"[^\W\d_]{2,}", lambda w: fn(w.group(0)), text[pos:m.start()]))
        out.append(m.group(0))
        pos = m.end()
    out.append(re.sub(r"[^\W\d_]{2,}", lambda w: fn(w.group(0)), text[pos:]))
    return "".join(out)


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else "\u3000" if c == " " else c for c in text)


def _math_bold(text: str) -> str:
    out = []
    for c in text:
        if "a" <= c <= "z":
            out.append(chr(0x1D41A + ord(c) - ord("a")))
        elif "A" <= c <= "Z":
            out.append(chr(0x1D400 + ord(c) - ord("A")))
        else:
            out.append(c)
    return "".join(out)


def _alternating_case(text: str) -> str:
    return "".join(c.upper() if i % 2 else c.lower() for i, c in enumerate(text))


OBFUSCATIONS: dict[str, Callable[[str], str]] = {
    "underline marks": lambda t: _per_letter(t, "\u0332"),
    "strike-through marks": lambda t: _per_letter(t, "\u0336"),
    "acute marks": lambda t: _per_letter(t, "\u0301"),
    "enclosing marks": lambda t: _per_letter(t, "\u20dd"),
    "Cyrillic look-alikes": lambda t: t.translate(_CYRILLIC),
    "zero-width between letters": lambda t: _between_letters(t, "\u200b"),
    "Hangul filler between letters": lambda t: _between_letters(t, "\u3164"),
    "Braille blank between letters": lambda t: _between_letters(t, "\u2800"),
    "spaced letters": lambda t: _words(re.sub(r" ", "   ", t), lambda w: " ".join(w)),
    "dotted letters": lambda t: _words(t, lambda w: ".".join(w)),
    "leetspeak": lambda t: _words(t, lambda w: w.translate(_LEET)),
    "full-width": _fullwidth,
    "mathematical bold": _math_bold,
    "alternating case": _alternating_case,
    "upper case": str.upper,
}
