"""How the shipped model is built: out-of-sample predictions for every corpus comment (each
source scored by a model trained on the others), thresholds chosen on them, then the final
model on everything. Run by `triage model build`; scikit-learn is needed here only."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workers.engine import corpus
from workers.engine.encoder import SentenceEncoder, default_encoder
from workers.engine.filters.base import Context, Finding
from workers.engine.model import DEFAULT_THRESHOLDS, Example, load, train
from workers.engine.normalise import normalise
from workers.engine.policy import PolicySettings, category_scores

log = logging.getLogger(__name__)

# Share of each category's out-of-sample comments that rules and model together must catch; the
# model's threshold is the highest that reaches it. A missed crisis costs most, so its bar is
# highest, paid for in ordinary comments held for a moderator (reported beside it).
RECALL_TARGETS = {"self_harm": 0.97, "unsafe_medical": 0.93, "harassment": 0.93}


@dataclass
class Calibration:
    """Chosen thresholds and what they cost, measured out of sample."""

    thresholds: dict[str, float]
    recall: dict[str, float]  # rules or model, per category
    recall_rules: dict[str, float]  # rules alone
    ok_flagged: dict[str, float]  # ordinary comments the model alone holds, per category
    n: dict[str, int] = field(default_factory=dict)
    cross_source: dict[str, dict[str, float]] = field(default_factory=dict)


def examples(items: Sequence[corpus.Labelled]) -> list[Example]:
    return [Example(x.body, x.author, x.label) for x in items]


def rule_hits(items: Sequence[corpus.Labelled]) -> dict[str, np.ndarray]:
    """Per category, which comments the rules alone hold (no model involved)."""
    from workers.engine.pipeline import required_filter_classes

    filters = [cls() for cls in required_filter_classes()]  # medical, self-harm, harassment
    settings = PolicySettings()
    out = {c: np.zeros(len(items), dtype=bool) for c in RECALL_TARGETS}
    for i, x in enumerate(items):
        text = normalise(x.body)
        ctx = Context(author=x.author, extra={"model_probs": {}})
        found = [f for flt in filters for f in flt.check(text, ctx)]
        sc = category_scores(found, settings)
        for c in RECALL_TARGETS:
            out[c][i] = sc[c]["rules"] >= settings.hold_threshold(c)
    return out


@dataclass
class OutOfSample:
    """For every corpus comment, from a model that never saw its source: the probabilities of
    the model-only categories, and the findings of the whole chain without model-only ones."""

    probs: dict[str, np.ndarray]
    findings: list[tuple[Finding, ...]]


def out_of_sample(srcs: dict[str, list[corpus.Labelled]], vectors: dict[str, np.ndarray],
                  encoder: SentenceEncoder, progress: Callable[[str], None] = lambda s: None,
                  ) -> OutOfSample:
    """One model per left-out source, scoring that source."""
    from workers.engine.pipeline import Engine

    names = list(srcs)
    n = sum(len(srcs[s]) for s in names)
    probs = {c: np.zeros(n) for c in RECALL_TARGETS}
    findings: list[tuple[Finding, ...]] = []
    start = 0
    for s in names:
        others = [o for o in names if o != s]
        model = load(train(examples([x for o in others for x in srcs[o]]), encoder=encoder,
                           vectors=np.vstack([vectors[o] for o in others])), encoder=encoder)
        model.thresholds = dict.fromkeys(model.thresholds, 2.0)  # model-only findings: added later
        engine = Engine(model=model)
        for j, x in enumerate(srcs[s]):
            v = engine.classify(x.body, x.author, Context(author=x.author), vector=vectors[s][j])
            findings.append(v.findings)
            p = model.predict(normalise(x.body), x.author, vectors[s][j])
            for c in RECALL_TARGETS:
                probs[c][start + j] = p.get(c, 0.0)
        start += len(srcs[s])
        progress(s)
    return OutOfSample(probs, findings)


def cross_source(srcs: dict[str, list[corpus.Labelled]], oos: OutOfSample,
                 thresholds: dict[str, float]) -> dict[str, dict[str, float]]:
    """score.py's metrics per source for the whole chain: each source judged by a model that
    never saw it, with the chosen thresholds."""
    from workers.engine.evaluation import score_verdicts
    from workers.engine.policy import decide

    settings = PolicySettings()
    out: dict[str, dict[str, float]] = {}
    i = 0
    for s, items in srcs.items():
        verdicts: dict[str, dict[str, Any]] = {}
        for x in items:
            found = list(oos.findings[i])
            for c, t in thresholds.items():
                if oos.probs[c][i] >= t:
                    found.append(Finding(c, float(oos.probs[c][i]), f"{c}.model@oos", (), "learned model"))
            d = decide(found, settings, x.body)
            verdicts[x.ref] = {"action": d.action, "priority": d.priority, "published_body": d.published_body}
            i += 1
        rows = [{"id": x.ref, "body": x.body, "label": x.label, "ambiguous": x.ambiguous,
                 "expect": x.expect} for x in items]
        metrics, counts, _ = score_verdicts(rows, verdicts)
        out[s] = {k: float(v) for k, v in metrics.items()} | {"n": float(len(items))}
    return out


def choose(items: Sequence[corpus.Labelled], probs: dict[str, np.ndarray],
           rules: dict[str, np.ndarray], targets: dict[str, float] = RECALL_TARGETS) -> Calibration:
    """The highest threshold per category at which rules or model reach the recall target."""
    labels = np.array([x.label for x in items])
    keep = ~np.array([x.ambiguous for x in items])
    ok = keep & (labels == "ok")
    cal = Calibration({}, {}, {}, {})
    for c, target in targets.items():
        pos = keep & (labels == c)
        p, r = probs[c][pos], rules[c][pos]
        chosen = DEFAULT_THRESHOLDS[c]
        for t in np.round(np.arange(0.9, 0.0, -0.01), 2):
            if np.mean(r | (p >= t)) >= target:
                chosen = float(t)
                break
        else:
            chosen = 0.01
        cal.thresholds[c] = chosen
        cal.recall[c] = float(np.mean(r | (p >= chosen)))
        cal.recall_rules[c] = float(np.mean(r))
        cal.ok_flagged[c] = float(np.mean(probs[c][ok] >= chosen))
        cal.n[c] = int(pos.sum())
    return cal


def build(encoder: SentenceEncoder | None = None, progress: Callable[[str], None] = lambda s: None,
          ) -> tuple[bytes, Calibration]:
    """The shipped model: calibrated on out-of-sample predictions, trained on the whole corpus."""
    enc = encoder or default_encoder()
    srcs = corpus.sources()
    vectors = {s: enc.encode([normalise(x.body).normalised for x in items]) for s, items in srcs.items()}
    progress("encoded")
    items = [x for s in srcs for x in srcs[s]]
    oos = out_of_sample(srcs, vectors, enc, progress)
    cal = choose(items, oos.probs, rule_hits(items))
    cal.cross_source = cross_source(srcs, oos, cal.thresholds)
    blob = train(examples(items), encoder=enc, vectors=np.vstack([vectors[s] for s in srcs]),
                 thresholds=cal.thresholds, refs=[x.ref for x in items],
                 meta={"corpus": corpus.digest(), "calibration": _as_json(cal)})
    return blob, cal


def _as_json(cal: Calibration) -> dict[str, Any]:
    return {"thresholds": cal.thresholds, "recall": cal.recall, "recall_rules": cal.recall_rules,
            "ok_flagged": cal.ok_flagged, "n": cal.n, "cross_source": cal.cross_source}
