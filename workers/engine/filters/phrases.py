"""Compiled phrase rules with slots, shared by the content filters.

A rule file holds one rule a line::

    rule.id  0.8  [@flag,flag]  pattern

A pattern is a regular expression over the normalised (lower-cased, folded) text, with three
conveniences so that editors can write phrases rather than regex:

* ``{SLOT}`` expands to an alternation of the phrases listed under ``[SLOT]`` in a slot file;
* a plain space means "one or more non-word characters" (so punctuation and line breaks between
  words do not break a phrase);
* ``~`` means "a gap of up to three words", ``~~`` up to six.

Slot files list phrases under ``[NAME]`` headers, one a line. A phrase is literal text; a
trailing ``*`` allows any word ending (``cur*`` matches cure, cures, cured). Lines starting with
``#`` are comments everywhere.

All rules of a file are compiled into one alternation with a named group per rule, so a comment
is scanned once per file whatever the number of rules.
"""

from __future__ import annotations

import re
import re._constants as _sre
import re._parser as _sre_parse
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from dataclasses import dataclass
from pathlib import Path

_SLOT_REF = re.compile(r"\{([A-Z][A-Z0-9_]*)\}")
_WORD_PIECES = re.compile(r"\w+").findall
_GAP3 = r"(?:\W+[\w'’]+){0,3}\W+"
_SENT_START = r"(?:(?<![^\n])|(?<=[.!?:;)]) ?|(?<=[.!?:;)]  ))(?:(?:just|so|and|then|also|honestly|seriously|tip|pro tip|my advice) \W*)?"
_GAP6 = r"(?:\W+[\w'’]+){0,6}\W+"


@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled phrase rule."""

    rule_id: str
    score: float
    flags: frozenset[str]
    pattern: str
    # Literal strings of which at least one occurs in any match; () when none could be found.
    triggers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Hit:
    """A rule that matched, with the span in the normalised text."""

    rule: Rule
    start: int
    end: int


def _phrase_to_regex(phrase: str) -> str:
    phrase = phrase.strip()
    wild = phrase.endswith("*")
    if wild:
        phrase = phrase[:-1]
    parts = [re.escape(w) for w in phrase.split()]
    body = r"\W+".join(parts)
    if wild:
        return body + r"[\w'’]*"
    return body + (r"\b" if phrase and (phrase[-1].isalnum() or phrase[-1] == "_") else "")


_END = "\x00"


def _phrase_tokens(phrase: str) -> list[str]:
    """A phrase as regex atoms, one per character, so phrases can share a trie."""
    phrase = " ".join(phrase.strip().lower().split())
    wild = phrase.endswith("*")
    if wild:
        phrase = phrase[:-1]
    toks = [r"\W+" if c == " " else re.escape(c) for c in phrase]
    if wild:
        toks.append(r"[\w'’]*")
    elif phrase and (phrase[-1].isalnum() or phrase[-1] == "_"):
        toks.append(r"\b")
    return toks


def _trie_regex(phrases: list[str]) -> str:
    """One regex for many phrases, factored by shared prefixes (much faster in `re`)."""
    trie: dict[str, Any] = {}
    for p in phrases:
        node = trie
        for tok in _phrase_tokens(p):
            node = node.setdefault(tok, {})
        node[_END] = {}

    def emit(node: dict[str, Any]) -> str:
        ends = _END in node
        branches = [tok + emit(child) for tok, child in node.items() if tok != _END]
        if not branches:
            return ""
        # Longer continuations first so that the fuller phrase wins.
        branches.sort(key=len, reverse=True)
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if ends:
            return "(?:" + body + ")?"
        return body

    return "(?:" + emit(trie) + ")"


_RAW_PHRASES: dict[int, dict[str, list[str]]] = {}


def fold_accents(s: str) -> str:
    """Drop diacritics the way the normaliser does ("imbécil" → "imbecil"), so rules written
    with accents match the folded comment text."""
    if s.isascii():
        return s
    return "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))


def load_slots(paths: Iterable[Path]) -> dict[str, str]:
    """Read slot files into {NAME: regex alternation}."""
    raw: dict[str, list[str]] = {}
    current: str | None = None
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            line = fold_accents(line.strip())
            if not line or line.startswith("#"):
                continue
            if line.startswith("[") and line.endswith("]"):
                current = line[1:-1].strip()
                raw.setdefault(current, [])
                continue
            if current is None:
                raise ValueError(f"{path}: phrase outside a [SLOT] section: {line!r}")
            raw[current].append(line)
    slots: dict[str, str] = {}

    def build(name: str, seen: tuple[str, ...] = ()) -> str:
        if name in slots:
            return slots[name]
        if name in seen or name not in raw:
            raise ValueError(f"slot [{name}] is undefined or refers to itself")
        subs: list[str] = []
        phrases: list[str] = []
        for p in raw[name]:
            ref = _SLOT_REF.fullmatch(p)
            if ref:
                subs.append(build(ref.group(1), seen + (name,)))
            else:
                phrases.append(p)
        parts = ([_trie_regex(phrases)] if phrases else []) + subs
        slots[name] = "(?:" + "|".join(parts) + ")"
        return slots[name]

    for name in raw:
        build(name)
    _RAW_PHRASES[id(slots)] = raw
    return slots


def expand(pattern: str, slots: dict[str, str]) -> str:
    """Turn an editor's pattern into a regex: slots, gaps and flexible spaces."""

    def _lookup(name: str) -> str:
        if name not in slots:
            raise KeyError(f"unknown slot {{{name}}} in pattern {pattern!r}")
        return slots[name]

    lead = ""
    if pattern.startswith("^"):
        # "^" = at the start of a sentence (after optional leading words like "just" in rules).
        lead = _SENT_START
        pattern = pattern[1:].lstrip()
    out = _SLOT_REF.sub(lambda m: "\x00" + m.group(1) + "\x01", pattern)
    out = out.replace("~~", "\x02").replace("~", "\x03")
    # A plain space between tokens: any run of non-word characters.
    out = re.sub(r" +", r"\\W+", out)
    out = out.replace("\\W+\x02\\W+", _GAP6).replace("\\W+\x03\\W+", _GAP3)
    out = out.replace("\x02", _GAP6).replace("\x03", _GAP3)
    out = re.sub("\x00([A-Z0-9_]+)\x01", lambda m: _lookup(m.group(1)), out)
    if len(top_level_branches(out)) > 1:
        out = "(?:" + out + ")"
    return lead + out


def load_rules(path: Path, slots: dict[str, str]) -> list[Rule]:
    """Read a rule file (see module docstring)."""
    rules: list[Rule] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 2)
        if len(parts) < 3:
            raise ValueError(f"{path}:{n}: expected 'rule.id score pattern'")
        rule_id, score_s, rest = parts
        rest = fold_accents(rest)
        flags: frozenset[str] = frozenset()
        if rest.startswith("@"):
            flag_s, _, rest = rest.partition(" ")
            flags = frozenset(f for f in flag_s[1:].split(",") if f)
        regex = expand(rest.strip(), slots)
        try:
            re.compile(regex)
        except re.error as exc:
            raise ValueError(f"{path}:{n}: bad pattern {rest!r}: {exc}") from exc
        raw = _RAW_PHRASES.get(id(slots), {})
        rules.append(Rule(rule_id, float(score_s), flags, regex, required_literals(rest.strip(), raw)))
    return rules


def _split_top(pattern: str) -> list[str]:
    out, depth, cur = [], 0, ""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            cur += pattern[i:i + 2]
            i += 2
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        if c == " " and depth == 0:
            if cur:
                out.append(cur)
            cur = ""
        else:
            cur += c
        i += 1
    if cur:
        out.append(cur)
    return out


_LITERAL = re.compile(r"^[\w'’&%\-]+$")


def _slot_firsts(name: str, raw: dict[str, list[str]], seen: tuple[str, ...] = ()) -> set[str] | None:
    out: set[str] = set()
    for p in raw.get(name, []):
        ref = _SLOT_REF.fullmatch(p)
        if ref:
            if ref.group(1) in seen:
                return None
            sub = _slot_firsts(ref.group(1), raw, seen + (name,))
            if sub is None:
                return None
            out |= sub
            continue
        first = p.split()[0].rstrip("*") if p.split() else ""
        if not first:
            return None
        out.add(first.lower())
    return out or None


def _alt_firsts(token: str) -> set[str] | None:
    if not (token.startswith("(?:") and token.endswith(")")):
        return None
    inner = token[3:-1]
    if any(c in inner for c in "()[]?*+{}\\.^$"):
        return None
    out = set()
    for alt in inner.split("|"):
        words = alt.split()
        if not words or not _LITERAL.match(words[0]):
            return None
        out.add(words[0].lower())
    return out


def _atoms(token: str) -> list[tuple[str, bool]]:
    """Cut a token into (atom, optional) pieces: groups, {SLOT}s and literal runs."""
    out: list[tuple[str, bool]] = []
    i, n = 0, len(token)
    while i < n:
        c = token[i]
        if c == "(":
            depth, j = 0, i
            while j < n:
                if token[j] == "\\":
                    j += 2
                    continue
                if token[j] == "(":
                    depth += 1
                elif token[j] == ")":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            atom, i = token[i:j + 1], j + 1
        elif c == "{":
            j = token.find("}", i)
            j = n - 1 if j < 0 else j
            atom, i = token[i:j + 1], j + 1
        else:
            j = i
            while j < n and token[j] not in "({":
                j += 1
            atom, i = token[i:j], j
        optional = i < n and token[i] in "?*"
        if i < n and token[i] == "{" and not _SLOT_REF.match(token, i):
            optional = token[i + 1:i + 3] == "0,"
            i = token.find("}", i) + 1 or n
        elif i < n and token[i] in "?*+":
            i += 1
        out.append((atom, optional))
    return out


# Words so common that a trigger on them picks nearly every comment.
_COMMON = frozenset("""a an the i you he she it we they me my your our their is are was were be been
am do does did done have has had to of in on at for from with by and or but not no so if then than
that this these those there here what when where who how why can could will would should may might
just very really all any some more most much many one two get got take took make made go going
out up off over about after before again also only even still too as into like well back""".split())


def _word_head(s: str) -> str:
    m = re.match(r"\w+", s)
    return m.group(0) if m else ""


def _cost(cand: set[str]) -> float:
    """Expected share of comments a trigger set lets through (rough, for choosing one)."""
    return sum(3.0 if len(w) == 1 else 1.0 if w in _COMMON else 0.3 if len(w) <= 2 else 0.05
               for w in cand)


def top_level_branches(pattern: str) -> list[str]:
    """A pattern cut at its top-level '|' (outside any group or class)."""
    out, depth, cls, esc, start = [], 0, False, False, 0
    for i, c in enumerate(pattern):
        if esc:
            esc = False
        elif c == "\\":
            esc = True
        elif cls:
            cls = c != "]"
        elif c == "[":
            cls = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            out.append(pattern[start:i])
            start = i + 1
    out.append(pattern[start:])
    return out


def required_literals(pattern: str, raw: dict[str, list[str]]) -> tuple[str, ...]:
    """Literal strings of which one must occur in any match of the pattern (best guess, safe).

    The pattern is cut into top-level tokens and atoms; a literal word, a {SLOT} or a plain
    alternation group that is not optional gives a candidate set, and the most selective one
    is kept. A pattern that is a top-level alternation ("a b|c d") needs one literal of each
    branch: the union of the branches' sets, or none when a branch has none.
    """
    branches = top_level_branches(pattern.lstrip("^").strip())
    if len(branches) > 1:
        union: set[str] = set()
        for b in branches:
            lits = required_literals(b.strip(), raw)
            if not lits:
                return ()
            union.update(lits)
        return tuple(sorted(union))
    best: set[str] | None = None
    for tok in _split_top(pattern.lstrip("^").strip()):
        if tok in ("~", "~~"):
            continue
        for atom, optional in _atoms(tok):
            if optional:
                continue
            cand: set[str] | None = None
            ref = _SLOT_REF.fullmatch(atom)
            if ref:
                cand = _slot_firsts(ref.group(1), raw)
            elif atom.startswith("("):
                cand = _alt_firsts(atom)
            else:
                lead = re.match(r"[a-z0-9'’&%\-]*", atom)
                word = lead.group(0) if lead else ""
                if word == atom and optional:
                    word = word[:-1]
                    optional = False
                cand = {_word_head(word)} if word and not optional else None
            if not cand:
                continue
            cand = {c for c in (_word_head(x) for x in cand)}
            if "" in cand:
                continue
            if best is None or _cost(cand) < _cost(best):
                best = cand
    if best is None:
        return ()
    return tuple(sorted(best))


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


