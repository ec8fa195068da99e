"""Events become deliveries: the pump reads the event stream as a Redis consumer group.

The moderation path publishes its events as ever (services.events) and knows nothing of
webhooks: a receiver, slow or down, costs it nothing. An event is acknowledged in the group
only once its deliveries are committed, so a pump that dies mid-way reads it again, and the
(endpoint, event) uniqueness of deliveries makes the second reading create nothing twice."""

from __future__ import annotations

import json
from typing import Any

import redis

from ..events import STREAM

GROUP = "triage-webhooks"
CONSUMER = "pump"


def ensure_group(client: redis.Redis) -> None:
    try:
        # From now on: events older than the group are not replayed to endpoints.
        client.xgroup_create(STREAM, GROUP, id="$", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def read(client: redis.Redis, count: int = 500) -> list[tuple[str, str, dict[str, Any], float]]:
    """(stream id, kind, payload, time) of events not yet acknowledged: first those read
    before and never acknowledged, then new ones."""
    ensure_group(client)
    out: list[tuple[str, str, dict[str, Any], float]] = []
    for start in ("0", ">"):
        reply: Any = client.xreadgroup(GROUP, CONSUMER, {STREAM: start}, count=count)
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                eid = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                raw = fields.get(b"event") or fields.get("event")
                try:
                    event = json.loads(raw)
                    out.append((eid, str(event["type"]), dict(event.get("data") or {}),
                                float(event.get("at") or 0)))
                except (TypeError, ValueError, KeyError):
                    out.append((eid, "", {}, 0.0))  # not ours to read: acknowledged, skipped
        if out:
            break
    return out


def ack(client: redis.Redis, ids: list[str]) -> None:
    if ids:
        client.xack(STREAM, GROUP, *ids)
