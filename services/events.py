"""Events about comments: a Redis publisher for processes, an in-memory twin for tests."""

from __future__ import annotations

import json
import time
from typing import Any, Protocol

CHANNEL = "triage:events"
STREAM = "triage:events:stream"


class Publisher(Protocol):
    def publish(self, kind: str, payload: dict[str, Any]) -> None: ...


class InMemoryPublisher:
    """Keeps events in a list; for tests and the offline CLI."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def publish(self, kind: str, payload: dict[str, Any]) -> None:
        self.events.append((kind, payload))


class RedisPublisher:
    """Publishes to a pub/sub channel (live views) and a capped stream (replay by id)."""

    def __init__(self, redis_url: str, maxlen: int = 10000) -> None:
        import redis

        self.client = redis.Redis.from_url(redis_url)
        self.maxlen = maxlen

    def publish(self, kind: str, payload: dict[str, Any]) -> None:
        data = json.dumps({"type": kind, "at": time.time(), "data": payload})
        pipe = self.client.pipeline(transaction=False)
        pipe.xadd(STREAM, {"event": data}, maxlen=self.maxlen, approximate=True)
        pipe.publish(CHANNEL, data)
        pipe.execute()
