"""Shared helpers for the content-filter unit tests."""

from __future__ import annotations

from workers.engine.filters.base import Context, Text

try:
    from workers.engine.normalise import normalise
except ImportError:  # the normaliser is optional for these tests

    def normalise(text: str) -> Text:
        """Lower-case only, identity offsets."""
        return Text(text, text.lower(), tuple(range(len(text) + 1)))


def top_score(flt: object, body: str) -> float:
    """Highest score a filter gives a comment."""
    findings = flt.check(normalise(body), Context())  # type: ignore[attr-defined]
    return max((f.score for f in findings), default=0.0)


def findings(flt: object, body: str) -> list:
    """All findings a filter gives a comment."""
    return list(flt.check(normalise(body), Context()))  # type: ignore[attr-defined]
