"""Context around a hit: its sentence, whether it is a question, the clause before it, quotes."""

from __future__ import annotations

import re

# --- context around a hit -------------------------------------------------------------------

_SENT_END = re.compile(r"[.!?]+(?=\s|$|[\"'”’)])|[\n;]")
_CLAUSE_BREAK = re.compile(r"[,:;()\-–—]| but | though | although | however | yet ")
_WORD = re.compile(r"[\w'’*]+")


def sentence_bounds(s: str, start: int, end: int) -> tuple[int, int]:
    """[a, b) of the sentence holding s[start:end]; b includes the closing punctuation."""
    a = 0
    for m in _SENT_END.finditer(s, 0, start):
        a = m.end()
    after = _SENT_END.search(s, end)
    b = after.end() if after else len(s)
    return a, b


def is_question(s: str, start: int, end: int) -> bool:
    """The sentence holding the hit ends with a question mark (or opens with ¿)."""
    a, b = sentence_bounds(s, start, end)
    sent = s[a:b].rstrip(" \"'”’)")
    return sent.endswith("?") or sent.lstrip().startswith("¿")


def clause_before(s: str, start: int) -> str:
    """Text from the start of the clause up to the hit."""
    a, _ = sentence_bounds(s, start, start)
    head = s[a:start]
    last = None
    for m in _CLAUSE_BREAK.finditer(head):
        last = m
    return head[last.end():] if last else head


def words_before(s: str, start: int, n: int) -> list[str]:
    """Up to n words of the same clause just before the hit."""
    return _WORD.findall(clause_before(s, start))[-n:]


_OPEN_SINGLE = re.compile(r"(?:^|(?<=[\s(\[:]))['‘]")
_CLOSE_SINGLE = re.compile(r"['’](?=[\s.,;:!?)\]]|$)")


def in_quotes(s: str, start: int, end: int) -> bool:
    """The hit sits inside a quoted stretch ("…", “…”, '…')."""
    before = s[:start]
    if before.count('"') % 2 == 1:
        return True
    if before.count("“") > before.count("”"):
        return True
    # Single quotes double as apostrophes: an opening one must follow a space or bracket.
    opens = [m.start() for m in _OPEN_SINGLE.finditer(s, 0, start)]
    if opens:
        o = opens[-1]
        closes = [m.start() for m in _CLOSE_SINGLE.finditer(s, o + 1) if m.start() > o]
        if closes and closes[0] >= end - 1:
            return True
    return False
