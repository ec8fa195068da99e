"""Spam: links, contact handles and phone numbers, drug sourcing and commercial offers, money
scams, floods and duplicates, gibberish, spammy author names, plus the learned model.

Vocabulary lives in data files (workers/filters/data/spam_*); this module only knows how to
combine it. Each rule yields a Finding whose score is how sure that rule alone is; the policy
combines them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from workers.engine.filters.base import Context, Finding, Text
from workers.engine.filters.gates import LiteralGates, distinct_words
from workers.engine.filters.rule_language import top_level_branches
from workers.engine.normalise import normalise
from workers.engine.patterns import (
    DOT_TLD as _DOT_TLD,
)
from workers.engine.patterns import (
    EMAIL as _EMAIL,
)
from workers.engine.patterns import (
    HANDLE as _HANDLE,
)
from workers.engine.patterns import (
    LINK as _LINK,
)
from workers.engine.patterns import (
    PHONE as _PHONE,
)
from workers.engine.patterns import (
    domain_in as _domain_in,
)
from workers.engine.patterns import (
    host_of,
    is_reputable,
    read_list,
)

VERSION = "1"

_SQUEEZE = re.compile(r"(.)\1+")
_THOUSANDS = re.compile(r"\d{1,3}(?:[.,]\d{3})+")
_DIGITS = re.compile(r"\d\d\d")
_ANCHOR = re.compile(r"<a\s+href|\[url=|\[/url\]|</a>")
_AFFILIATE = re.compile(r"[?&](?:ref|aff|affiliate|utm_\w+|coupon|promo|partner|click_id|tag)=")
_NO_UPPER = str.maketrans("", "", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_NO_LOWER = str.maketrans("", "", "abcdefghijklmnopqrstuvwxyz")
_TOKENS = re.compile(r"[^\W_]+")
_WORDS = re.compile(r"[^\W\d_]+")
_KEYBOARD = ("qwertyuiop", "asdfghjkl", "zxcvbnm", "poiuytrewq", "lkjhgfdsa", "mnbvcxz")
# every run of four keys along a row: "is w[i:i+4] in a row" becomes one set lookup
_KEYBOARD_RUNS = frozenset(row[i:i + 4] for row in _KEYBOARD for i in range(len(row) - 3))
_EMOJI = re.compile(r"[\U0001F300-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF]")
_UNDAMPED = ("spam.link", "spam.flood", "spam.gibberish", "spam.duplicate", "spam.author")
_NOT_DAMPED = re.compile(r"\b(?:no scam|not a scam|legit|100% real|recovery (?:expert|agent|specialist|hacker)s?|recover(?:ed)? (?:my|all my|your) (?:lost |stolen )?(?:funds|money|bitcoin|crypto))\b")  # noqa: E501 - a regex reads best whole


def _alternation(words: Sequence[str]) -> str:
    return "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in sorted(set(words), key=len, reverse=True))


def _lead_word(alt: str) -> str | None:
    """The whole first word an alternative must start with, or None when it is not literal."""
    if alt.startswith("\\b"):
        alt = alt[2:]
    m = re.match(r"[^\W_]+", alt)
    if not m or not m.group(0).isascii() and not m.group(0).isalpha():
        return None
    rest = alt[m.end():]
    if rest[:1] and rest[0] in "?*+{([":
        return None
    if not m.group(0).isascii() and not re.fullmatch(r"[a-z\u0400-\u04ff]+", m.group(0)):
        return None
    return m.group(0)


def _triggers(pattern: str) -> frozenset[str] | None:
    """Words one of which must appear for `pattern` to match; None when that cannot be told.

    Running thirty patterns over every comment costs more than the rest of the chain, so a
    pattern only runs when the comment contains the first word of one of its alternatives.
    """
    words: set[str] = set()
    for branch in top_level_branches(pattern):
        body = branch[2:] if branch.startswith("\\b") else branch
        if body.startswith("(?:"):
            depth, end = 0, -1
            for i, c in enumerate(body):
                if c == "(" and (i == 0 or body[i - 1] != "\\"):
                    depth += 1
                elif c == ")" and body[i - 1] != "\\":
                    depth -= 1
                    if depth == 0:
                        end = i
                        break
            if end < 0 or body[end + 1:end + 2] in ("?", "*", "{"):
                return None
            alts = top_level_branches(body[3:end])
        else:
            alts = [body]
        for alt in alts:
            w = _lead_word(alt)
            if w is None:
                return None
            words.add(w)
    return frozenset(words)


@lru_cache(maxsize=1)
def _rules() -> tuple[tuple[str, float, re.Pattern[str], frozenset[str] | None, re.Pattern[str] | None], ...]:
    """(rule, score, pattern, trigger words, trigger substrings) from spam_patterns.tsv.

    An optional fourth column lists substrings (separated by |) one of which must occur for the
    pattern to run, for patterns whose first words cannot be read off the expression.
    """
    drugs = _alternation(read_list("spam_drugs.txt"))
    out = []
    for line in read_list("spam_patterns.tsv"):
        rule, score, pattern, *gate = line.split("\t")
        pattern = pattern.replace("{DRUG}", drugs)
        # The substrings as one literal alternation: one search in C instead of a Python loop.
        gate_re = re.compile("|".join(re.escape(g) for g in gate[0].split("|"))) if gate else None
        out.append((rule, float(score), re.compile(pattern), _triggers(pattern), gate_re))
    return tuple(out)


@lru_cache(maxsize=1)
def _lists() -> dict[str, frozenset[str]]:
    return {
        "short": frozenset(read_list("spam_shorteners.txt")),
        "neutral": frozenset(read_list("spam_neutral_domains.txt")),
        "contact": frozenset(read_list("spam_contact_domains.txt")),
        "domain_words": frozenset(read_list("spam_domain_words.txt")),
        "author_words": frozenset(read_list("spam_author_words.txt")),
    }


@lru_cache(maxsize=1)
def _helpline() -> re.Pattern[str]:
    return re.compile(r"(?<!\w)(?:" + _alternation(read_list("spam_helpline_words.txt")) + r")(?!\w)")


@lru_cache(maxsize=1)
def _warning() -> re.Pattern[str]:
    return re.compile(r"\b(?:" + _alternation(read_list("spam_warning_words.txt")) + r")\b")


@lru_cache(maxsize=8192)  # words repeat from comment to comment
def _is_gibberish_word(w: str) -> bool:
    if len(w) < 4 or not w.isascii():
        return False
    if len(set(w)) <= 2 and len(w) >= 5:
        return True
    w = _SQUEEZE.sub(r"\1", w)  # stretched letters (shuffllllin) are emphasis, not mashing
    if len(w) < 4:
        return False
    if not re.search(r"[aeiouy]", w):
        return True
    if re.search(r"[bcdfghjklmnpqrstvwxz]{5,}", w):
        return True
    return any(w[i:i + 4] in _KEYBOARD_RUNS for i in range(len(w) - 3))


@lru_cache(maxsize=4096)
def _normalised_author(author: str) -> str:
    return normalise(author).normalised


class SpamFilter:
    """Rules over links, contacts and offers, plus the learned model's spam probability."""

    name = "spam"
    version = VERSION

    def __init__(self, model=None, use_model: bool = True) -> None:
        self._model = model
        self._use_model = use_model
        self._lists = _lists()
        self._author_findings: dict[str, tuple[tuple[str, float, str], ...]] = {}
        self._rules = _rules()
        # literals each pattern cannot match without: most gated-in patterns still fail
        self._gates = LiteralGates([pat for _, _, pat, _, _ in self._rules])
        # per rule: (mask of the gate clauses it needs, needs a bad link?, rule, score, pattern,
        # trigger words, trigger substrings), flat for the loop over every rule
        self._rule_rows = [(need, rule.startswith("spam.link."), rule, score, pat, triggers, gate)
                           for need, (rule, score, pat, triggers, gate) in zip(self._gates.need, self._rules)]
        self._warning = _warning()

    @property
    def model(self):
        """The learned model (the process default unless one was given)."""
        if self._model is None and self._use_model:
            from workers.engine.model import default_model

            self._model = default_model()
        return self._model

    def check(self, text: Text, context: Context) -> list[Finding]:
        """Findings for every spam signal in the comment."""
        s = text.normalised
        found: list[Finding] = []

        def add(rule: str, score: float, spans: Sequence[tuple[int, int]] = (), detail: str = "") -> None:
            found.append(Finding("spam", score, rule, tuple(text.span(a, b) for a, b in spans), detail))

        hint = "http" in s or "www" in s or _DOT_TLD.search(s) is not None
        all_links = [m.span() for m in _LINK.finditer(s)] if hint else []
        link_spans = self._links(text, add)
        self._contacts(text, add, all_links)
        tokens: set[str] | None = None  # built for the first rule that asks
        met = self._gates.met(distinct_words(s))
        for _, link_rule, rule, score, pat, triggers, gate in [r for r in self._rule_rows if r[0] & met == r[0]]:
            if link_rule and not link_spans:
                continue
            if triggers is not None:
                if tokens is None:
                    tokens = set(_TOKENS.findall(s))
                if triggers.isdisjoint(tokens):
                    continue
            elif gate is not None and gate.search(s) is None:
                continue
            ms = list(pat.finditer(s))
            if ms:
                add(rule, score, [m.span() for m in ms][:5], ms[0].group(0)[:60])
        self._shape(text, context, add)
        author = context.author
        if author:
            self._author(author, add)

        if found and self._warning.search(s) and not _NOT_DAMPED.search(s):
            # "someone replied 'WhatsApp +1 555…', do NOT do this": quoting spam to warn others.
            # Links, floods and gibberish keep their weight; the quoted offer becomes one weak doubt.
            kept = [f for f in found if f.rule.startswith(_UNDAMPED)]
            quoted = [f for f in found if not f.rule.startswith(_UNDAMPED)]
            found = kept
            if quoted:
                top = max(quoted, key=lambda f: f.score)
                found.append(Finding("spam", round(top.score * 0.3, 4), "spam.quoted",
                                     tuple(sp for f in quoted for sp in f.spans)[:5],
                                     "spam wording quoted in a warning"))
        if not context.trusted_author:
            probs = context.extra.get("model_probs") if isinstance(context.extra, dict) else None
            model = self.model
            if probs is None and model is not None:
                probs = model.predict(text, author)
            if probs and model is not None:
                found.append(Finding("spam", probs.get("spam", 0.0), "spam." + model.model_id, (),
                                     "learned model"))
        return found

    def _links(self, text: Text, add) -> list[tuple[int, int]]:
        s = text.normalised
        bad: list[tuple[int, int]] = []
        neutral: list[tuple[int, int]] = []
        commercial = False
        if not ("http" in s or "www" in s or _DOT_TLD.search(s)):
            return bad
        for m in _LINK.finditer(s):
            link = m.group(0).rstrip(".,;:!?")
            host = host_of(link)
            if not host or "." not in host or is_reputable(host):
                continue
            if _domain_in(host, self._lists["contact"]):
                add("spam.link.contact", 0.95, [m.span()], host)
                bad.append(m.span())
                continue
            if not link.startswith(("http", "www")):
                label = host.split(".")[-2]
                if len(label) < 2 or not re.search(r"[a-z]", label):
                    continue  # "1.it is about", "2.0.co": a list number, not a site
            if _domain_in(host, self._lists["neutral"]):
                neutral.append(m.span())
                continue
            if _domain_in(host, self._lists["short"]):
                add("spam.link.shortener", 0.92, [m.span()], host)
            elif _domain_in(host, self._lists["contact"]):
                add("spam.link.contact", 0.95, [m.span()], host)
            if _AFFILIATE.search(link):
                add("spam.link.affiliate", 0.95, [m.span()], host)
            words = set(re.split(r"[^a-z]+", host)) | set(re.findall(r"[a-z]+", host))
            if words & self._lists["domain_words"] or any(w in host for w in ("keta", "pharm", "casino")):
                commercial = True
            bad.append(m.span())
        if neutral:
            add("spam.link.platform", 0.4, neutral, "link to a video or news platform")
        if not bad:
            return neutral
        if _ANCHOR.search(s):
            add("spam.link.anchor", 0.97, bad, "HTML/BBCode link")
        if commercial:
            add("spam.link.commercial", 0.9, bad, "commercial link")
        if len(bad) >= 2:
            add("spam.link.many", 0.85, bad, f"{len(bad)} links")
        add("spam.link", 0.7, bad, "link to an unvetted site")
        return bad

    def _contacts(self, text: Text, add, links: Sequence[tuple[int, int]] = ()) -> None:
        s = text.normalised

        def outside(span: tuple[int, int]) -> bool:
            return not any(a <= span[0] < b for a, b in links)

        at = "@" in s
        emails = [m.span() for m in _EMAIL.finditer(s)] if at else []
        if emails:
            add("spam.email", 0.6, emails, "email address")
        handles = [m for m in (_HANDLE.finditer(s) if at else ()) if m.start() > 0 and not s[:m.start()].isspace()]
        # a handle with digits, dots or underscores is an account name, not a reply to a person
        accounts = [m.span() for m in handles if re.search(r"[\d_.]", m.group(1))]
        if accounts:
            add("spam.handle", 0.6, accounts, "account handle")
        phones = [m.span() for m in (_PHONE.finditer(s) if _DIGITS.search(s) else ())
                  if sum(c.isdigit() for c in m.group(0)) >= 8 and outside(m.span())
                  and not _THOUSANDS.fullmatch(m.group(0).strip())]
        # a crisis or public service line shared with someone is not a contact for sale
        phones = [(a, b) for a, b in phones if not _helpline().search(s, max(0, a - 80), b + 40)]
        if phones:
            add("spam.phone", 0.6, phones, "phone number")

    def _shape(self, text: Text, context: Context, add) -> None:
        s = text.normalised
        words = _WORDS.findall(s)
        if words and len(words) <= 12:
            gib = [w for w in words if _is_gibberish_word(w)]
            longer = [w for w in words if len(w) >= 4]
            if (len(gib) >= max(1, 0.6 * len(words))
                    or (len(gib) >= 3 and len(gib) >= 0.6 * len(longer))):
                add("spam.gibberish", 0.96, (), "keyboard mash")
        if len(words) >= 8:
            uniq = len(set(words)) / len(words)
            if uniq <= 0.3:
                add("spam.flood", 0.96, (), "repeated words")
            else:
                # "cheap cheap cheap ... buy buy buy": several different words each said three
                # times running (one "very very very" is emphasis, two such runs are a flood)
                tripled = {w for a, b, w in zip(words, words[1:], words[2:])
                           if w == b == a and w not in ("ha", "la", "no")}
                if len(tripled) >= 2:
                    add("spam.flood", 0.96, (), "repeated words")
        orig = text.original
        upper = len(orig) - len(orig.translate(_NO_UPPER))
        if upper >= 14:  # lower-case letters only matter for a comment with many capitals
            lower = len(orig) - len(orig.translate(_NO_LOWER))
            if upper + lower >= 20 and upper / (upper + lower) > 0.7:
                add("spam.caps", 0.45, (), "mostly capitals")
        if not orig.isascii() and len(_EMOJI.findall(orig)) >= 6:
            add("spam.emoji", 0.45, (), "emoji flood")
        if context.recent_duplicates and len(words) >= 5:
            score = 0.95 if context.recent_duplicates >= 3 else 0.7
            add("spam.duplicate", score, (), f"seen {context.recent_duplicates} other time(s)")

    def _author(self, author: str, add) -> None:
        found = self._author_findings.get(author)
        if found is None:
            if len(self._author_findings) > 10_000:
                self._author_findings.clear()
            found = self._author_findings[author] = self._judge_author(author)
        for rule, score, detail in found:
            add(rule, score, (), detail)

    def _judge_author(self, author: str) -> tuple[tuple[str, float, str], ...]:
        """(rule, score, detail) for a display name; a pure function of the name, so memoised
        (the same commenters come back)."""
        a = _normalised_author(author)
        if _LINK.search(a):
            return (("spam.author.link", 0.8, "author name is a web address"),)
        words = set(re.findall(r"[a-z0-9/]+", a))
        hits = words & self._lists["author_words"]
        if hits or any(" " in w and w in a for w in self._lists["author_words"]):
            return (("spam.author", 0.4, "business-like author name"),)
        return ()
