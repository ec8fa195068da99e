"""Profanity: better-profanity's word list and matching rules, compiled for speed, plus
obfuscation handling and an allow-list for words that are innocent on a health site.

`WordList` reproduces `better_profanity.Profanity.censor` (same list, same tokenisation, same
look-alike characters, same multi-word entries) but looks words up through a signature index
instead of scanning 900 patterns per word. `ProfanityFilter` runs it on the normalised text
(so leetspeak, homoglyphs and spaced letters are already folded), adds roots inside compounds,
stretched letters, wildcards, symbol swearing and other languages, and reports spans in the
original text so the policy can mask exactly those characters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path

from workers.engine.filters.base import Context, Finding, Text, merge_spans
from workers.engine.filters.gates import LiteralGates, distinct_words

DATA = Path(__file__).parent / "data"
VERSION = "1"
MASK = "****"
_TRIPLE = re.compile(r"(.)\1\1")

# better-profanity 0.7.0's look-alike map: a listed character may appear as any of these.
CHARS_MAPPING: dict[str, tuple[str, ...]] = {
    "a": ("a", "@", "*", "4"),
    "i": ("i", "*", "l", "1"),
    "o": ("o", "*", "0", "@"),
    "u": ("u", "*", "v"),
    "v": ("v", "*", "u"),
    "l": ("l", "1"),
    "e": ("e", "*", "3"),
    "s": ("s", "$", "5"),
    "t": ("t", "7"),
}
# Characters that can stand for one another collapse to one class, so a word and any disguise of
# it share a signature; the exact per-position check then runs on a handful of candidates.
_SIGNATURE = str.maketrans({c: "a" for c in "a@*4iol1o0uve3"} | {"$": "s", "5": "s", "7": "t"})


def read_list(name: str) -> list[str]:
    """Lines of a data file, without comments and blanks."""
    path = DATA / name
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def reference_words() -> list[str]:
    """The word list better-profanity ships (the reference for what counts as profane)."""
    pkg = resources.files("better_profanity")
    text = (pkg / "profanity_wordlist.txt").read_text(encoding="utf-8")
    return [w.strip() for w in text.splitlines() if w.strip()]


@lru_cache(maxsize=1)
def _allowed_characters() -> frozenset[str]:
    """better-profanity's word characters: ASCII letters, digits, @ $ * " ' and Unicode letters."""
    import string

    chars = set(string.ascii_letters) | set(string.digits) | set("@$*\"'")
    pkg = resources.files("better_profanity")
    chars.update(json.loads((pkg / "alphabetic_unicode.json").read_text(encoding="utf-8")))
    return frozenset(chars)


def _char_class(chars: Iterable[str]) -> str:
    cps = sorted({ord(c) for c in chars})
    parts: list[str] = []
    i = 0
    while i < len(cps):
        j = i
        while j + 1 < len(cps) and cps[j + 1] == cps[j] + 1:
            j += 1
        a, b = chr(cps[i]), chr(cps[j])
        parts.append(re.escape(a) if i == j else f"{re.escape(a)}-{re.escape(b)}")
        i = j + 1
    return "[" + "".join(parts) + "]"


class WordList:
    """A compiled better-profanity word list; `censor` matches better-profanity's output."""

    def __init__(self, words: Iterable[str], allow: Iterable[str] = ()) -> None:
        allowed = {w.lower() for w in allow}
        self.words = sorted({w.lower() for w in words} - allowed)
        self._allowed = _allowed_characters()
        self._token = re.compile(_char_class(self._allowed) + "+")
        # The same tokens for an ASCII text: a small class `re` tests far faster than the one
        # that also lists every Unicode letter.
        self._ascii_token = re.compile(_char_class(c for c in self._allowed if c.isascii()) + "+")
        # ASCII text cut into [token, separator, token, ..., token] in one call: strings only,
        # no match objects (the first and last token are "" when the text starts or ends with a
        # separator).
        self._ascii_split = re.compile("(" + _char_class(c for c in map(chr, range(128))
                                                        if c not in self._allowed) + "+)").split
        self._index: dict[str, list[str]] = {}
        self.max_combinations = 1
        for w in self.words:
            self._index.setdefault(w.translate(_SIGNATURE), []).append(w)
            extra = sum(1 for c in w if c not in self._allowed)
            self.max_combinations = max(self.max_combinations, extra)
        self._lengths = {len(w) for w in self.words}
        self._cache: dict[str, bool] = {}
        self._codes: dict[str, int] = {}
        # "word<separator>next" texts whose joined forms cannot start a listed word (most pairs)
        self._dead_pairs: set[str] = set()
        # signatures of every word prefix: joining a word with the next ones stops as soon as the
        # joined text cannot grow into a listed word
        self._prefixes = {w.translate(_SIGNATURE)[:k] for w in self.words for k in range(1, len(w) + 1)}

    def __contains__(self, token: str) -> bool:
        """True when `token` (lower-cased) is a listed word or a look-alike spelling of one."""
        hit = self._cache.get(token)
        if hit is None:
            if len(self._cache) > 100_000:
                self._cache.clear()
            hit = self._cache[token] = self._lookup(token)
        return hit

    def _lookup(self, token: str) -> bool:
        if len(token) not in self._lengths:
            return False
        cands = self._index.get(token.translate(_SIGNATURE))
        if not cands:
            return False
        for w in cands:
            if w == token:
                return True
            for tc, wc in zip(token, w):
                if tc != wc and tc not in CHARS_MAPPING.get(wc, ()):
                    break
            else:
                return True
        return False

    def _code(self, word: str) -> int:
        """2: a listed word (or a look-alike of one); 1: its signature starts a listed word."""
        codes = self._codes
        code = codes.get(word)
        if code is None:
            if len(codes) > 100_000:
                codes.clear()
            code = codes[word] = (2 if word in self else 0) | (
                1 if word.translate(_SIGNATURE) in self._prefixes else 0)
        return code

    def find(self, text: str) -> list[tuple[int, int]]:
        """[start, end) spans better-profanity would replace, in order."""
        if text.isascii():
            return self._find_ascii(text)
        n = len(text)
        toks = [m.span() for m in self._token.finditer(text)]
        if not toks or toks[0][0] >= n - 1:
            return []
        # better-profanity never sees a one-letter word that ends the text as a "next word"
        usable = [t for t in toks if not (t[0] >= n - 1)]
        spans: list[tuple[int, int]] = []
        words = [text[a:b].lower() for a, b in toks]
        codes = self._codes
        code_of = self._code
        cs = [c if (c := codes.get(w)) is not None else code_of(w) for w in words]
        resume = 0  # tokens before this one were taken by a match of several words
        # a token of code 0 is neither a listed word nor the start of one: nothing can match there
        for i in [k for k, c in enumerate(cs) if c]:
            if i < resume:
                continue
            a, b = toks[i]
            word = words[i]
            if b < n:  # followed by a separator: try this word joined with the next ones
                joined = word
                with_sep = word
                hit = None
                for k in range(1, self.max_combinations + 1):
                    j = i + k
                    if j >= len(usable) or toks[j] != usable[j]:
                        break
                    na, nb = toks[j]
                    nxt = text[na:nb].lower()
                    joined += nxt
                    with_sep += text[toks[j - 1][1]:na].lower() + nxt
                    pj = joined.translate(_SIGNATURE) in self._prefixes
                    ps = with_sep.translate(_SIGNATURE) in self._prefixes
                    if not (pj or ps):
                        break
                    if (pj and joined in self) or (ps and with_sep in self):
                        hit = j
                        break
                if hit is not None:
                    end = toks[hit][1]
                    if end >= n:  # better-profanity drops the word's last character here
                        spans.append((a, n))
                    else:
                        spans.append((a, end))
                    resume = hit + 1
                    continue
            if cs[i] & 2:  # the word alone is listed
                spans.append((a, b))
        return spans

    def _find_ascii(self, text: str) -> list[tuple[int, int]]:
        """`find` for ASCII text (nearly every comment), the same steps on token strings.

        Positions are only worked out for the rare token that is reported.
        """
        parts = self._ascii_split(text.lower())  # ASCII lower-cases character by character
        first = 1 if parts[0] == "" else 0
        ends_with_token = parts[-1] != ""
        tok = parts[2 * first::2] if ends_with_token else parts[2 * first:-1:2]
        sep = parts[2 * first + 1::2]  # sep[i] lies between tok[i] and tok[i + 1]
        # better-profanity never sees a one-letter word that ends the text as a "next word"
        n_usable = len(tok) - (1 if ends_with_token and len(tok[-1]) == 1 else 0)
        if n_usable <= 0:
            return []
        codes = self._codes
        code_of = self._code
        cs = [c if (c := codes.get(w)) is not None else code_of(w) for w in tok]
        dead = self._dead_pairs
        spans: list[tuple[int, int]] = []
        last = len(tok) - 1
        resume = 0  # tokens before this one were taken by a match of several words

        def start(i: int) -> int:
            return sum(map(len, parts[:2 * (first + i)]))

        # a token of code 0 is neither a listed word nor the start of one: nothing can match there
        for i in [k for k, c in enumerate(cs) if c]:
            if i < resume:
                continue
            word = tok[i]
            followed = i < last or not ends_with_token  # a separator comes after the token
            if followed and i + 1 <= last and word + sep[i] + tok[i + 1] in dead:
                pass  # known: joined with the next word it starts no listed word
            elif followed:  # try this word joined with the next ones
                joined = word
                with_sep = word
                hit = None
                for k in range(1, self.max_combinations + 1):
                    j = i + k
                    if j >= n_usable:
                        break
                    nxt = tok[j]
                    joined += nxt
                    with_sep += sep[j - 1] + nxt
                    pj = joined.translate(_SIGNATURE) in self._prefixes
                    ps = with_sep.translate(_SIGNATURE) in self._prefixes
                    if not (pj or ps):
                        if k == 1:
                            if len(dead) > 100_000:
                                dead.clear()
                            dead.add(with_sep)
                        break
                    if (pj and joined in self) or (ps and with_sep in self):
                        hit = j
                        break
                if hit is not None:
                    spans.append((start(i), start(hit) + len(tok[hit])))
                    resume = hit + 1
                    continue
            if cs[i] & 2:  # the word alone is listed
                a = start(i)
                spans.append((a, a + len(word)))
        return spans

    def censor(self, text: str, censor_char: str = "*") -> str:
        """Replace listed words with four censor characters, like better-profanity."""
        return replace_spans(text, self.find(text), censor_char * 4)


def replace_spans(text: str, spans: Sequence[tuple[int, int]], mask: str = MASK) -> str:
    """Replace each [start, end) span with `mask`; every other character stays byte-identical."""
    if not spans:
        return text
    out: list[str] = []
    pos = 0
    for a, b in sorted(merge_spans(spans)):
        out.append(text[pos:a])
        out.append(mask)
        pos = b
    out.append(text[pos:])
    return "".join(out)


@lru_cache(maxsize=1)
def default_wordlist() -> WordList:
    """The reference list minus our allow-list, built once per process."""
    return WordList(reference_words(), allow=read_list("profanity_allow.txt"))


def _phrase_regex(phrases: Iterable[str]) -> re.Pattern[str] | None:
    alts = []
    for p in sorted(set(phrases), key=len, reverse=True):
        parts = [re.escape(x) for x in p.lower().split()]
        alts.append(r"[\s\W_]*".join(parts))
    if not alts:
        return None
    return re.compile(r"(?<![a-z0-9])(?:" + "|".join(alts) + r")(?![a-z0-9])")


class ProfanityFilter:
    """Swearing and obscenity, including disguised spellings; spans point at the original."""

    name = "profanity"
    version = VERSION

    def __init__(self, wordlist: WordList | None = None) -> None:
        self.wordlist = wordlist or default_wordlist()
        self.extra = _phrase_regex(read_list("profanity_extra.txt"))
        self.allow_phrases = _phrase_regex(read_list("profanity_allow_phrases.txt"))
        roots = read_list("profanity_roots.txt")
        self.roots = re.compile("|".join(re.escape(r) for r in roots)) if roots else None
        self._root_words = tuple(r.lower() for r in roots)
        self.root_exceptions = frozenset(read_list("profanity_root_exceptions.txt"))
        self._word = re.compile(r"[\w*@$'!]+")
        self._by_len: dict[int, list[str]] = {}
        for w in self.wordlist.words:
            if w.isalpha():
                self._by_len.setdefault(len(w), []).append(w)
        self._token_rule: dict[str, str | None] = {}
        self._raw_rule: dict[str, str | None] = {}
        self._grawlix = re.compile(r"(?<![\w])[$#@!%&*]{3,6}(?![\w])")
        # Every grawlix holds three symbols in a row; this finds them without trying _grawlix's
        # look-behind at every position.
        self._symbols = re.compile(r"[$#@!%&*]{3}")
        # Words the phrase list cannot match without (see gates.LiteralGates): many, but each
        # rare, so far fewer comments hold one than the usual cost bound assumes.
        self._extra_gate = LiteralGates([self.extra], max_cost=10.0) if self.extra is not None else None

    def _wildcard(self, token: str) -> bool:
        """'motherf***ing', 'f**k': stars stand for letters of a listed word of the same length."""
        if token.count("*") == len(token) or sum(c.isalpha() for c in token) < 2:
            return False
        pat = re.compile(re.escape(token).replace(r"\*", "[a-z]"))
        if any(pat.fullmatch(w) for w in self._by_len.get(len(token), ())):
            return True
        # a starred root inside a longer word: "sh*tshow", "f**kwit"
        if self.roots is not None:
            for root in self._root_words:
                n = len(root)
                for i in range(len(token) - n + 1):
                    part = token[i:i + n]
                    if ("*" in part and part[0] != "*" and
                            all(c == "*" or c == r for c, r in zip(part, root))):
                        return True
        return False

    def _obfuscated(self, tok: str) -> str | None:
        """Rule id when a token is a disguised listed word, else None."""
        if "*" in tok and self._wildcard(tok):
            return "profanity.wildcard"
        if self.roots is not None and self.roots.search(tok) and tok not in self.root_exceptions:
            return "profanity.root"
        if _TRIPLE.search(tok):
            squeezed = re.sub(r"(.)\1{2,}", r"\1", tok)
            if squeezed in self.wordlist or re.sub(r"(.)\1+", r"\1", tok) in self.wordlist:
                return "profanity.stretched"
        return None

    def spans(self, text: Text) -> list[tuple[int, int, str]]:
        """(start, end, rule) in the NORMALISED text."""
        s = text.normalised
        hits: list[tuple[int, int, str]] = [(a, b, "profanity.wordlist") for a, b in self.wordlist.find(s)]
        # Most comments hold no disguised word at all: look at each distinct token once, and
        # walk the token positions only when one of them is.
        rule_of = self._raw_rule
        # A disguised token holds a star, a root or a letter three times (see _obfuscated), and
        # so then does the text.
        maybe = "*" in s or (self.roots is not None and self.roots.search(s)) or _TRIPLE.search(s)
        if maybe and any(rule_of[t] if t in rule_of else self._raw_token_rule(t)
                         for t in set(self._word.findall(s))):
            covered = {a for a, _, _ in hits}
            for m in self._word.finditer(s):
                a, b = m.span()
                if a in covered:
                    continue
                rule = rule_of[m.group(0)] if m.group(0) in rule_of else self._raw_token_rule(m.group(0))
                if rule:
                    hits.append((a, a + len(m.group(0).rstrip("'!")), rule))
        gate = self._extra_gate
        if self.extra is not None and (gate is None or gate.allows(0, gate.met(distinct_words(s)))):
            for m in self.extra.finditer(s):
                a, b = m.span()
                # In a phrase ("what the hell", "bloody hell") only its last word is masked:
                # readers keep the rest of the sentence.
                gap = max(m.group(0).rfind(" "), m.group(0).rfind("\t"))
                hits.append((a + gap + 1 if gap >= 0 else a, b, "profanity.extra"))
        for m in self._grawlix.finditer(s) if self._symbols.search(s) else ():
            if len(set(m.group(0))) >= 3:
                hits.append((m.start(), m.end(), "profanity.symbols"))
        if hits and self.allow_phrases is not None:
            allowed = [m.span() for m in self.allow_phrases.finditer(s)]
            hits = [h for h in hits if not any(x <= h[0] and h[1] <= y for x, y in allowed)]
        return hits

    def _raw_token_rule(self, raw: str) -> str | None:
        """The rule for a token as found (quotes and bangs around it included), memoised."""
        tok = raw.strip("'!")
        rule = None
        if tok:
            rule = self._token_rule.get(tok, "")
            if rule == "":
                if len(self._token_rule) > 100_000:
                    self._token_rule.clear()
                rule = self._token_rule[tok] = self._obfuscated(tok)
        if len(self._raw_rule) > 100_000:
            self._raw_rule.clear()
        self._raw_rule[raw] = rule
        return rule

    def check(self, text: Text, context: Context) -> list[Finding]:
        """One finding listing every profane span (in original offsets)."""
        hits = self.spans(text)
        if not hits:
            return []
        spans = merge_spans(text.span(a, b) for a, b, _ in hits)
        rules = sorted({r for _, _, r in hits})
        obfuscated = any(r != "profanity.wordlist" for r in rules) or any(
            text.original[a:b].lower() != text.normalised[x:y] for (a, b), (x, y, _) in zip(spans, hits))
        return [Finding(
            category="profanity",
            score=0.95 if not obfuscated else 0.9,
            rule=rules[0] if len(rules) == 1 else "profanity.multiple",
            spans=tuple(spans),
            detail=f"{len(spans)} profane word(s)",
        )]


def mask(original: str, findings: Iterable[Finding]) -> str:
    """The original text with every profanity span replaced by ****."""
    spans = [s for f in findings if f.category == "profanity" for s in f.spans]
    return replace_spans(original, spans)
