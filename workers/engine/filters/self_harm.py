"""self_harm: present intent, plans, goodbyes, lethal-dose questions, urging others.

Rules live in data/self_harm_rules.txt with slots in data/self_harm_slots.txt and context cues
in data/self_harm_context.txt. Questions are NOT discounted here (a question about a lethal
amount is the signal); past-tense recovery stories, other people's stories and hyperbole are.
Every finding this filter emits is meant to be held as urgent by the policy.
"""

from __future__ import annotations

from pathlib import Path

from .base import Context, Finding, Text
from .phrases import PhraseFilter


class SelfHarmFilter(PhraseFilter):
    """Suicidal intent, plans, goodbyes, lethal-dose requests, encouragement of self-harm."""

    name = "self_harm"
    version = "1.0"
    category = "self_harm"
    prefix = "self_harm"
    question_default = False
    neg_factor = 0.2
    quote_factor = 0.4
    frame_factor = 0.3
    past_factor = 0.15
    hyper_factor = 0.35
    third_factor = 0.35

    def __init__(self, data_dir: Path | None = None) -> None:
        super().__init__(data_dir)

    def check(self, text: Text, context: Context) -> list[Finding]:
        """Findings for one comment (at most one, with every matched span)."""
        return self.combine(text, self.scored_hits(text.normalised))
