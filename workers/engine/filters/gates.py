"""Literal gates: which rules can match a text at all, decided from the words it holds (shared
by the phrase filters, spam and profanity)."""

from __future__ import annotations

import re
import re._constants as _sre
import re._parser as _sre_parse
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .rule_language import Hit, Rule

_WORD_PIECES = re.compile(r"\w+").findall

# --- substrings a regex cannot match without ---------------------------------------------------
#
# Word-head triggers pick the rules worth trying, but most picked rules still fail: "is" lets
# "{MEDS} is poison" run on every comment with an "is" in it. Running a rule costs several µs
# (`re` tries the pattern at every position); testing whether a literal it cannot match without
# occurs at all costs a fraction of that. The literals are read off the compiled pattern itself
# (its parse tree), so they stay right whatever the rule's syntax, and a rule whose literals are
# all absent cannot match: skipping it changes nothing.


def _literal_cost(lits: frozenset[str]) -> float:
    """Rough share of comments in which one of `lits` occurs (short strings occur everywhere)."""
    return sum(1.0 if len(t) == 1 else 0.4 if len(t) == 2 else 0.15 if len(t) == 3 else
               0.06 if len(t) == 4 else 0.02 for t in lits)


_MAX_LEADING = 256


def _leading(items: Any) -> tuple[set[str], bool] | None:
    """Strings every match of a parsed (sub)pattern starts with, and whether each of them is a
    whole match; None when there would be too many. Alternations multiply out, so "cr(?:ack|
    eep)" gives {"crack", "creep"} where the literal runs alone give only "cr"."""
    acc = {""}
    for op, av in items:
        if op is _sre.LITERAL:
            acc = {a + chr(av) for a in acc}
            continue
        if op is _sre.AT:  # an anchor matches no character
            continue
        if op is _sre.SUBPATTERN and not av[1] & _sre.SRE_FLAG_IGNORECASE:
            alts = [av[3]]
        elif op is _sre.BRANCH:
            alts = av[1]
        else:
            return acc, False  # a class, repeat or lookaround: stop here
        heads: set[str] = set()
        whole = True
        for alt in alts:
            sub = _leading(alt)
            if sub is None:
                return None
            heads |= sub[0]
            whole = whole and sub[1]
        if len(acc) * len(heads) > _MAX_LEADING:
            return None
        acc = {a + h for a in acc for h in heads}
        if not whole:
            return acc, False
    return acc, True


def _required_in(items: Any) -> list[frozenset[str]]:
    """Clauses for a parsed (sub)pattern: every match contains one string of each clause."""
    clauses: list[frozenset[str]] = []
    run: list[str] = []
    run_start = 0

    def flush() -> None:
        if run:
            clauses.append(frozenset(("".join(run),)))
            run.clear()

    for k, (op, av) in enumerate(items):
        if op is _sre.LITERAL:  # consecutive literals match consecutive characters
            if not run:
                run_start = k
            run.append(chr(av))
            continue
        if op is _sre.BRANCH or op is _sre.SUBPATTERN:
            # the literal run before an alternation, carried into each alternative
            lead = _leading(items[run_start if run else k:])
            if lead is not None and "" not in lead[0]:
                clauses.append(frozenset(lead[0]))
        flush()
        if op is _sre.SUBPATTERN:
            if not av[1] & _sre.SRE_FLAG_IGNORECASE:
                clauses += _required_in(av[3])
        elif op is _sre.ATOMIC_GROUP:
            clauses += _required_in(av)
        elif op is _sre.BRANCH:
            # one clause of each alternative, whichever matches: their union is required
            picked: list[frozenset[str]] = []
            for alt in av[1]:
                sub = _required_in(alt)
                if not sub:
                    break
                picked.append(min(sub, key=_literal_cost))
            else:
                if picked:
                    clauses.append(frozenset().union(*picked))
        elif op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT):
            if av[0] >= 1:
                clauses += _required_in(av[2])
        # anything else (classes, anchors, lookarounds, optional parts) requires no literal
    flush()
    return clauses


def required_substrings(pattern: re.Pattern[str], max_clauses: int = 2,
                        max_cost: float = 1.0) -> list[frozenset[str]]:
    """Up to `max_clauses` sets of strings, most selective first, such that any match of
    `pattern` contains a string of every set. [] when nothing useful can be read off."""
    if pattern.flags & re.IGNORECASE:
        return []
    try:
        parsed = _sre_parse.parse(pattern.pattern, pattern.flags)
    except Exception:  # pragma: no cover - a pattern `re` compiled always parses
        return []
    if parsed.state.flags & _sre.SRE_FLAG_IGNORECASE:
        return []
    useful = sorted({c for c in _required_in(parsed.data) if _literal_cost(c) < max_cost},
                    key=lambda c: (_literal_cost(c), sorted(c)))
    return useful[:max_clauses]


# Every gate's word pieces, indexed by their first two characters, and per word the pieces
# inside it: a word never seen before is scanned once for all gates of the process, not once per
# gate (a comment full of new words would otherwise pay for each of them many times over).
_piece_index: dict[str, frozenset[str]] = {}
_word_pieces: dict[str, tuple[str, ...]] = {}


def _add_pieces(pieces: Iterable[str]) -> None:
    for x in pieces:
        bucket = _piece_index.get(x[:2], frozenset())
        if x not in bucket:
            # a new set, never one changed in place: a scan running in another thread goes on
            # over the set it started with
            _piece_index[x[:2]] = bucket | {x}
            _word_pieces.clear()  # words seen so far were scanned without it


def pieces_in(w: str) -> tuple[str, ...]:
    """The gate pieces that occur inside the word w (memoised)."""
    found = _word_pieces.get(w)
    if found is None:
        index = _piece_index
        found = tuple({x for i in range(len(w) - 1) for x in index.get(w[i:i + 2], ()) if w.startswith(x, i)})
        if len(_word_pieces) > 50_000:
            _word_pieces.clear()
        _word_pieces[w] = found
    return found


class LiteralGates:
    """For rule i, `allows(i, met)` is False only when rule i's pattern cannot match the text.

    A literal of only word characters occurs in a text exactly when it occurs inside one of the
    text's \\w+ words; a literal with other characters ("buy now") needs its longest word piece
    ("buy") inside a word. So a clause holds only if one of its pieces sits inside a word of
    the text, and which clauses a word meets is worked out once per distinct word and
    memoised. Clause sets are int bit masks: per comment the gates cost a dictionary lookup
    and an OR per distinct word, and one AND per rule.
    """

    def __init__(self, patterns: Sequence[re.Pattern[str]], max_cost: float = 2.0) -> None:
        """`max_cost` bounds how common a clause may be (see _literal_cost) and still be kept."""
        ids: dict[frozenset[str], int] = {}
        self.need: list[int] = []  # per rule: bit mask of the clauses it needs
        by_piece: dict[str, int] = {}  # piece -> mask of the clauses it meets
        for pattern in patterns:
            mask = 0
            for lits in required_substrings(pattern, max_clauses=4, max_cost=max_cost):
                pieces = frozenset(max(_WORD_PIECES(t), key=len, default="") for t in lits)
                if "" in pieces or any(len(x) < 2 for x in pieces):
                    continue  # a literal without a word piece, or a piece found everywhere
                if pieces not in ids:
                    ids[pieces] = len(ids)
                    for x in pieces:
                        by_piece[x] = by_piece.get(x, 0) | 1 << ids[pieces]
                mask |= 1 << ids[pieces]
            self.need.append(mask)
        self._piece_clauses = by_piece
        _add_pieces(by_piece)
        self._word_clauses: dict[str, int] = {}

    def _clauses_in(self, w: str) -> int:
        """Mask of the clauses one of whose pieces occurs inside the word w (memoised)."""
        met = 0
        mine = self._piece_clauses
        for x in pieces_in(w):
            m = mine.get(x)
            if m is not None:
                met |= m
        if len(self._word_clauses) > 50_000:
            self._word_clauses.clear()
        self._word_clauses[w] = met
        return met

    def met(self, words: Iterable[str]) -> int:
        """Mask of the clauses a text with these distinct \\w+ words meets."""
        get = self._word_clauses.get
        met = 0
        for w in words:
            m = get(w)
            met |= m if m is not None else self._clauses_in(w)
        return met

    def allows(self, i: int, met: int) -> bool:
        """False only when rule i cannot match a text meeting just the clauses in `met`."""
        need = self.need[i]
        return need & met == need


_WORDS = re.compile(r"\w+").findall
# The three phrase filters look at the same normalised text one after the other: its distinct
# words are worked out once (the last text is kept by identity, so nothing can go stale).
_last_words: tuple[str, frozenset[str]] = ("", frozenset())


def distinct_words(s: str) -> frozenset[str]:
    """The distinct \\w+ words of s."""
    global _last_words
    last = _last_words
    if last[0] is s:
        return last[1]
    words = frozenset(_WORDS(s))
    _last_words = (s, words)
    return words


class RuleMatcher:
    """Rules compiled one by one; a rule is only tried when one of its trigger strings occurs.

    One alternation of every rule is slower in `re` than this (no literal prefix to skip
    ahead with), so a cheap substring test over the distinct triggers picks the few rules
    worth running.
    """

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules
        self._compiled = [re.compile(r.pattern if r.pattern.startswith("(?:(?<!") else r"\b" + r.pattern)
                          for r in rules]
        # Rule sets are int bit masks (bit i = rule i): unions are ORs, and the set bits come out
        # in rule order.
        self._always = sum(1 << i for i, r in enumerate(rules) if not r.triggers)
        # Triggers are word heads: a text word starting with one lets its rules run.
        self._index: dict[str, list[tuple[str, int]]] = {}
        by_trigger: dict[str, int] = {}
        for i, r in enumerate(rules):
            for t in r.triggers:
                by_trigger[t] = by_trigger.get(t, 0) | 1 << i
        for t, mask in by_trigger.items():
            self._index.setdefault(t[:2], []).append((t, mask))
        self._gates = LiteralGates(self._compiled)
        self._word_info: dict[str, int] = {}

    def _rules_for(self, w: str) -> int:
        """Mask of the rules a text word lets run."""
        known = 0
        for t, mask in self._index.get(w[:2], ()):
            if w.startswith(t):
                known |= mask
        return known

    def _word_bits(self, w: str) -> int:
        """The rules a word lets run in the low bits, the gate clauses it meets above them,
        memoised per word (the same words come back comment after comment): one lookup and one
        OR per word and comment."""
        bits = self._rules_for(w) | self._gates._clauses_in(w) << len(self.rules)
        if len(self._word_info) > 50_000:
            self._word_info.clear()
        self._word_info[w] = bits
        return bits

    def finditer(self, s: str) -> Iterator[Hit]:
        """Every (rule, span) hit, in rule order then text order."""
        get = self._word_info.get
        acc = 0
        for w in distinct_words(s):
            bits = get(w)
            acc |= bits if bits is not None else self._word_bits(w)
        n = len(self.rules)
        todo = self._always | acc & ((1 << n) - 1)
        met = acc >> n
        need = self._gates.need
        while todo:
            low = todo & -todo
            todo ^= low
            i = low.bit_length() - 1
            if need[i] & met != need[i]:
                continue  # a literal the rule cannot match without is missing
            r = self.rules[i]
            for m in self._compiled[i].finditer(s):
                yield Hit(r, m.start(), m.end())


def load_word_set(path: Path) -> frozenset[str]:
    """A plain list file: one entry a line, '#' comments."""
    out = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.add(line.lower())
    return frozenset(out)
