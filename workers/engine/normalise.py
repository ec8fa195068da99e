"""Turn what a commenter typed into one folded, lower-case form that filters match against.

Every character of the normalised form remembers the index of the original character it came
from (`Text.offsets`), so spans found on the folded form highlight the original text.

Passes, in order: HTML entities and line-break tags; Unicode compatibility folding (full-width,
mathematical and enclosed letters), diacritics dropped; zero-width, bidi and control characters
removed; confusable letters (Cyrillic/Greek look-alikes) folded in words that mix scripts;
lower-case; leetspeak inside words (k3tamine, sh1t, sh!t); spaced or dotted letters joined
(f u c k, b.u.y); obfuscated links and contacts ("shop dot com", "orders at x dot com", digits
written as words).
"""

from __future__ import annotations

import html
import re
import unicodedata
from functools import lru_cache
from pathlib import Path

from workers.engine.filters.base import Text
from workers.engine.patterns import EMAILISH as _EMAILISH

NORMALISER_VERSION = "1"

# Characters that carry no visible text but are used to split words past filters.
_INVISIBLE = {0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x00AD, 0x180E, 0x034F, 0x061C}
_INVISIBLE.update(range(0x202A, 0x202F))  # bidi embeddings/overrides
_INVISIBLE.update(range(0x2066, 0x206A))  # bidi isolates
_INVISIBLE.update(range(0xFE00, 0xFE10))  # variation selectors
# Characters drawn as nothing that fill the place of a letter: read as a space between letters,
# so "k\u3164i\u3164l\u3164l" becomes spaced letters, which are joined below.
_BLANK = "\x1f"  # a blank's place holder until it is known to split letters or words
_BLANKS = {0x3164, 0xFFA0, 0x115F, 0x1160, 0x2800, 0x2028, 0x2029}

# Look-alike letters the Unicode data does not fold to a Latin letter but readers take for one
# (Greek epsilon, tau and kappa fold to other non-Latin look-alikes there).
_EXTRA_CONFUSABLES = {
    "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "τ": "t", "χ": "x", "β": "b", "н": "h",
    "м": "m", "т": "t", "в": "b", "к": "k", "ё": "e", "ї": "i", "ꓲ": "i", "ս": "u", "օ": "o",
}
CONFUSABLES_FILE = Path(__file__).parent / "filters" / "data" / "unicode_confusables.txt"


@lru_cache(maxsize=1)
def latin_lookalikes() -> dict[str, str]:
    """Non-ASCII letter -> the Latin letter(s) it is drawn like, lower case.

    From the Unicode confusables data (UTS #39, the version named in the file's header), kept
    where a letter maps to ASCII letters or digits, plus _EXTRA_CONFUSABLES.
    """
    raw: dict[str, str] = {}
    with open(CONFUSABLES_FILE, encoding="utf-8-sig") as f:
        for line in f:
            fields = line.split("#", 1)[0].split(";")
            if len(fields) < 2 or not fields[0].strip():
                continue
            src = "".join(chr(int(h, 16)) for h in fields[0].split())
            raw[src] = "".join(chr(int(h, 16)) for h in fields[1].split())
    out: dict[str, str] = {}
    for src, tgt in raw.items():
        for _ in range(3):  # a few prototypes map on again (to a Latin letter at last)
            if tgt.isascii() or tgt not in raw:
                break
            tgt = raw[tgt]
        if len(src) != 1 or src.isascii() or not src.isalpha() or not tgt.isascii() or not tgt.isalnum():
            continue
        for s_ in {src, src.lower()}:
            if len(s_) == 1 and not s_.isascii():
                out.setdefault(s_, tgt.lower())
    out.update(_EXTRA_CONFUSABLES)
    return out


# Letters that only ever stand in for Latin ones (small capitals, phonetic and Cherokee look-alikes);
# folded wherever they occur.
_ALWAYS_LATIN = {
    "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ꜰ": "f", "ɢ": "g", "ʜ": "h", "ɪ": "i",
    "ᴊ": "j", "ᴋ": "k", "ʟ": "l", "ᴍ": "m", "ɴ": "n", "ᴏ": "o", "ᴘ": "p", "ʀ": "r", "ꜱ": "s",
    "ᴛ": "t", "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ʏ": "y", "ᴢ": "z", "ɑ": "a", "ɾ": "r", "ɦ": "h",
    "ҽ": "e", "ѡ": "w", "ɩ": "i", "ʋ": "v", "ꮪ": "s", "Ꮪ": "s", "Ꭺ": "a", "Ꭼ": "e", "Ꮋ": "h",
    "Ꭻ": "j", "Ꮶ": "k", "Ꮮ": "l", "Ꮇ": "m", "Ꮲ": "p", "Ꭱ": "r", "Ꭲ": "t", "Ꮩ": "v", "Ꮃ": "w",
    "Ꮓ": "z", "Ꮯ": "c", "Ꮐ": "g", "Ꭰ": "d", "Ꭵ": "i", "Ӏ": "l", "ǀ": "l",
}
# Leetspeak inside a word that also has letters on both sides of the symbol.
_LEET = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i",
         "8": "b", "9": "g"}

_NUMBER_WORDS = {
    "zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9",
    # Spanish, Portuguese, Italian, French, German (after folding: "três" is "tres")
    "cero": "0", "uno": "1", "dos": "2", "tres": "3", "cuatro": "4", "cinco": "5", "seis": "6",
    "siete": "7", "ocho": "8", "nueve": "9", "um": "1", "dois": "2", "quatro": "4", "sete": "7",
    "oito": "8", "nove": "9", "due": "2", "tre": "3", "quattro": "4", "sei": "6", "sette": "7",
    "otto": "8", "cinque": "5", "un": "1", "deux": "2", "trois": "3", "quatre": "4", "cinq": "5", "sept": "7",
    "huit": "8", "neuf": "9", "null": "0", "eins": "1", "zwei": "2", "zwo": "2", "drei": "3",
    "vier": "4", "funf": "5", "fuenf": "5", "sechs": "6", "sieben": "7", "acht": "8", "neun": "9",
}


def _enclosed_letter(cp: int) -> str | None:
    """Squared/circled capital letters that NFKC leaves alone (🅺, 🄺, 🅚)."""
    for base in (0x1F130, 0x1F150, 0x1F170):
        if base <= cp < base + 26:
            return chr(ord("a") + cp - base)
    return None


@lru_cache(maxsize=8192)
def _fold_char(ch: str) -> str:
    """NFKD-fold one non-ASCII character, drop combining marks and invisible characters."""
    cp = ord(ch)
    if cp in _INVISIBLE:
        return ""
    if cp in _BLANKS:
        return _BLANK
    cat = unicodedata.category(ch)
    if cat in ("Cf", "Mn", "Me"):
        return ""
    if cat == "Cc":
        return " " if ch in "\n\r\t\v\f" else ""
    if cat == "Zs":
        return " "
    if ch in _ALWAYS_LATIN:
        return _ALWAYS_LATIN[ch]
    enc = _enclosed_letter(cp)
    if enc:
        return enc
    decomposed = unicodedata.normalize("NFKD", ch)
    return "".join(c for c in decomposed if unicodedata.category(c) not in ("Mn", "Me"))


_ENTITY_OR_BR = re.compile(r"&(?:#\d{1,7}|#x[0-9a-fA-F]{1,6}|[a-zA-Z]{2,10});|<br\s*/?>", re.I)


def _pass_html(chars: list[str], idx: list[int], original: str) -> tuple[list[str], list[int]]:
    """Decode HTML entities and turn <br> tags into spaces (YouTube exports carry both)."""
    out_c: list[str] = []
    out_i: list[int] = []
    pos = 0
    for m in _ENTITY_OR_BR.finditer(original):
        for k in range(pos, m.start()):
            out_c.append(original[k])
            out_i.append(k)
        token = m.group(0)
        repl = " " if token[0] == "<" else html.unescape(token)
        for c in repl:
            out_c.append(c)
            out_i.append(m.start())
        pos = m.end()
    for k in range(pos, len(original)):
        out_c.append(original[k])
        out_i.append(k)
    return out_c, out_i


def _sub(pattern: re.Pattern[str], repl, s: str, idx: list[int]) -> tuple[str, list[int]]:
    """re.sub that keeps the offsets map: replaced text maps to the matched original range."""
    out: list[str] = []
    out_i: list[int] = []
    pos = 0
    changed = False
    for m in pattern.finditer(s):
        new = repl(m) if callable(repl) else m.expand(repl)
        if new == m.group(0):
            continue
        changed = True
        out.append(s[pos:m.start()])
        out_i.extend(idx[pos:m.start()])
        a, b = m.start(), m.end()
        if len(new) == b - a:
            out_i.extend(idx[a:b])
        elif len(new) < b - a and _subsequence(new, s, a, b, idx, out_i):
            pass
        else:
            for k in range(len(new)):
                # spread the new characters over the matched range, first to last
                src = a + min(b - a - 1, (k * (b - a)) // max(1, len(new)))
                out_i.append(idx[src] if b > a else idx[a] if a < len(idx) else idx[-1])
        out.append(new)
        pos = b
    if not changed:
        return s, idx
    out.append(s[pos:])
    out_i.extend(idx[pos:])
    return "".join(out), out_i


def _subsequence(new: str, s: str, a: int, b: int, idx: list[int], out_i: list[int]) -> bool:
    """When `new` only drops characters of s[a:b] (joined letters), map each kept one exactly."""
    picked: list[int] = []
    j = a
    for c in new:
        while j < b and s[j] != c:
            j += 1
        if j >= b:
            return False
        picked.append(idx[j])
        j += 1
    out_i.extend(picked)
    return True


_LETTER = r"[^\W\d_]"
_WORD_WITH_LEET = re.compile(r"(?<![\w@$!])[\w@$!]*[a-z][0-9@$!]+[a-z][\w@$!]*")
# single letters separated by one space or one dot/dash/underscore, at least three of them
_SPACED = re.compile(r"(?<![\w/])(?:[a-z0-9][ .\-_*]){2,}[a-z0-9](?![a-z0-9])")
_SPACED_PAIRS = re.compile(r"(?<![\w])(?:[a-z0-9] ){1,}[a-z0-9](?![\w])")
_DOT_WORD = re.compile(r"\s*(?:\(dot\)|\[dot\]|\{dot\}|\bdot\b|\(\.\)|\[\.\])\s*(?=[a-z0-9])")
# "name@ gmail. com": an address split by spaces after the @ or the dot
_SPLIT_AT = re.compile(r"(?<=[a-z0-9])@\s+(?=[a-z0-9])")
_SPLIT_TLD = re.compile(r"(@[a-z0-9-]{2,30})\.\s+((?:com|net|org|co|ru|info|io)\b)")
_SPACED_DOT = re.compile(r"(?<=[a-z0-9]) \. (?=[a-z0-9])|(?<=[a-z0-9]) \.(?=(?:com|net|org|info|biz|fr|de|es|it|ru|"
                         r"co|uk|io|shop|store|top|xyz|online|site|club|pro)(?![\w.]))")
# "name at gmail dot com": a plain "at" before a mail provider's domain is an address
_AT_MAIL = re.compile(r"(?<=[a-z0-9_])\s+at\s+(?=(?:gmail|googlemail|yahoo|ymail|hotmail|outlook|live|msn|aol|icloud|"
                      r"proton|protonmail|gmx|yandex|mail|web)\.[a-z]{2,}(?![\w@]))")
_AT_WORD = re.compile(r"(?<=[a-z0-9])\s*(?:\(at\)|\[at\]|\{at\}|\bat\b)\s*(?=[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.[a-z]{2,}(?![\w@.]))")  # noqa: E501 - a regex reads best whole
_NUMBER_RUN = re.compile(
    r"\b(?:(?:" + "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True)) + r")\b[\s,-]*){5,}", re.I)
# Cheap tests run before the passes above; each only lets through texts the pass could change.
_PHONE_WORD = re.compile(r"\b(?:five|zero|nine|seven|eight|cero|cinco|nueve|siete|ocho|nove|sette|"
                         r"otto|cinque|cinq|neuf|huit|sept|null|sieben|acht|neun|drei|zwei|tres|tre)\b")
_LEET_HINT = re.compile(r"[a-z][0-9@$!][a-z0-9]|[0-9@$!][a-z][a-z]")
_SPACED_HINT = re.compile(r"(?<!\w)[a-z0-9][ .\-_*][a-z0-9][ .\-_*][a-z0-9](?!\w)")
_LETTER_SPACE = re.compile(r"(?<!\w)\w (?=\w(?!\w))")
_WIDE_GAP = re.compile(r"(?<=\S) {2,}(?=\S)")
_NOT_ASCII = re.compile(r"[^\x00-\x7f]")


def _leet(m: re.Match[str]) -> str:
    word = m.group(0)
    if _EMAILISH.match(word) or re.search(r"\d{3}", word):
        return word
    # digits anywhere in a word with a letter-digit-letter pattern; symbols only between letters
    word = re.sub(r"(?<=[a-z])[@$!]+(?=[a-z])", lambda s: "".join(_LEET[c] for c in s.group(0)), word)
    return "".join(_LEET.get(c, c) if c.isdigit() else c for c in word)


def _join_spaced(m: re.Match[str]) -> str:
    run = m.group(0)
    if " " in run and re.search(r"[.\-_*]", run):
        # "k.i.l.l m.y.s.e.l.f": the dots join letters, the spaces still part words
        return " ".join(re.sub(r"[.\-_*]", "", w) for w in run.split(" "))
    return re.sub(r"[ .\-_*]", "", run)


_BLANK_RUN = re.compile(r"\w+(?:\x1f+\w+)+")


def _join_blanks(m: re.Match[str]) -> str:
    """Blanks between single letters hide a word; between words they are spaces."""
    pieces = [p for p in m.group(0).split(_BLANK) if p]
    return ("" if sum(map(len, pieces)) <= 2 * len(pieces) else " ").join(pieces)


def _numbers(m: re.Match[str]) -> str:
    words = re.findall(r"[a-z]+", m.group(0).lower())
    digits = "".join(_NUMBER_WORDS[w] for w in words)
    tail = re.search(r"[\s,-]*$", m.group(0)).group(0)  # type: ignore[union-attr]
    return digits + tail


@lru_cache(maxsize=512)  # a worker's batch normalises each body for its vector, then classifies it
def normalise(text: str) -> Text:
    """Fold `text` for matching and keep a map from each folded character to the original."""
    original = text
    if "&" in text or "<" in text:
        chars, idx = _pass_html([], [], text)
        joined = "".join(chars)
    else:
        joined, idx = text, list(range(len(text)))

    if not text.isascii():
        # each character folds to zero, one or more; every folded one keeps its source index
        folded = [c if c.isascii() else _fold_char(c) for c in joined]
        idx = [i for f, i in zip(folded, idx) for _ in f]
        s = "".join(folded)
        # (confusables are all non-ASCII, and so is anything lower-casing to one)
        look = latin_lookalikes()
        s_low = s.lower()
        foreign = set(_NOT_ASCII.findall(s_low))
        if any(c in look for c in foreign):
            # Genuine text in another script keeps its letters (only words that mix in Latin ones
            # are folded); text whose every foreign letter has a Latin look-alike is folded whole.
            letters = [c for c in s_low if c.isalpha()]
            distinct = sum(1 for c in letters if not c.isascii() and c not in look)
            fold_all = distinct * 10 <= len(letters)

            def fold_word(m: re.Match[str]) -> str:
                w = m.group(0)
                if fold_all or re.search(r"[a-z]", w):
                    return "".join(look.get(c, c) for c in w)
                return w

            # a web address or handle counts as one word: "spravato-ѕһор.com" mixes scripts
            s, idx = _sub(re.compile(r"\w+(?:[.\-/@]\w+)*"), fold_word, s_low, idx)
        else:
            s = s_low
        if _BLANK in s:
            s, idx = _sub(_BLANK_RUN, _join_blanks, s, idx)
            s, idx = _sub(re.compile(_BLANK + "+"), " ", s, idx)
        if len(s) != len(idx):  # lower() can change length for a few characters (İ)
            s = "".join(ch if len(ch.lower()) == 1 else ch for ch in s)
            idx = (idx + [idx[-1]] * len(s))[: len(s)] if idx else []
    else:
        s = joined.lower()

    # digits written as words in a phone number
    if _PHONE_WORD.search(s):
        s, idx = _sub(_NUMBER_RUN, _numbers, s, idx)
    if _LEET_HINT.search(s):
        s, idx = _sub(_WORD_WITH_LEET, _leet, s, idx)
    if "  " in s and s.count("  ") >= 3 and len(_LETTER_SPACE.findall(s)) >= 2:
        # text written letter by letter, words separated by wider gaps: "D M  m e  f o r  K"
        s, idx = _sub(_SPACED_PAIRS, _join_spaced, s, idx)
        s, idx = _sub(_WIDE_GAP, " ", s, idx)
    if _SPACED_HINT.search(s):
        joined_s, idx = _sub(_SPACED, _join_spaced, s, idx)
        if joined_s != s and "  " in joined_s:  # gaps that parted spaced-out words
            joined_s, idx = _sub(_WIDE_GAP, " ", joined_s, idx)
        s = joined_s
    if "@ " in s:
        s, idx = _sub(_SPLIT_AT, "@", s, idx)
        s, idx = _sub(_SPLIT_TLD, r"\1.\2", s, idx)
    if "dot" in s or "." in s:
        if " ." in s:  # both forms of _SPACED_DOT have one
            s, idx = _sub(_SPACED_DOT, ".", s, idx)
        if "dot" in s or "(.)" in s or "[.]" in s:  # every form of _DOT_WORD has one
            s, idx = _sub(_DOT_WORD, ".", s, idx)
        if "(at)" in s or "[at]" in s or "{at}" in s or " AT " in original:
            s, idx = _sub(_AT_WORD, "@", s, idx)
        elif " at " in s and ("mail" in s or "yahoo" in s or "outlook" in s or "live." in s or "aol." in s
                              or "icloud" in s or "proton" in s or "gmx." in s or "yandex" in s or "msn." in s
                              or "web." in s):
            s, idx = _sub(_AT_MAIL, "@", s, idx)
    idx = list(idx)
    idx.append(len(original))
    return Text(original=original, normalised=s, offsets=tuple(idx))
