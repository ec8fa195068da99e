"""A filter built from rule and slot files (see rule_language for their syntax)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .context import clause_before, in_quotes, is_question, sentence_bounds, words_before
from .gates import LiteralGates, RuleMatcher, distinct_words
from .rule_language import Hit, load_rules, load_slots

# --- a filter built from rule and slot files -----------------------------------------------


@dataclass(slots=True)
class Scored:
    """A hit after context has been weighed."""

    rule_id: str
    score: float
    span: tuple[int, int]  # normalised offsets
    why: str = ""


class PhraseFilter:
    """Rule file + slot files + context cues → one finding per comment (noisy-or of rules).

    Context cues are slots in ``<prefix>_context.txt``; each is optional:

    * ``NEG``: negation words; a hit with one of them in the 3 words before it is discounted.
    * ``FRAME``: reporting/warning frames ("ignore anyone saying", "be wary of") before a hit.
    * ``QUESTION_FRAME``: "asking if", "wondering whether" — treated like a question.
    * ``PAST`` / ``PRESENT``: time markers; a sentence with past markers and no present ones
      discounts hits from rules flagged ``@past``.
    * ``CLINICAL``: a clinician or clinic in charge; discounts rules flagged ``@clinical``.
    * ``HYPERBOLE``: "lol", "haha"; discounts rules flagged ``@hyper``.
    * ``THIRD``: someone else's story ("my son", "a friend"); discounts rules flagged ``@third``.

    Rule flags switch default discounts off: ``@keepneg``, ``@keepq``, ``@keepquote``,
    ``@keepframe``; or on for filters where they are off by default: ``@q``.
    """

    category: str = ""
    prefix: str = ""
    # Multipliers applied when a context cue holds; a filter may override.
    neg_factor = 0.15
    question_factor = 0.3
    quote_factor = 0.3
    frame_factor = 0.2
    past_factor = 0.15
    clinical_factor = 0.3
    hyper_factor = 0.35
    third_factor = 0.3
    question_default = True  # discount questions unless a rule says @keepq
    neg_window = 3  # words before a hit searched for a negation

    def __init__(self, data_dir: Path | None = None) -> None:
        base = data_dir or Path(__file__).with_name("data")
        slot_files = sorted(base.glob(f"{self.prefix}_*slots.txt"))
        ctx_file = base / f"{self.prefix}_context.txt"
        if ctx_file.exists():
            slot_files.append(ctx_file)
        self.slots = load_slots(slot_files)
        self.rules = load_rules(base / f"{self.prefix}_rules.txt", self.slots)
        self.matcher = RuleMatcher(self.rules)
        self._cue: dict[str, re.Pattern[str] | None] = {}
        for name in ("NEG", "FRAME", "QUESTION_FRAME", "PAST", "PRESENT", "CLINICAL",
                     "HYPERBOLE", "THIRD"):
            rx = self.slots.get(name)
            self._cue[name] = re.compile(r"\b" + rx) if rx else None
        # A cue is only ever looked for in parts of the comment (or in its words, for NEG), so
        # a cue whose gate words are missing from the whole comment cannot occur for any hit.
        self._cue_names = [n for n, rx in self._cue.items() if rx is not None]
        self._cue_gate = LiteralGates([self._cue[n] for n in self._cue_names],  # type: ignore[misc]
                                      max_cost=10.0)

    def cue(self, name: str, s: str, absent: frozenset[str] = frozenset()) -> bool:
        """Does the cue slot occur in s (never, if it is among the comment's `absent` cues)."""
        rx = self._cue.get(name)
        return bool(rx and name not in absent and rx.search(s))

    def absent_cues(self, s: str) -> frozenset[str]:
        """Cues that cannot occur anywhere in the comment s."""
        gate = self._cue_gate
        met = gate.met(distinct_words(s))
        return frozenset(n for k, n in enumerate(self._cue_names) if not gate.allows(k, met))

    def weigh(self, s: str, hit: Hit, absent: frozenset[str] = frozenset()) -> Scored:
        """Apply the context discounts to one hit (`absent`: cues known not to occur in s)."""
        r, start, end = hit.rule, hit.start, hit.end
        score, why = r.score, []
        f = r.flags
        if "keepneg" not in f:
            before = " ".join(words_before(s, start, self.neg_window))
            if before and self.cue("NEG", " " + before + " ", absent):
                score *= self.neg_factor
                why.append("negated")
        asks = (self.question_default and "keepq" not in f) or "q" in f
        if asks and (is_question(s, start, end)
                     or self.cue("QUESTION_FRAME", clause_before(s, start), absent)):
            score *= self.question_factor
            why.append("question")
        if "keepquote" not in f and in_quotes(s, start, end):
            score *= self.quote_factor
            why.append("quoted")
        if "keepframe" not in f:
            a, _ = sentence_bounds(s, start, end)
            if self.cue("FRAME", s[a:start], absent):
                score *= self.frame_factor
                why.append("reported")
        if "past" in f:
            a, b = sentence_bounds(s, start, end)
            sent = s[a:b]
            if self.cue("PAST", sent, absent) and not self.cue("PRESENT", sent, absent):
                score *= self.past_factor
                why.append("past")
        if "clinical" in f and self.cue("CLINICAL", s, absent):
            score *= self.clinical_factor
            why.append("clinical")
        if "hyper" in f and self.cue("HYPERBOLE", s, absent):
            score *= self.hyper_factor
            why.append("hyperbole")
        if "third" in f:
            a, b = sentence_bounds(s, start, end)
            if self.cue("THIRD", s[a:b], absent):
                score *= self.third_factor
                why.append("someone else")
        return Scored(r.rule_id, score, (start, end), ",".join(why))

    def scored_hits(self, s: str) -> list[Scored]:
        """Every rule hit with its context-weighed score."""
        hits = list(self.matcher.finditer(s))
        if not hits:
            return []
        absent = self.absent_cues(s)
        return [self.weigh(s, h, absent) for h in hits]

    def combine(self, text: Any, scored: list[Scored], min_score: float = 0.05) -> list[Any]:
        """Best score per rule, noisy-or across rules; one Finding with every span."""
        from .base import Finding, merge_spans

        best: dict[str, Scored] = {}
        spans: list[tuple[int, int]] = []
        for h in scored:
            if h.score < min_score:
                continue
            spans.append(h.span)
            if h.rule_id not in best or h.score > best[h.rule_id].score:
                best[h.rule_id] = h
        if not best:
            return []
        miss = 1.0
        for h in best.values():
            miss *= 1.0 - min(h.score, 0.99)
        score = round(1.0 - miss, 4)
        top = max(best.values(), key=lambda h: h.score)
        orig_spans = tuple(sorted({text.span(a, b) for a, b in merge_spans(spans)}))
        rules = ", ".join(sorted(best, key=lambda k: -best[k].score))
        detail = f"{self.category}: {rules}"
        if top.why:
            detail += f" ({top.why})"
        return [Finding(self.category, score, f"{self.category}.{top.rule_id}", orig_spans,
                        detail[:200])]
