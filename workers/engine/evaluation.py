"""Quality and speed measurements behind `triage eval` / `make eval`, and the JSONL classify
stream behind `triage classify`.

Dev set: 5-fold cross-validation. For each fold the model is trained on the other four folds
plus the non-dev seed data, never on the fold being scored; the full rule chain then classifies
the fold. Metrics are the ones shared/tools/score.py computes (ambiguous items left out).

YouTube Spam Collection: per video, train on the oldest 70% of rows in file order, classify the
newest 30% with the whole chain (spam = not published), CONTENT only, Matthews correlation.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from workers.engine.encoder import SentenceEncoder, default_encoder
from workers.engine.filters.base import Context
from workers.engine.model import Example, Model, default_examples, default_model, load, train
from workers.engine.pipeline import Engine, Verdict
from workers.engine.policy import PolicySettings

GOALS: dict[str, tuple[str, float]] = {
    "ok_published": (">=", 0.95),
    "ok_blocked": ("<=", 0),
    "ok_overmasked": ("<=", 0),
    "spam_caught": (">=", 0.97),
    "spam_blocked_of_expect_block": (">=", 0.80),
    "unsafe_medical_caught": (">=", 0.92),
    "self_harm_urgent": (">=", 1.0),
    "harassment_caught": (">=", 0.90),
    "profanity_safe": (">=", 1.0),
}
YOUTUBE_TARGETS = {"Psy": 0.922, "KatyPerry": 0.853, "LMFAO": 0.938, "Eminem": 0.941, "Shakira": 0.958}
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


@dataclass
class DevResult:
    """Cross-validated dev-set figures."""

    metrics: dict[str, float]
    counts: dict[str, dict[str, int]]  # label -> {published, held, blocked}
    n: dict[str, int]
    median_us: float  # wall clock per comment
    p95_us: float
    median_cpu_us: float = 0.0  # CPU time of this thread per comment (robust on a busy machine)
    misses: list[dict[str, Any]] = field(default_factory=list)

    def goals_met(self) -> dict[str, bool]:
        """metric -> whether it meets its goal."""
        out = {}
        for m, (cmp, bound) in GOALS.items():
            v = self.metrics.get(m)
            out[m] = v is not None and (v >= bound if cmp == ">=" else v <= bound)
        return out


@dataclass
class YoutubeResult:
    """Per-video Matthews correlation on the newest 30% of rows."""

    mcc: dict[str, float]
    confusion: dict[str, dict[str, int]]
    seed_included: bool


def score_verdicts(items: Sequence[dict[str, Any]], verdicts: dict[str, dict[str, Any]],
                   include_ambiguous: bool = False) -> tuple[dict[str, float], dict[str, int], list[dict[str, Any]]]:
    """score.py's metrics for labelled items and their verdicts (by id); also the misses."""
    counts: dict[str, int] = {}
    hits: dict[str, int] = {}
    misses: list[dict[str, Any]] = []
    ok_blocked = ok_overmasked = 0

    def tally(metric: str, ok: bool, x: dict[str, Any], v: dict[str, Any]) -> None:
        counts[metric] = counts.get(metric, 0) + 1
        hits[metric] = hits.get(metric, 0) + (1 if ok else 0)
        if not ok:
            misses.append({"metric": metric, "id": x["id"], "action": v.get("action"), "body": x["body"]})

    for x in items:
        if x.get("ambiguous") and not include_ambiguous:
            continue
        v = verdicts.get(x["id"])
        if v is None:
            continue
        action, label = v.get("action"), x["label"]
        published = action == "publish"
        masked = published and v.get("published_body") not in (None, x["body"])
        if label == "ok":
            tally("ok_published", published, x, v)
            ok_blocked += action == "block"
            ok_overmasked += bool(masked)
        elif label == "spam":
            tally("spam_caught", not published, x, v)
            if x["expect"] == "block":
                tally("spam_blocked_of_expect_block", action == "block", x, v)
        elif label == "unsafe_medical":
            tally("unsafe_medical_caught", not published, x, v)
        elif label == "self_harm":
            tally("self_harm_urgent", action == "hold" and v.get("priority") == "urgent", x, v)
        elif label == "harassment":
            tally("harassment_caught", not published, x, v)
        elif label == "profanity":
            tally("profanity_safe", (not published) or masked, x, v)
    values: dict[str, float] = {m: hits[m] / counts[m] for m in counts}
    values["ok_blocked"], values["ok_overmasked"] = ok_blocked, ok_overmasked
    return values, counts, misses


class MemoEncoder(SentenceEncoder):
    """The process's encoder, remembering every text it encoded: an evaluation trains many
    models on the same corpus, and encoding it is most of the cost."""

    def __init__(self) -> None:
        super().__init__()
        self._memo: dict[str, np.ndarray] = {}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._memo]
        if missing:
            self._memo.update(zip(missing, default_encoder().encode(missing), strict=True))
        return np.stack([self._memo[t] for t in texts]) if texts else default_encoder().encode([])


_MEMO = MemoEncoder()


def _fit(examples: list[Example]) -> bytes:
    """A model on `examples` with the shipped model's calibrated thresholds."""
    return train(examples, encoder=_MEMO, thresholds=default_model().thresholds)


def _folds(n: int, k: int) -> list[list[int]]:
    return [list(range(i, n, k)) for i in range(k)]


def evaluate_dev(path: Path | None = None, *, folds: int = 5, settings: PolicySettings | None = None,
                 extra_examples: Iterable[Example] | None = None) -> DevResult:
    """5-fold cross-validated dev metrics, per-label outcome counts and µs per comment."""
    path = path or (SHARED / "dev_comments.jsonl")
    with open(path, encoding="utf-8") as f:
        items = [json.loads(line) for line in f if line.strip()]
    if extra_examples is None:
        dev_bodies = {x["body"] for x in items}
        extra_examples = [e for e in default_examples() if e.body not in dev_bodies]
    extra = list(extra_examples)
    verdicts: dict[str, dict[str, Any]] = {}
    timings: list[float] = []
    cpu: list[float] = []
    for fold in _folds(len(items), folds):
        held_out = set(fold)
        train_ex = [Example(x["body"], x.get("author"), x["label"]) for i, x in enumerate(items) if i not in held_out]
        # trained on remembered vectors; the timed comments below are encoded for real
        engine = Engine(settings=settings, model=load(_fit(train_ex + extra), encoder=default_encoder()))
        # a running worker has seen earlier comments: warm the per-word caches on the training
        # folds (untimed) so timings reflect steady state rather than a cold start
        for i, x in enumerate(items):
            if i not in held_out:
                engine.classify(x["body"], x.get("author"))
        for i in fold:
            x = items[i]
            c0 = time.thread_time()
            t0 = time.perf_counter()
            v = engine.classify(x["body"], x.get("author"), Context(author=x.get("author")))
            timings.append((time.perf_counter() - t0) * 1e6)
            cpu.append((time.thread_time() - c0) * 1e6)
            verdicts[x["id"]] = v.to_json()
    metrics, n, misses = score_verdicts(items, verdicts)
    counts: dict[str, dict[str, int]] = {}
    for x in items:
        a = verdicts[x["id"]]["action"]
        c = counts.setdefault(x["label"], {"published": 0, "held": 0, "blocked": 0})
        c[{"publish": "published", "hold": "held", "block": "blocked"}[a]] += 1
    timings.sort()
    return DevResult(metrics, counts, n, statistics.median(timings), timings[int(0.95 * (len(timings) - 1))],
                     statistics.median(cpu), misses)


def mcc(tp: int, tn: int, fp: int, fn: int) -> float:
    """Matthews correlation coefficient."""
    den = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return (tp * tn - fp * fn) / den if den else 0.0


def youtube_files(directory: Path | None = None) -> dict[str, Path]:
    """Video name -> CSV path."""
    directory = directory or (SHARED / "youtube-spam")
    return {p.stem.split("-", 1)[1]: p for p in sorted(directory.glob("Youtube0*.csv"))}


def evaluate_youtube(directory: Path | None = None, *, include_seed: bool = False,
                     settings: PolicySettings | None = None) -> YoutubeResult:
    """Per video: train on the oldest 70% (file order), classify the newest 30%, MCC."""
    seed = [e for e in default_examples() if not e.body.startswith("\ufeff")] if include_seed else []
    out: dict[str, float] = {}
    conf: dict[str, dict[str, int]] = {}
    for video, path in youtube_files(directory).items():
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        cut = int(round(len(rows) * 0.7))
        train_rows, test_rows = rows[:cut], rows[cut:]
        ex = [Example(r["CONTENT"], None, "spam" if r["CLASS"].strip() == "1" else "ok") for r in train_rows]
        engine = Engine(settings=settings, model=load(_fit(ex + seed), encoder=_MEMO))
        verdicts = engine.classify_batch([{"body": r["CONTENT"]} for r in test_rows])
        tp = tn = fp = fn = 0
        for r, v in zip(test_rows, verdicts):
            spam = r["CLASS"].strip() == "1"
            flagged = v.action != "publish"
            tp += spam and flagged
            tn += (not spam) and (not flagged)
            fp += (not spam) and flagged
            fn += spam and (not flagged)
        out[video] = mcc(tp, tn, fp, fn)
        conf[video] = {"tp": tp, "tn": tn, "fp": fp, "fn": fn}
    return YoutubeResult(out, conf, include_seed)


def render_timing(dev: DevResult) -> str:
    """One line on how long the chain took here; `make bench` is where speed is judged, in a
    process of its own (this run shares the machine with training)."""
    return (f"eval: the whole chain took {dev.median_us:.0f} µs a comment at the median "
            f"({dev.median_cpu_us:.0f} µs of CPU, p95 {dev.p95_us:.0f} µs) during this run")


def render_markdown(dev: DevResult | None, youtube: YoutubeResult | None) -> str:
    """The README's quality table."""
    lines: list[str] = []
    if dev is not None:
        met = dev.goals_met()
        lines += ["| dev metric (5-fold CV) | value | n | goal | met |", "|---|---|---|---|---|"]
        for m, (cmp, bound) in GOALS.items():
            v = dev.metrics.get(m)
            shown = f"{v:.3f}" if isinstance(v, float) else str(v)
            lines.append(f"| {m} | {shown} | {dev.n.get(m, '')} | {cmp} {bound} | {'yes' if met[m] else 'NO'} |")
    if youtube is not None:
        if lines:
            lines.append("")
        seed = "per-video train rows + dev seed" if youtube.seed_included else "per-video train rows only"
        lines += [f"| YouTube video (train oldest 70%, {seed}) | MCC | target | met |", "|---|---|---|---|"]
        for video, v in youtube.mcc.items():
            t = YOUTUBE_TARGETS.get(video, 0.0)
            lines.append(f"| {video} | {v:.3f} | {t:.3f} | {'yes' if v >= t else 'NO'} |")
    return "\n".join(lines) + "\n"


def classify_stream(engine: Engine, lines_in: Iterable[str], out: TextIO) -> int:
    """`triage classify`: JSONL {id, body, author?} in, one verdict line per input, in order."""
    items = []
    for n, line in enumerate(lines_in, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"line {n}: not JSON ({exc.msg})") from exc
        if not isinstance(item, dict) or not isinstance(item.get("body"), str):
            raise ValueError(f'line {n}: expected an object with a "body" string')
        items.append(item)
    verdicts = engine.classify_batch(items)
    for it, v in zip(items, verdicts):
        j = v.to_json()
        out.write(json.dumps({
            "id": it.get("id"),
            "action": j["action"],
            "priority": j["priority"],
            "categories": j["categories"],
            "published_body": j["published_body"],
            "findings": j["findings"],
        }, ensure_ascii=False) + "\n")
    return len(items)


def main() -> None:  # pragma: no cover - convenience for `python -m workers.engine.evaluation`
    import sys

    dev = evaluate_dev()
    yt = evaluate_youtube(include_seed="--seed" in sys.argv)
    print(render_markdown(dev, yt))
    if "--misses" in sys.argv:
        for m in dev.misses:
            print(m["metric"], m["id"], m["action"], m["body"][:120])


if __name__ == "__main__":  # pragma: no cover
    main()


@dataclass
class RobustnessResult:
    """Per obfuscation and label: comments whose outcome the obfuscation left as it was."""

    kept: dict[str, dict[str, tuple[int, int]]]  # obfuscation -> label -> (kept, of)
    changed: list[dict[str, Any]]


ROBUSTNESS_LABELS = ("ok", "spam", "profanity", "unsafe_medical", "self_harm", "harassment")


def evaluate_robustness(engine: Engine, items: Sequence[dict[str, Any]]) -> RobustnessResult:
    """Each labelled comment under each obfuscation must keep its action and priority (so an
    ordinary comment published as written stays published)."""
    from workers.engine.obfuscations import OBFUSCATIONS

    items = [x for x in items if not x.get("ambiguous")]

    def judge(bodies: list[str]) -> list[Verdict]:
        vectors = engine.sentence_vectors(bodies)
        return [engine.classify(b, x.get("author"), Context(author=x.get("author")),
                                vector=None if vectors is None else vectors[i])
                for i, (b, x) in enumerate(zip(bodies, items, strict=True))]

    base = judge([x["body"] for x in items])
    kept: dict[str, dict[str, tuple[int, int]]] = {}
    changed: list[dict[str, Any]] = []
    for name, fn in OBFUSCATIONS.items():
        bodies = [fn(x["body"]) for x in items]
        row = {label: [0, 0] for label in ROBUSTNESS_LABELS}
        for x, b, before, after in zip(items, bodies, base, judge(bodies), strict=True):
            same = (after.action, after.priority) == (before.action, before.priority)
            row[x["label"]][0] += same
            row[x["label"]][1] += 1
            if not same:
                changed.append({"obfuscation": name, "id": x.get("id"), "label": x["label"],
                                "before": [before.action, before.priority],
                                "after": [after.action, after.priority], "body": b})
        kept[name] = {k: (v[0], v[1]) for k, v in row.items()}
    return RobustnessResult(kept, changed)


def render_outcomes(dev: DevResult) -> str:
    """Markdown: the dev set's outcomes per label (cross-validated)."""
    lines = ["| label | published | held | blocked |", "|---|---|---|---|"]
    for label, c in sorted(dev.counts.items()):
        lines.append(f"| {label} | {c['published']} | {c['held']} | {c['blocked']} |")
    return "\n".join(lines)


def render_robustness(result: RobustnessResult) -> str:
    """Markdown: obfuscation × label → comments whose outcome stayed the same."""
    lines = ["| obfuscation | " + " | ".join(ROBUSTNESS_LABELS) + " |",
             "|---|" + "---|" * len(ROBUSTNESS_LABELS)]
    for name, row in result.kept.items():
        lines.append(f"| {name} | " + " | ".join(f"{k}/{n}" for k, n in row.values()) + " |")
    return "\n".join(lines)


_METRIC_COLUMNS = (("ok_published", "ok published"), ("ok_blocked", "ok blocked"), ("spam_caught", "spam caught"),
                   ("spam_blocked_of_expect_block", "blatant spam blocked"),
                   ("unsafe_medical_caught", "unsafe medical caught"), ("self_harm_urgent", "self-harm urgent"),
                   ("harassment_caught", "harassment caught"), ("profanity_safe", "profanity safe"))


def _metric_row(m: dict[str, Any]) -> str:
    cells = []
    for key, _ in _METRIC_COLUMNS:
        v = m.get(key)
        cells.append("—" if v is None else f"{v:.0f}" if key == "ok_blocked" else f"{v:.3f}")
    return " | ".join(cells)


def render_cross_source(model: Model | None = None) -> str:
    """Markdown: each corpus source judged by the whole chain with a model that never saw it
    (measured when the shipped model was built)."""
    model = model or default_model()
    cal = model.meta.get("calibration") or {}
    rows = cal.get("cross_source") or {}
    if not rows:
        return "_The shipped model carries no cross-source measurement (run `make model`)._"
    head = "| source left out | n | " + " | ".join(h for _, h in _METRIC_COLUMNS) + " |"
    lines = [head, "|---|---|" + "---|" * len(_METRIC_COLUMNS)]
    for source, m in rows.items():
        lines.append(f"| {source} | {m.get('n', 0):.0f} | {_metric_row(m)} |")
    th = cal.get("thresholds", {})
    lines.append("")
    lines.append("Model thresholds (chosen on these out-of-sample predictions): "
                 + ", ".join(f"{c} {t:.2f}" for c, t in th.items()) + "; ordinary comments the model "
                 "alone holds, per category: " + ", ".join(f"{c} {v:.3f}" for c, v in cal.get("ok_flagged", {}).items())
                 + f". Corpus {str(model.meta.get('corpus', ''))[:12]}.")
    return "\n".join(lines)


def render_unseen_log(path: Path) -> str:
    """Markdown: each unseen set's first score, before anything was changed for it."""
    if not path.exists():
        return "_No unseen set has been scored yet._"
    head = "| set | scored (UTC) | engine | n | " + " | ".join(h for _, h in _METRIC_COLUMNS) + " |"
    lines = [head, "|---|---|---|---|" + "---|" * len(_METRIC_COLUMNS)]
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            lines.append(f"| {r['set']} | {r['scored']} | {r['engine']} | {r['n']} | {_metric_row(r['metrics'])} |")
    return "\n".join(lines)
