"""State changes planned as data, without I/O: the one definition of what a decision writes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..events import Event
from .models import PRIORITY_RANK, Status, utcnow


def event_payload(comment_id: str, slug: str, status: str, priority: str,
                  categories: Iterable[str]) -> dict[str, Any]:
    """What every comment event carries: never the body, the author or anything private."""
    return {"id": comment_id, "article": slug, "status": status, "priority": priority,
            "categories": list(categories)}


STATUS_EVENT = {
    Status.APPROVED: "comment.published",
    Status.HELD: "comment.held",
    Status.REJECTED: "comment.rejected",
    Status.REPORTED: "comment.reported",
}


@dataclass(frozen=True)
class Change:
    """What one state change writes: the comment's new column values, its Decision row, and
    the events to publish once the transaction has committed."""

    comment: dict[str, Any]
    decision: dict[str, Any]
    events: list[Event]


def plan_transition(
    c: Any,
    *,
    actor: str,
    action: str,
    to_status: str,
    reason: str | None,
    priority: str | None = None,
    categories: list[str] | None = None,
    policy_version: str | None = None,
    slug: str,
) -> Change:
    """The one definition of a state change, as data: a Decision appended for the comment's
    current version, the row moved to `to_status`, the version bumped. `c` is the comment as
    it is now (an ORM object or any object with its attributes); nothing is written here."""
    new_priority = priority if priority is not None else c.priority
    rank = PRIORITY_RANK.get(new_priority, 1) if priority is not None else c.rank
    new_categories = list(categories if categories is not None else (c.categories or []))
    published = c.published_body
    if to_status == Status.APPROVED and published is None:
        # Approving publishes the masked text wherever the engine masked it.
        published = c.masked_body if c.masked_body is not None else c.body
    now = utcnow()
    comment = {"status": to_status, "priority": new_priority, "rank": rank,
               "categories": new_categories, "published_body": published, "decided_at": now,
               "version": c.version + 1}
    decision = {
        "comment_id": c.id, "comment_version": c.version, "actor": actor, "action": action,
        "from_status": c.status, "to_status": to_status, "reason": reason,
        "priority": new_priority, "categories": list(new_categories),
        "findings": list(c.findings or []), "scores": dict(c.scores or {}),
        "policy_version": policy_version or c.policy_version, "created_at": now,
    }
    payload = event_payload(c.id, slug, to_status, new_priority, new_categories)
    events: list[Event] = [(STATUS_EVENT[to_status], payload)]
    if to_status == Status.HELD and new_priority == "urgent":
        events.append(("comment.urgent", dict(payload)))
    if c.status == Status.APPROVED and to_status != Status.APPROVED:
        events.append(("comment.unpublished", dict(payload)))  # readers no longer see it
    return Change(comment, decision, events)
