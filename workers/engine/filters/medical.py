"""unsafe_medical: claims and advice that can hurt a reader of a health article.

Rules live in data/medical_rules.txt (phrase patterns with slots from data/medical_slots.txt);
context cues (negation, warning frames, clinical setting) in data/medical_context.txt. On top
of the rules, a co-occurrence check looks for a dangerous substance and the treatment in the
same sentence, and weighs it by whether the sentence approves of or warns against the mix.
"""

from __future__ import annotations

import re
from pathlib import Path

from .base import Context, Finding, Text
from .context import is_question, sentence_bounds
from .gates import LiteralGates, distinct_words
from .phrases import PhraseFilter, Scored
from .rule_language import Hit, Rule

_SENT = re.compile(r"[^.!?\n]+[.!?]*")


class MedicalFilter(PhraseFilter):
    """Guaranteed cures, stop-your-meds advice, DIY dosing, risky mixes, no-risk claims."""

    name = "unsafe_medical"
    version = "1.0"
    category = "unsafe_medical"
    prefix = "medical"
    neg_window = 5  # "nobody asked me to stop my sertraline"

    def __init__(self, data_dir: Path | None = None) -> None:
        super().__init__(data_dir)
        s = self.slots
        self._danger = re.compile(r"\b" + s["DANGER"])
        # most comments name no dangerous substance at all: words it cannot match without
        self._danger_gate = LiteralGates([self._danger], max_cost=10.0)
        self._ket = re.compile(r"\b(?:" + s["KET"] + r"|sessions?\b|treatment days?\b|"
                               r"(?:your|my|the) dose\b|the trip\b|after the spray\b)")
        self._mix_it = re.compile(r"\b(?:mix|mixing|combine|combining|take|taking|stack|stacking) "
                                  r"(?:(?:it|this|them) (?:with|alongside|and)\b|"
                                  r"(?:my |the |a |some |your |an? extra )?[\w-]+ (?:with|alongside) (?:it|this)\b)")
        self._approve = re.compile(r"\b" + s["APPROVE"])
        self._imperative = re.compile(r"(?:^|[,;:]|\band\b|\bthen\b)\W*(?:just |also |then |so )?"
                                      r"(?:take|combine|mix|add|try|have|pair|throw in|stack|use)\b")
        # A condition after these ("as long as you don't drive") is not a warning about the mix.
        self._proviso = re.compile(r"\b(?:as long as|so long as|provided|unless|just don't|only if)\b")
        self._not_warning = re.compile(r"\b(?:so (?:that )?(?:you|i|it|u) (?:don't|do not|won't|dont|wont|never)|"
                                       r"ignore (?:the |all the |any |those )?warn\w*|"
                                       r"(?:never|didn't|doesn't|won't) (?:hurt|harm)\w*)")
        self._warn = re.compile(r"\b(?:don't|do not|never|avoid|dangerous|danger|risk|risky|"
                                r"warn\w*|shouldn't|should not|sign a form|no alcohol|careful|"
                                r"interact\w*|sedation|overdose|wouldn't|isn't|not an?)\b")

    def _combos(self, s: str) -> list[Scored]:
        out: list[Scored] = []
        gate = self._danger_gate
        if not gate.allows(0, gate.met(distinct_words(s))):
            return out  # no sentence can name a dangerous substance
        for m in _SENT.finditer(s):
            sent = m.group(0)
            d = self._danger.search(sent)
            if not d:
                continue
            k = self._ket.search(sent) or self._mix_it.search(sent)
            nxt = s[m.end(): m.end() + 120]
            if not k:
                continue
            a = m.start() + min(d.start(), k.start())
            b = m.start() + max(d.end(), k.end())
            score, why = 0.35, ""
            if self._approve.search(sent) or self._approve.search(nxt.split(".")[0]):
                score, why = 0.8, "approved"
            elif self._imperative.search(sent):
                score, why = 0.75, "imperative"
            p = self._proviso.search(sent)
            # "so you don't feel it", "ignore the warnings": not a warning against the mix
            checked = self._not_warning.sub(" ", sent[: p.start()] if p else sent)
            if self._warn.search(checked):
                score *= 0.15
                why = "warned against"
            if is_question(s, a, b):
                score *= 0.3
                why = "question"
            out.append(Scored("combo.substance", score, (a, b), why))
        return out

    def check(self, text: Text, context: Context) -> list[Finding]:
        """Findings for one comment (at most one, with every matched span)."""
        s = text.normalised
        scored = self.scored_hits(s) + self._combos(s)
        return self.combine(text, scored)


__all__ = ["MedicalFilter", "Hit", "Rule", "sentence_bounds"]
