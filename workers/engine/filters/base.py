"""The one small contract every filter shares.

A filter looks at a comment and returns findings; it never decides. Spans are offsets into the
ORIGINAL text (what the commenter typed), so a moderator screen can highlight them even when the
match was made on the normalised form.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

CATEGORIES = ("spam", "profanity", "unsafe_medical", "self_harm", "harassment")


@dataclass(frozen=True, slots=True)
class Finding:
    """One reason a filter has to doubt a comment."""

    category: str  # one of CATEGORIES
    score: float  # 0..1, how sure the filter is
    rule: str  # stable rule or model id, e.g. "spam.link.shortener" or "spam.model@3"
    spans: tuple[tuple[int, int], ...] = ()  # [start, end) offsets into the original text
    detail: str = ""  # short human explanation for moderators

    def to_json(self) -> dict[str, Any]:
        """Plain JSON shape stored with a decision and shown to moderators."""
        return {
            "category": self.category,
            "score": round(self.score, 4),
            "rule": self.rule,
            "spans": [list(s) for s in self.spans],
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class Context:
    """What a filter may know beyond the text; everything optional so filters run offline."""

    author: str | None = None
    article: str | None = None
    # How many times the same (normalised) text was seen recently, any article, any author.
    # The worker fills it from shared storage; classify/eval fill it from the batch itself.
    recent_duplicates: int = 0
    # Author is trusted (enough approved comments, none rejected): learned spam doubts are skipped.
    trusted_author: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class Filter(Protocol):
    """name, version, check(text, context) -> findings."""

    name: str
    version: str

    def check(self, text: Text, context: Context) -> Sequence[Finding]: ...


@dataclass(frozen=True, slots=True)
class Text:
    """The original text with its normalised form and the map back to original offsets."""

    original: str
    normalised: str  # lower-cased, folded form used for matching
    offsets: tuple[int, ...]  # offsets[i] = index in original of normalised[i]; len == len(normalised)+1

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Map a [start, end) span in the normalised text back to the original text."""
        a = self.offsets[start]
        b = self.offsets[end - 1] + 1 if end > start else a
        return (a, max(a, b))


Normaliser = Callable[[str], Text]


def merge_spans(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sort and merge overlapping or touching spans."""
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out
