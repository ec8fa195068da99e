"""Turn findings into a decision. Pure: the same findings and settings always give the same
decision, and the decision names the policy version that made it.

Rules, in order:
- self_harm: always hold with urgent priority; never published, never blocked.
- spam: block only when blatant (rules alone are very sure, or rules and the model agree) and
  the learned model, where it judged the comment, sees spam too (a site's own blocked terms
  and domains block regardless); otherwise hold. Being unsure means hold, never block. A link
  on its own never blocks, and holds only when the model or another rule also doubts it.
- unsafe_medical, harassment: hold.
- the learned model holds on its own (self_harm urgent) where its finding is present: the
  pipeline adds one only above the model's calibrated threshold.
- profanity alone: publish with the profane words masked (mode "mask") or hold (mode "hold").
- nothing above its threshold: publish unchanged.
- a banned author (after all of the above): held, or rejected when `banned_action` is
  "reject"; a crisis is still held as urgent. Never published.

The masked text (profanity replaced by ****) is computed once, here: it is what a profanity
comment publishes as, and what a moderator's approval of a held comment publishes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from workers.engine.filters.base import CATEGORIES, Finding
from workers.engine.filters.profanity import replace_spans

POLICY_VERSION = "policy@3"
# The mere presence of a link: weak evidence that never blocks and holds only with other doubt.
BARE_LINK_RULES = frozenset({"spam.link", "spam.link.shortener", "spam.link.many", "spam.link.platform"})
SITE_BLOCK_RULES = frozenset({"lists.blocked_term", "lists.blocked_domain"})


@dataclass(frozen=True, slots=True)
class PolicySettings:
    """Per-category thresholds; the web side builds one from environment settings."""

    spam_hold: float = 0.5  # combined rule score that holds a comment
    spam_block: float = 0.95  # combined score (rules + model) that blocks a comment
    spam_block_rule_min: float = 0.85  # blocking needs at least one rule this sure...
    # ...or several rules that together are this sure while the model is at least spam_block
    spam_block_rules_agree: float = 0.9
    # A block also needs the model's spam probability at least this high (when it judged the
    # comment): ordinary wording beside a link can fool the rules, and a block is never reviewed.
    spam_block_model_min: float = 0.2
    spam_model_hold: float = 0.5  # model probability that holds a comment on its own
    profanity_hold: float = 0.5
    profanity_mode: str = "mask"  # "mask": publish masked; "hold": send to moderators
    unsafe_medical_hold: float = 0.5
    self_harm_hold: float = 0.3
    harassment_hold: float = 0.5
    harassment_block: float | None = None  # None: harassment is held, never blocked
    model_weight: float = 1.0  # how much the learned spam model counts next to the rules
    banned_action: str = "hold"  # a banned author's comments: "hold", or "reject" (blocked)
    link_model_hold: float = 0.35  # model probability that, with a bare link, holds a comment

    def __post_init__(self) -> None:
        if self.profanity_mode not in ("mask", "hold"):
            raise ValueError("profanity_mode must be 'mask' or 'hold'")

    def hold_threshold(self, category: str) -> float:
        """The score at which `category` holds a comment."""
        return float(getattr(self, f"{category}_hold"))


@dataclass(frozen=True, slots=True)
class Decision:
    """What happens to a comment and why."""

    action: str  # publish | hold | block
    priority: str  # normal | urgent
    categories: tuple[str, ...]
    published_body: str | None
    policy_version: str | None = POLICY_VERSION
    scores: dict[str, float] = field(default_factory=dict)
    # The original with profanity masked: published if a moderator approves a held comment.
    masked_body: str | None = None
    # Why, when it is not simply the categories ("banned", "error").
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain JSON shape."""
        return {
            "action": self.action,
            "priority": self.priority,
            "categories": list(self.categories),
            "published_body": self.published_body,
            "policy_version": self.policy_version,
            "scores": dict(self.scores),
        }


def is_model_finding(f: Finding) -> bool:
    """Findings from the learned model carry a rule id like 'spam.model@1.400'."""
    return ".model@" in f.rule


def _noisy_or(scores: Iterable[float]) -> float:
    p = 1.0
    for s in scores:
        p *= 1.0 - max(0.0, min(1.0, s))
    return 1.0 - p


def category_scores(findings: Sequence[Finding], settings: PolicySettings) -> dict[str, dict[str, float]]:
    """Per category: rule score (noisy-OR of the strongest finding per rule), model score, combined."""
    # One pass over the findings; within a category the rules keep the order of the findings,
    # so the noisy-OR multiplies in the same order (and gives the same float) as ever.
    per_rule: dict[str, dict[str, float]] = {cat: {} for cat in CATEGORIES}
    models = dict.fromkeys(CATEGORIES, 0.0)
    bare_link = 0.0
    for f in findings:
        rules_of = per_rule.get(f.category)
        if rules_of is None:
            continue
        if is_model_finding(f):
            models[f.category] = max(models[f.category], f.score)
        elif f.rule in BARE_LINK_RULES:
            bare_link = max(bare_link, f.score)
        else:
            rules_of[f.rule] = max(rules_of.get(f.rule, 0.0), f.score)
    out: dict[str, dict[str, float]] = {}
    for cat in CATEGORIES:
        found = per_rule[cat]
        model = models[cat]
        if found:
            rules = _noisy_or(found.values())
            top = max(found.values())
        else:  # most categories of most comments: what _noisy_or and max give for nothing
            rules = top = 0.0
        if cat == "spam":
            combined = _noisy_or((rules, bare_link, model * settings.model_weight))
        else:
            combined = rules
        out[cat] = {"rules": rules, "top_rule": top, "model": model, "combined": combined,
                    "n_rules": float(len(found)), "bare_link": bare_link if cat == "spam" else 0.0}
    return out


def decide(findings: Sequence[Finding], thresholds: PolicySettings, original: str,
           banned: bool = False) -> Decision:
    """The decision for one comment given every filter's findings and whether its author is
    banned."""
    profane = [sp for f in findings if f.category == "profanity" for sp in f.spans]
    masked = replace_spans(original, profane)
    d = _decide(findings, thresholds, original, masked)
    if banned:
        d = _banned(d, thresholds.banned_action)
    return d


def _banned(d: Decision, banned_action: str) -> Decision:
    """A banned author's comment is held or rejected; a crisis is still held, urgent."""
    cats = tuple(sorted(set(d.categories) | {"banned"}))
    if "self_harm" in d.categories:
        action, priority = "hold", "urgent"
    else:
        action, priority = ("block" if banned_action == "reject" else "hold"), d.priority
    return replace(d, action=action, priority=priority, categories=cats, published_body=None,
                   reason="banned")


def _decide(findings: Sequence[Finding], thresholds: PolicySettings, original: str,
            masked: str) -> Decision:
    s = thresholds
    sc = category_scores(findings, s)
    triggered: list[str] = []
    for cat in CATEGORIES:
        c = sc[cat]
        hold = s.hold_threshold(cat)
        if cat == "spam":
            model = c["model"] * s.model_weight
            hit = (c["rules"] >= hold or model >= s.spam_model_hold
                   or (c["bare_link"] > 0 and (model >= s.link_model_hold or c["rules"] > 0)
                       and _noisy_or((c["rules"], c["bare_link"])) >= hold))
        elif cat == "profanity":
            hit = c["rules"] >= hold
        else:
            hit = c["rules"] >= hold or c["model"] > 0
        if hit:
            triggered.append(cat)
    scores = {cat: round(max(sc[cat]["combined"], sc[cat]["model"]), 4) for cat in CATEGORIES}
    cats = tuple(triggered)

    if "self_harm" in triggered:
        return Decision("hold", "urgent", cats, None, POLICY_VERSION, scores, masked)
    spam = sc["spam"]
    agree = (spam["rules"] >= s.spam_block_rules_agree and spam["model"] * s.model_weight >= s.spam_block
             and spam["n_rules"] >= 2)
    # a site's own blocked terms and domains are a moderator's instruction, not a guess; the
    # model's doubt counts only where it judged the comment
    site_blocked = judged = False
    for f in findings:
        site_blocked = site_blocked or f.rule in SITE_BLOCK_RULES
        judged = judged or (f.category == "spam" and is_model_finding(f))
    model_sees_spam = site_blocked or not judged or spam["model"] >= s.spam_block_model_min
    if ("spam" in triggered and spam["combined"] >= s.spam_block and model_sees_spam
            and (spam["top_rule"] >= s.spam_block_rule_min or agree)):
        return Decision("block", "normal", cats, None, POLICY_VERSION, scores, masked)
    if (s.harassment_block is not None and "harassment" in triggered
            and sc["harassment"]["rules"] >= s.harassment_block):
        return Decision("block", "normal", cats, None, POLICY_VERSION, scores, masked)
    if any(c in triggered for c in ("spam", "unsafe_medical", "harassment")):
        return Decision("hold", "normal", cats, None, POLICY_VERSION, scores, masked)
    if "profanity" in triggered:
        if s.profanity_mode == "hold":
            return Decision("hold", "normal", cats, None, POLICY_VERSION, scores, masked)
        return Decision("publish", "normal", cats, masked, POLICY_VERSION, scores, masked)
    return Decision("publish", "normal", cats, original, POLICY_VERSION, scores, masked)
