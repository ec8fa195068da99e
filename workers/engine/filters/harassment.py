"""harassment: insults and threats aimed at people (commenters, the author, people in the
article, groups), slurs, intimidation and doxxing.

Rules live in data/harassment_rules.txt; slots in data/harassment_slots.txt and the slur list
in data/harassment_slurs_slots.txt; context cues in data/harassment_context.txt. A question is
still an insult ("are you an idiot?"), so questions are only mildly discounted; reported speech
("someone called me a junkie") and negation ("you're not an idiot") are discounted more.
"""

from __future__ import annotations

from pathlib import Path

from .base import Context, Finding, Text
from .phrases import PhraseFilter


class HarassmentFilter(PhraseFilter):
    """Insults, group contempt, slurs, threats and doxxing aimed at people."""

    name = "harassment"
    version = "1.0"
    category = "harassment"
    prefix = "harassment"
    question_factor = 0.8
    neg_factor = 0.2
    quote_factor = 0.4
    frame_factor = 0.25

    def __init__(self, data_dir: Path | None = None) -> None:
        super().__init__(data_dir)

    def check(self, text: Text, context: Context) -> list[Finding]:
        """Findings for one comment (at most one, with every matched span)."""
        return self.combine(text, self.scored_hits(text.normalised))
