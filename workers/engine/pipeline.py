"""normalise → filters → policy: the whole moderation chain for one comment, without I/O."""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from workers.engine.filters.base import Context, Filter, Finding
from workers.engine.model import Model, default_model
from workers.engine.normalise import normalise
from workers.engine.policy import Decision, PolicySettings, decide

# (module, class) of the filters every engine runs besides spam and profanity. All are
# mandatory: an engine without its self-harm filter would publish crises.
REQUIRED_FILTERS = (
    ("workers.engine.filters.medical", "MedicalFilter"),
    ("workers.engine.filters.self_harm", "SelfHarmFilter"),
    ("workers.engine.filters.harassment", "HarassmentFilter"),
)
_BACKUP_CATEGORIES = ("unsafe_medical", "harassment", "self_harm")


@dataclass(frozen=True, slots=True)
class Verdict:
    """A decision together with the findings behind it."""

    decision: Decision
    findings: tuple[Finding, ...]
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def action(self) -> str:
        return self.decision.action

    @property
    def priority(self) -> str:
        return self.decision.priority

    @property
    def published_body(self) -> str | None:
        return self.decision.published_body

    @property
    def categories(self) -> tuple[str, ...]:
        return self.decision.categories

    @property
    def policy_version(self) -> str | None:
        return self.decision.policy_version

    @property
    def masked_body(self) -> str | None:
        return self.decision.masked_body

    @property
    def reason(self) -> str | None:
        return self.decision.reason

    def to_json(self) -> dict[str, Any]:
        """{"action","priority","categories","published_body","findings","scores","policy_version"}."""
        d = self.decision
        return {
            "action": d.action,
            "priority": d.priority,
            "categories": list(d.categories),
            "published_body": d.published_body,
            "findings": [f.to_json() for f in self.findings],
            "scores": dict(self.scores),
            "policy_version": d.policy_version,
        }


class FilterUnavailable(RuntimeError):
    """A mandatory filter cannot be loaded: the process must not moderate without it."""


def required_filter_classes() -> list[type[Filter]]:
    """The mandatory filters' classes; raises FilterUnavailable if one cannot be imported."""
    classes: list[type[Filter]] = []
    for module, cls in REQUIRED_FILTERS:
        try:
            classes.append(getattr(importlib.import_module(module), cls))
        except Exception as exc:
            raise FilterUnavailable(f"filter {module}.{cls} unavailable: {exc!r}") from exc
    return classes


def default_filters(model: Model | None) -> list[Filter]:
    """Spam, profanity, and the medical/self-harm/harassment filters (all mandatory)."""
    from workers.engine.filters.profanity import ProfanityFilter
    from workers.engine.filters.spam import SpamFilter

    filters: list[Filter] = [SpamFilter(model=model), ProfanityFilter()]
    filters.extend(cls() for cls in required_filter_classes())
    return filters


class Engine:
    """Holds the model and filters for one process; `classify` is pure given them."""

    def __init__(self, settings: PolicySettings | None = None, model: Model | None = None,
                 filters: Sequence[Filter] | None = None) -> None:
        self.settings = settings or PolicySettings()
        self.model = model if model is not None else default_model()
        self.filters = list(filters) if filters is not None else default_filters(self.model)

    def classify(self, body: str, author: str | None = None, context: Context | None = None,
                 banned: bool = False) -> Verdict:
        """Moderate one comment (`banned`: its author is banned on this site)."""
        ctx = context or Context(author=author)
        if author is not None and ctx.author is None:
            ctx = replace(ctx, author=author)
        text = normalise(body)
        probs = self.model.predict(text, ctx.author) if self.model is not None else {}
        extra = {**ctx.extra, "model_probs": probs}
        if type(ctx) is Context:  # built directly: dataclasses.replace costs more than the rest here
            ctx = Context(author=ctx.author, article=ctx.article, recent_duplicates=ctx.recent_duplicates,
                          trusted_author=ctx.trusted_author, extra=extra)
        else:
            ctx = replace(ctx, extra=extra)
        findings: list[Finding] = []
        for f in self.filters:
            findings.extend(f.check(text, ctx))
        if probs:
            mid = self.model.model_id
            for cat in _BACKUP_CATEGORIES:
                p = probs.get(cat, 0.0)
                if p >= 0.2:
                    findings.append(Finding(cat, p, f"{cat}.{mid}", (), "learned model"))
        decision = decide(findings, self.settings, body, banned=banned)
        return Verdict(decision, tuple(findings), decision.scores)

    def classify_batch(self, items: Iterable[dict[str, Any]]) -> list[Verdict]:
        """Moderate many comments ({body, author?}); duplicates within the batch count as recent."""
        items = list(items)
        keys = [" ".join(normalise(it["body"]).normalised.split()) for it in items]
        counts = Counter(keys)
        out = []
        for it, key in zip(items, keys):
            ctx = Context(author=it.get("author"), recent_duplicates=counts[key] - 1)
            out.append(self.classify(it["body"], it.get("author"), ctx))
        return out


def error_verdict(exc: Exception) -> Verdict:
    """A comment the engine cannot handle is held for a person, never retried forever."""
    return Verdict(Decision("hold", "normal", ("error",), None, None, {}, None, "error"),
                   (Finding("error", 1.0, "engine.error", (), type(exc).__name__),), {})
