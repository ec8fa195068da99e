"""Site-edited lists (blocked_terms, suspect_terms, blocked_domains, allowed_domains).

Moderators change them through the admin API; workers pick up a new version within seconds,
so these never need a deploy. They add findings on top of the shipped filters, and
`allowed_domains` lets a site vouch for links the spam filter would otherwise doubt.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from .base import Context, Filter, Finding, Text

_DOMAIN = re.compile(r"(?:https?://)?(?:www\.)?((?:[a-z0-9-]+\.)+[a-z]{2,})(?=[/\s:?#]|$)")


def _terms_regex(terms: Sequence[str]) -> re.Pattern[str] | None:
    terms = sorted({t.strip().lower() for t in terms if t.strip()}, key=len, reverse=True)
    if not terms:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(re.escape(t) for t in terms) + r")(?!\w)")


def _domain_matches(domain: str, listed: frozenset[str]) -> bool:
    """`example.com` in a list covers `shop.example.com` too."""
    parts = domain.split(".")
    return any(".".join(parts[i:]) in listed for i in range(len(parts) - 1))


def domains_in(text: Text) -> list[tuple[str, int, int]]:
    return [(m.group(1), m.start(), m.end()) for m in _DOMAIN.finditer(text.normalised)]


class ListsFilter:
    """Findings from the site's blocked and suspect terms and blocked domains."""

    name = "lists"
    version = "1"

    def __init__(self, lists: Mapping[str, Sequence[str]]) -> None:
        self.blocked = _terms_regex(lists.get("blocked_terms", ()))
        self.suspect = _terms_regex(lists.get("suspect_terms", ()))
        self.blocked_domains = frozenset(d.lower() for d in lists.get("blocked_domains", ()))

    def check(self, text: Text, context: Context) -> list[Finding]:
        out: list[Finding] = []
        for regex, score, rule in ((self.blocked, 1.0, "lists.blocked_term"),
                                   (self.suspect, 0.6, "lists.suspect_term")):
            if regex is None:
                continue
            spans = tuple(text.span(m.start(), m.end()) for m in regex.finditer(text.normalised))
            if spans:
                out.append(Finding("spam", score, rule, spans, "on the site's list"))
        if self.blocked_domains:
            spans = tuple(text.span(a, b) for d, a, b in domains_in(text)
                          if _domain_matches(d, self.blocked_domains))
            if spans:
                out.append(Finding("spam", 1.0, "lists.blocked_domain", spans, "blocked domain"))
        return out


class AllowedDomains:
    """Wraps the spam filter: link findings are dropped when every linked domain is allowed."""

    def __init__(self, inner: Filter, allowed: Sequence[str]) -> None:
        self.inner = inner
        self.name = inner.name
        self.version = inner.version
        self.allowed = frozenset(d.lower() for d in allowed)

    def check(self, text: Text, context: Context) -> Sequence[Finding]:
        findings = self.inner.check(text, context)
        if not self.allowed:
            return findings
        domains = domains_in(text)
        if not domains or not all(
                _domain_matches(d, self.allowed) for d, _, _ in domains):
            return findings
        return [f for f in findings if not f.rule.startswith("spam.link")]
