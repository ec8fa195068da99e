"""What Triage can tell about who wrote a comment: a display name as readers see it.

Names are free text, so "Bob", "Bob\u200b" (a zero-width space) and "Bоb" (a Cyrillic о) look
alike to a reader; rate limits count them as one author. Pure, no I/O at import: the
confusables table (Unicode's confusables.txt, as the confusable-homoglyphs package ships it)
is loaded on first use.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

# Characters that show nothing, for a regex class: C0/C1 controls, format characters (Cf, as
# Unicode 14 lists them: soft hyphen, zero-width, bidi, tags…) and blank letters. With \s, what
# a name made only of them is made of; the API's published schema uses the same class.
INVISIBLE = ("\x00-\x1f\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2"
             "\u115f\u1160\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\u2800"
             "\u3164\ufeff\ufff9-\ufffb\uffa0\U000110bd\U000110cd\U00013430-\U00013438"
             "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f")
_SHOWS_SOMETHING = re.compile(f"[^\\s{INVISIBLE}]")

# Blank-looking letters that are not format characters: Hangul fillers, the Braille blank.
_BLANKS = {"\u115f", "\u1160", "\u3164", "\uffa0", "\u2800"}
# Dropped: marks, format characters (zero-width, bidi, soft hyphen), controls, unassigned.
_DROPPED = {"Mn", "Me", "Cf", "Cc", "Cn", "Co", "Cs"}


@cache
def _table() -> dict[str, str]:
    from confusable_homoglyphs.confusables import confusables_data

    table: dict[str, str] = {}
    for ch, entries in confusables_data.items():
        if len(ch) != 1 or ch.isascii():
            continue
        ascii_alnum = [e["c"] for e in entries if len(e["c"]) == 1 and e["c"].isascii() and e["c"].isalnum()]
        if ascii_alnum:
            table[ch] = ascii_alnum[0].casefold()
    return table


def display_key(name: str) -> str:
    """The name as a reader would take it: NFKC, marks and invisible characters dropped,
    blanks and spaces removed, case folded, look-alike letters folded to their Latin twins. Empty when
    the name shows nothing."""
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", name))
    kept = []
    for ch in text:
        if ch in _BLANKS or ch.isspace():
            kept.append(" ")
        elif unicodedata.category(ch) not in _DROPPED:
            kept.append(ch)
    # Spacing is not identity: "B o b" and "Bob" are one name.
    folded = "".join("".join(kept).split()).casefold()
    table = _table()
    return "".join(table.get(ch, ch) for ch in folded)


def shows_nothing(text: str) -> bool:
    """True when the text has no character a reader could see (only spaces, controls, format
    characters and blanks)."""
    return _SHOWS_SOMETHING.search(text) is None
