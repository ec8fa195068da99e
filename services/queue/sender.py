"""Sending moderation work by task name, so the API never imports worker code (see protocol)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Sequence
from typing import Any

import redis

from ..config import Settings
from ..events import CHANNEL, MAXLEN, STREAM, Event, encode_events
from . import protocol
from .protocol import (
    BATCH_TTL_SECONDS,
    MAX_IDS,
    MODERATE_TASK,
    Scripts,
    batch_key,
    open_batch_key,
    task_message,
)


class TaskSender:
    """Hands comments to the worker's queue in Redis (one connection pool per process)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = redis.Redis.from_url(settings.redis_url, socket_timeout=5,
                                           socket_connect_timeout=3)
        self.origin = f"{os.getpid()}@{socket.gethostname()}"
        self.scripts = Scripts(self.client)

    def _join(self, comment_ids: Sequence[str], fresh: bool = False,
              events: Sequence[Event] = ()) -> tuple[str, tuple[Any, ...]]:
        queue = self.settings.queue_name
        # The messages new batches would need are built every time (about 30 µs each), though
        # ids mostly join an open batch: asking Redis first would cost a second round trip
        # whenever one opens, which an idle worker makes nearly every time.
        pairs: list[Any] = []
        for _ in range(-(-len(comment_ids) // MAX_IDS)):  # enough for every id, whatever is open
            batch = batch_key(queue)
            pairs += [batch, task_message(MODERATE_TASK, [], queue, self.origin,
                                          kwargs={"batch": batch})]
        return ("join", (3, open_batch_key(queue), queue, STREAM, MAX_IDS, BATCH_TTL_SECONDS,
                         "1" if fresh else "0", protocol.OPEN_SECONDS, MAXLEN, CHANNEL,
                         len(comment_ids), len(pairs) // 2, *comment_ids, *pairs,
                         *encode_events(events)))

    def moderate(self, comment_id: str, request_id: str | None = None,
                 events: Sequence[Event] = ()) -> None:
        """Queue `comment_id` for moderation and publish `events`, in one script call; raises
        if Redis does not take them. (The worker reads the request id from the comment's row.)"""
        self.moderate_batch([comment_id], events)

    def moderate_batch(self, comment_ids: Sequence[str],
                       events: Sequence[Event] = ()) -> None:
        """Queue many comments, in order, and publish `events`, in one script call; raises if
        Redis does not take them."""
        if comment_ids:
            name, args = self._join(comment_ids, events=events)
            self.scripts.call(name, *args)

    def moderate_many(self, comment_ids: Iterable[str], chunk: int = 20) -> int:
        """Queue many comments (the sweeper's re-sends, a bulk import); returns how many.

        They go into new batches of their own: a re-send is for comments whose message may
        be lost, and the batch open now may be the one whose message was lost."""
        n = 0
        calls: list[tuple[str, tuple[Any, ...]]] = []
        ids: list[str] = []
        for cid in comment_ids:
            ids.append(cid)
            n += 1
            if len(ids) == MAX_IDS:
                calls.append(self._join(ids, fresh=True))
                ids = []
                if len(calls) == chunk:
                    self.scripts.run(calls)
                    calls = []
        if ids:
            calls.append(self._join(ids, fresh=True))
        if calls:
            self.scripts.run(calls)
        return n
