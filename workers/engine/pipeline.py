"""normalise → filters → policy: the whole moderation chain for one comment, without I/O."""

from __future__ import annotations

import importlib
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from workers.engine.filters.base import Context, Filter, Finding, Text, merge_spans
from workers.engine.model import Model, SentenceFeatures, default_model
from workers.engine.normalise import normalise
from workers.engine.policy import Decision, PolicySettings, decide

# (module, class) of the filters every engine runs besides spam and profanity. All are
# mandatory: an engine without its self-harm filter would publish crises.
REQUIRED_FILTERS = (
    ("workers.engine.filters.medical", "MedicalFilter"),
    ("workers.engine.filters.self_harm", "SelfHarmFilter"),
    ("workers.engine.filters.harassment", "HarassmentFilter"),
)
_MODEL_ONLY_CATEGORIES = ("unsafe_medical", "harassment", "self_harm")


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
                 banned: bool = False, vector: Any = None,
                 features: SentenceFeatures | None = None) -> Verdict:
        """Moderate one comment (`banned`: its author is banned on this site; `vector`, or
        `features` with its neighbours too: what the encoder gave it in a batch)."""
        ctx = context or Context(author=author)
        if author is not None and ctx.author is None:
            ctx = replace(ctx, author=author)
        text = normalise(body)
        model = self.model
        probs: dict[str, float] = {}
        near = None
        if features is not None:
            vector, near = features.vector, features.near
        if model is not None:
            if vector is None and model.has_sentence_head:
                vecs = model.vectors([text])
                vector = None if vecs is None else vecs[0]
            probs = model.predict(text, ctx.author, vector, near)
        extra = {**ctx.extra, "model_probs": probs}
        if type(ctx) is Context:  # built directly: dataclasses.replace costs more than the rest here
            ctx = Context(author=ctx.author, article=ctx.article, recent_duplicates=ctx.recent_duplicates,
                          trusted_author=ctx.trusted_author, extra=extra)
        else:
            ctx = replace(ctx, extra=extra)
        findings: list[Finding] = []
        for f in self.filters:
            findings.extend(f.check(text, ctx))
        if model is not None and probs:
            for cat in _MODEL_ONLY_CATEGORIES:
                p = probs.get(cat, 0.0)
                if p >= model.thresholds[cat]:
                    findings.append(self._model_finding(text, ctx.author, cat, p, vector))
        decision = decide(findings, self.settings, body, banned=banned)
        return Verdict(decision, tuple(findings), decision.scores)

    def _model_finding(self, text: Text, author: str | None, category: str, p: float, vector: Any) -> Finding:
        """A model doubt, with the words that weighed most and the nearest labelled examples."""
        model = self.model
        assert model is not None
        words = model.weighty_words(text, author, category)
        spans = tuple(merge_spans(text.span(m.start(), m.end()) for w in words
                                  for m in re.finditer(r"(?<!\w)" + re.escape(w) + r"(?!\w)", text.normalised)))
        like = model.similar(vector, category)
        detail = "learned model"
        if words:
            detail += "; words: " + ", ".join(words)
        if like:
            detail += "; like: " + " | ".join(f"{e.ref}: {e.text[:90]}" for e in like)
        return Finding(category, p, f"{category}.{model.model_id}", spans, detail)

    def sentence_vectors(self, bodies: Sequence[str]) -> Any:
        """The sentence vectors of many comments in one pass (None: the model has no sentence head)."""
        if self.model is None or not self.model.has_sentence_head:
            return None
        return self.model.vectors([normalise(b) for b in bodies])

    def sentence_features(self, bodies: Sequence[str]) -> list[SentenceFeatures] | None:
        """`sentence_vectors`, with each comment's nearest training comments found for the
        whole batch at once."""
        if self.model is None:
            return None
        return self.model.features(self.sentence_vectors(bodies))

    def classify_batch(self, items: Iterable[dict[str, Any]]) -> list[Verdict]:
        """Moderate many comments ({body, author?}); the same author repeating a text counts as
        a recent duplicate (two people saying "thank you" do not)."""
        items = list(items)
        texts = [normalise(it["body"]) for it in items]
        keys = [(it.get("author"), " ".join(t.normalised.split())) for it, t in zip(items, texts)]
        counts = Counter(keys)
        feats = self.model.features(self.model.vectors(texts)) if self.model is not None else None
        out = []
        for i, (it, key) in enumerate(zip(items, keys)):
            ctx = Context(author=it.get("author"), recent_duplicates=counts[key] - 1)
            out.append(self.classify(it["body"], it.get("author"), ctx,
                                     features=None if feats is None else feats[i]))
        return out


def error_verdict(exc: Exception) -> Verdict:
    """A comment the engine cannot handle is held for a person, never retried forever."""
    return Verdict(Decision("hold", "normal", ("error",), None, None, {}, None, "error"),
                   (Finding("error", 1.0, "engine.error", (), type(exc).__name__),), {})
