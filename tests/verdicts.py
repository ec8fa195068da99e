"""Engine verdicts for tests that record a decision without running the engine."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from workers.engine.filters.base import Finding
from workers.engine.pipeline import Verdict
from workers.engine.policy import Decision


def verdict(action: str, priority: str = "normal", categories: Iterable[str] = (),
            findings: Iterable[Mapping[str, Any]] = (), scores: Mapping[str, float] | None = None,
            published_body: str | None = None, masked_body: str | None = None,
            policy_version: str | None = "policy@test", reason: str | None = None) -> Verdict:
    """A Verdict as the engine would return it, findings given in their JSON shape."""
    found = tuple(Finding(f["category"], f["score"], f.get("rule", ""),
                          tuple((a, b) for a, b in f.get("spans", ())), f.get("detail", ""))
                  for f in findings)
    sc = dict(scores or {})
    return Verdict(Decision(action, priority, tuple(categories), published_body, policy_version,
                            sc, masked_body, reason), found, sc)
