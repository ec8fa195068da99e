"""Literal gates in front of the rule regexes: they may skip a rule only when it cannot match."""

import json
import re

import pytest

from services.config import ROOT
from workers.engine.filters.gates import LiteralGates, distinct_words, required_substrings
from workers.engine.filters.harassment import HarassmentFilter
from workers.engine.filters.medical import MedicalFilter
from workers.engine.filters.self_harm import SelfHarmFilter
from workers.engine.filters.spam import _rules
from workers.engine.normalise import normalise

DATA = ROOT / "workers" / "engine" / "filters" / "data"


def _clauses(pattern: str) -> list[set[str]]:
    return [set(c) for c in required_substrings(re.compile(pattern), max_clauses=10, max_cost=100)]


def test_literals_are_read_off_the_pattern() -> None:
    assert {"buy "} in _clauses(r"\bbuy (?:now|today)\b")
    assert {"now", "today"} in _clauses(r"\bbuy (?:now|today)\b")
    # optional parts require nothing; a repeat of at least one requires its literal
    assert _clauses(r"(?:foo)?bar") == [{"bar"}]
    assert {"ab"} in _clauses(r"(?:ab)+c")
    assert _clauses(r"x?") == []
    # an alternative without a literal leaves the whole alternation unconstrained
    assert _clauses(r"(?:foo|\w+)") == []
    assert _clauses(r"likes? if") == [{"like"}, {" if"}]


def test_case_insensitive_patterns_get_no_gate() -> None:
    assert required_substrings(re.compile("buy now", re.I)) == []
    assert required_substrings(re.compile("(?i)buy now")) == []
    assert _clauses("(?i:buy) now") == [{" now"}]


def _allows(gates: LiteralGates, i: int, s: str) -> bool:
    return gates.allows(i, gates.met(distinct_words(s)))


def test_gates_allow_only_texts_holding_the_literals() -> None:
    gates = LiteralGates([re.compile(r"\bpoison (?:pills?|tablets)"), re.compile(r"\w+"),
                          re.compile(r"keep up the (?:good|great) work")])
    assert _allows(gates, 0, "these pills are poison tablets")
    assert not _allows(gates, 0, "these pills are fine")
    assert _allows(gates, 1, "anything")  # nothing to read off: always allowed
    # a literal with spaces counts through its longest word, found inside any word
    assert _allows(gates, 2, "keep up the greatest work")
    assert not _allows(gates, 2, "keep up the good job")


def _comments() -> list[str]:
    out = []
    for name in ("corpus/dev.jsonl", "corpus/written.jsonl"):
        for line in (DATA / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                body = json.loads(line)["body"]
                out += [body, body.upper()]
    return [normalise(b).normalised for b in out]


@pytest.mark.parametrize("flt", [MedicalFilter, SelfHarmFilter, HarassmentFilter])
def test_phrase_rule_gates_never_block_a_match(flt: type) -> None:
    matcher = flt().matcher
    for s in _comments():
        for i, rx in enumerate(matcher._compiled):
            if rx.search(s):
                assert _allows(matcher._gates, i, s), (matcher.rules[i].rule_id, s)


def test_spam_rule_gates_never_block_a_match() -> None:
    patterns = [pat for _, _, pat, _, _ in _rules()]
    gates = LiteralGates(patterns)
    for s in _comments():
        for i, rx in enumerate(patterns):
            if rx.search(s):
                assert _allows(gates, i, s), (_rules()[i][0], s)


@pytest.mark.parametrize("flt", [MedicalFilter, SelfHarmFilter, HarassmentFilter])
def test_cues_called_absent_never_occur(flt: type) -> None:
    f = flt()
    for s in _comments():
        words = " " + " ".join(re.findall(r"[\w'’*]+", s)) + " "  # what the negation cue sees
        for name in f.absent_cues(s):
            assert not f._cue[name].search(s) and not f._cue[name].search(words), (name, s)


def test_danger_and_profanity_phrase_gates_never_block_a_match() -> None:
    from workers.engine.filters.profanity import ProfanityFilter

    med, prof = MedicalFilter(), ProfanityFilter()
    for s in _comments():
        met = distinct_words(s)
        if med._danger.search(s):
            assert med._danger_gate.allows(0, med._danger_gate.met(met)), s
        if prof.extra is not None and prof.extra.search(s):
            assert prof._extra_gate.allows(0, prof._extra_gate.met(met)), s
