"""One reader of the Redis event stream per process, fanned out to every open stream.

The events the API and the workers already write to the capped Redis stream (`events.STREAM`)
carry ids and statuses only. The hub turns those about public visibility into what a reader may
see: `published` with the comment's public view, `unpublished` with its id (only for a comment
that was public). The stream's entry id is each event's SSE `id`, so a reconnecting page asks
for what came after it (`replay`)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..events import STREAM

log = logging.getLogger("triage.streams")

# Events after which what readers of an article see may have changed.
SHOWN = "comment.published"
HIDDEN = {"comment.held", "comment.rejected", "comment.reported"}
ENTRY_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
# A page that falls this far behind is dropped; it reconnects and replays from its last id.
QUEUE_SIZE = 1000
# At most this many stream entries are read for one replay (the stream keeps about 10,000).
REPLAY_MAX = 10000

# ids -> {id: (slug, public view or None, ever public)}; see Readers.visibility.
Lookup = Callable[[Iterable[str]], dict[str, tuple[str, dict[str, Any] | None, bool]]]


@dataclass(frozen=True, slots=True)
class ReaderEvent:
    id: str
    slug: str
    kind: str  # "published" | "unpublished" | "reset"
    data: dict[str, Any]


@dataclass(eq=False)
class Subscriber:
    slug: str
    queue: asyncio.Queue[ReaderEvent] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    overflowed: bool = False


def entry_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class Hub:
    def __init__(self, redis_url: str, lookup: Lookup) -> None:
        self.client = aioredis.Redis.from_url(redis_url, socket_connect_timeout=2)
        self.lookup = lookup
        self.subscribers: dict[str, set[Subscriber]] = {}
        self.last_id = "$"
        self.delivered = 0

    @property
    def open_streams(self) -> int:
        return sum(len(s) for s in self.subscribers.values())

    def subscribe(self, slug: str) -> Subscriber:
        sub = Subscriber(slug)
        self.subscribers.setdefault(slug, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        subs = self.subscribers.get(sub.slug)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self.subscribers[sub.slug]

    async def run(self) -> None:
        """Follow the stream for as long as the process lives; Redis going away is waited out."""
        delay = 0.1
        while True:
            try:
                if self.last_id == "$":
                    # Start at the stream's end, by id, so a reconnect after an error misses nothing.
                    newest: Any = await self.client.xrevrange(STREAM, count=1)
                    self.last_id = newest[0][0].decode() if newest else "0-0"
                reply: Any = await self.client.xread({STREAM: self.last_id}, block=5000, count=500)
                delay = 0.1
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("event stream unreadable; retrying", extra={"error": str(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            for _stream, entries in reply or ():
                if not entries:
                    continue
                self.last_id = entries[-1][0].decode()
                if not self.subscribers:
                    continue
                for event in await self.translate(entries, wanted=set(self.subscribers)):
                    self._fan_out(event)

    def _fan_out(self, event: ReaderEvent) -> None:
        for sub in list(self.subscribers.get(event.slug, ())):
            try:
                sub.queue.put_nowait(event)
                self.delivered += 1
            except asyncio.QueueFull:
                sub.overflowed = True

    async def translate(self, entries: Sequence[tuple[Any, dict[Any, Any]]],
                        wanted: set[str] | None = None) -> list[ReaderEvent]:
        """Stream entries as readers' events, for the articles in `wanted` (all if None)."""
        raw: list[tuple[str, str, str]] = []
        for entry_id, fields in entries:
            try:
                event = json.loads(fields[b"event"])
                kind, payload = event["type"], event["data"]
            except (KeyError, ValueError, TypeError):
                continue
            if kind != SHOWN and kind not in HIDDEN:
                continue
            slug = str(payload.get("article", ""))
            if wanted is not None and slug not in wanted:
                continue
            eid = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
            raw.append((eid, kind, str(payload.get("id", ""))))
        if not raw:
            return []
        # One database read for the whole batch, off the event loop.
        seen = await asyncio.to_thread(self.lookup, [cid for _, _, cid in raw])
        out = []
        for eid, kind, cid in raw:
            known = seen.get(cid)
            if known is None:
                continue
            slug, view, ever_public = known
            if kind == SHOWN and view is not None:
                out.append(ReaderEvent(eid, slug, "published", view))
            elif kind in HIDDEN and view is None and ever_public:
                out.append(ReaderEvent(eid, slug, "unpublished", {"id": cid}))
        return out

    async def replay(self, slug: str, after: str) -> tuple[list[ReaderEvent], str | None]:
        """What an article's readers missed after entry `after`, and the last entry id read.
        A `reset` comes first when the stream no longer reaches back that far."""
        first: Any = await self.client.xrange(STREAM, count=1)
        entries: Any = await self.client.xrange(STREAM, min="(" + after, max="+", count=REPLAY_MAX)
        last = entries[-1][0].decode() if entries else None
        events = await self.translate(entries, wanted={slug})
        if first and entry_key(first[0][0].decode()) > entry_key(after):
            events.insert(0, ReaderEvent(last or first[0][0].decode(), slug, "reset", {}))
        return events, last

    async def close(self) -> None:
        await self.client.aclose()
