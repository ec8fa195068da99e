"""What the learned model learns from, and rebuilding it.

The base is the shipped seed data until a site teaches its own with `triage train`, which then
replaces the seed; moderators' approve/reject decisions always come on top (the
submit-ham/submit-spam idea). The model is stored in the database, so every worker picks the
newest one up without a restart.
"""

from __future__ import annotations

import logging
from typing import Any

from services.comments.service import CommentService

from .engine import model as model_mod

log = logging.getLogger("triage.learning")
MODEL_NAME = "engine"  # models of the n-gram + sentence format (older rows are named "spam")


def training_set(service: CommentService, max_examples: int | None = None) -> list[model_mod.Example]:
    """Site examples (or the seed when there are none) plus moderator decisions, newest last."""
    stored = service.training_examples_with_source()
    site = [model_mod.Example(b, a, lbl) for b, a, lbl, src in stored if src == "train"]
    decisions = [model_mod.Example(b, a, lbl) for b, a, lbl, src in stored if src != "train"]
    base = site or model_mod.default_examples()
    examples = base + decisions
    if max_examples is not None and len(examples) > max_examples:
        # Bounded cost: the newest examples win; the base is what is dropped first.
        examples = examples[-max_examples:]
    return examples


def retrain(service: CommentService, max_examples: int | None = None, force: bool = False) -> dict[str, Any]:
    """Rebuild and store the model if the examples changed since the stored one."""
    examples = training_set(service, max_examples)
    count = service.training_example_count()
    latest = service.latest_model_meta(MODEL_NAME)
    if not force and latest is not None and latest[1] == count:
        return {"rebuilt": False, "examples": len(examples)}
    # The shipped model's sentence head, thresholds and examples are kept: decisions teach the
    # n-gram head only, and no private comment becomes an example shown to moderators.
    blob = model_mod.train(examples, base=model_mod.default_model())
    model_id = service.save_model(MODEL_NAME, blob, count)
    log.info("model rebuilt", extra={"model_id": model_id, "examples": len(examples)})
    return {"rebuilt": True, "model_id": model_id, "examples": len(examples), "bytes": len(blob)}
