"""The phrase-rule language: rule and slot files, their expansion into regular expressions, and
the literals a rule cannot match without. Shared by the content filters.

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
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SLOT_REF = re.compile(r"\{([A-Z][A-Z0-9_]*)\}")
_WORD_PIECES = re.compile(r"\w+").findall
_GAP3 = r"(?:\W+[\w'’]+){0,3}\W+"
_SENT_START = r"(?:(?<![^\n])|(?<=[.!?:;)]) ?|(?<=[.!?:;)]  ))(?:(?:just|so|and|then|also|honestly|seriously|tip|pro tip|my advice) \W*)?"  # noqa: E501 - a regex reads best whole
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
