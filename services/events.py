"""Events about comments: a Redis publisher for processes, an in-memory twin for tests."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any, Protocol

# An event: its kind ("comment.published"…) and its payload.
Event = tuple[str, dict[str, Any]]

CHANNEL = "triage:events"
STREAM = "triage:events:stream"
# Events the stream keeps for replay (trimmed approximately, as Redis trims cheaply).
MAXLEN = 10000


class Publisher(Protocol):
    def publish(self, kind: str, payload: dict[str, Any]) -> None: ...


def publish_many(publisher: Publisher, events: list[tuple[str, dict[str, Any]]]) -> None:
    """Publish several events, in one round trip where the publisher can."""
    many = getattr(publisher, "publish_many", None)
    if many is not None:
        many(events)
    else:
        for kind, payload in events:
            publisher.publish(kind, payload)


class InMemoryPublisher:
    """Keeps events in a list; for tests and the offline CLI."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def publish(self, kind: str, payload: dict[str, Any]) -> None:
        self.events.append((kind, payload))

    def publish_many(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        self.events.extend(events)


class RedisPublisher:
    """Publishes to a pub/sub channel (live views) and a capped stream (replay by id)."""

    def __init__(self, redis_url: str, maxlen: int = MAXLEN) -> None:
        import redis

        self.redis_url = redis_url
        self.client = redis.Redis.from_url(redis_url)
        self.maxlen = maxlen

    def publish(self, kind: str, payload: dict[str, Any]) -> None:
        self.publish_many([(kind, payload)])

    def publish_many(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        pipe = self.client.pipeline(transaction=False)
        add_events(pipe, events, self.maxlen)
        pipe.execute()


# The Lua twin of `add_events`, for scripts that publish events as part of their work (the
# queue's JOIN, the read cache's REPLACE): each ARGV from `first` on is an event's JSON.
LUA_PUBLISH_EVENTS = """
local function publish_events(stream, maxlen, channel, first)
  for i = first, #ARGV do
    redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'event', ARGV[i])
    redis.call('PUBLISH', channel, ARGV[i])
  end
end
"""


def encode_events(events: Sequence[tuple[str, dict[str, Any]]]) -> list[str]:
    """Events as the JSON text stored in the stream and sent on the channel."""
    now = time.time()
    return [json.dumps({"type": kind, "at": now, "data": payload}) for kind, payload in events]


def add_events(pipe: Any, events: Sequence[tuple[str, dict[str, Any]]], maxlen: int = MAXLEN) -> None:
    """Queue events on a Redis pipeline: the capped stream (replay) and the channel (live)."""
    for data in encode_events(events):
        pipe.xadd(STREAM, {"event": data}, maxlen=maxlen, approximate=True)
        pipe.publish(CHANNEL, data)
