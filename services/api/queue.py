"""Sending moderation work by task name, so the API never imports worker code.

Every accepted comment is handed to the queue once, after its row is committed. One Celery
message per comment would cap the pipeline at what a worker can take out of Redis message by
message (about a thousand a second here, whatever the task does), so comments waiting for a
worker share a message:

- Comments go into a *batch*, a Redis list of ids. A batch is open until a worker starts on
  it. The first comment of a batch also pushes one Celery message,
  `moderation.moderate_comments(batch=<key>)`; later comments only join the open batch, up to
  `MAX_IDS`, and the next one opens a new batch.
- An idle worker starts on a message at once, which closes its batch: a lone comment is never
  kept waiting for company. A busy worker finds its backlog already packed, so it pays a
  message's cost once per batch and loads and records a batch in one transaction.
- Joining and closing are small scripts that Redis runs atomically, so an id is always either
  in a batch no worker has started, or in a new batch with its own message.
- A busy API process does not make a round trip per comment: the comments it accepts within
  a few milliseconds of each other join in one script call (`SendBuffer`).
- A claimed batch is kept for two visibility timeouts (`claimed_ttl`) and then expires, and
  the message is acknowledged late, so a worker killed mid-batch leaves both behind, and
  kombu's restore of unacknowledged messages brings the whole batch back. A message that comes
  back after its batch was served finds its comments decided and does nothing. (Nothing
  deletes a served batch: that would cost every batch a round trip.) A Redis that loses
  everything loses batches and messages alike; the comments are still pending in the
  database, where the sweeper finds them.

The message is Celery's task protocol 2 as kombu's Redis transport stores it, built here
(`send_task` costs about 1.5 ms of a request's CPU in kombu's generic publish path).
`tests/integration/test_queue.py` checks that real workers take it.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import redis

from ..config import Settings
from ..events import CHANNEL, LUA_PUBLISH_EVENTS, MAXLEN, STREAM, Event, encode_events
from ..metrics import ENQUEUE_FAILURES, ENQUEUE_SIZES
from ..scripts import LuaScripts

log = logging.getLogger("triage.queue")

MODERATE_TASK = "moderation.moderate_comments"
# Comments per batch at most: enough to amortise a message's and a transaction's cost (a
# backlog went through about a sixth faster in batches of 250 than of 100), small enough that
# a batch (a quarter of a second of a worker's time) is moderated well inside the visibility
# timeout.
MAX_IDS = 250
# A batch whose message was lost (a Redis restart keeps neither) must not stay forever.
BATCH_TTL_SECONDS = 24 * 3600
# How long a batch stays open to newcomers at most. Normally a worker closes it sooner; if its
# message was lost (a purged queue), later comments must not keep joining a batch no worker
# will see, so after this they open a new one. (The sweeper re-sends what the lost one held.)
OPEN_SECONDS = 10
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}

# KEYS: open-batch pointer, queue, event stream. ARGV: MAX_IDS, TTL, "1" to open a new batch
# whatever is open, seconds the pointer lives, the stream's length, the event channel, the
# number of ids n, the number k of (key, message) pairs for new batches, then the n ids, the k
# pairs, then any events to publish (JSON). Ids join the open batch while it has room, then
# fill new batches in order. Returns how many new batches it opened.
JOIN = LUA_PUBLISH_EVENTS + """
local max, ttl, live = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4])
local n, k = tonumber(ARGV[7]), tonumber(ARGV[8])
local first_pair, first_event = 9 + n, 9 + n + 2 * k
local open, room = false, 0
if ARGV[3] ~= '1' then
  open = redis.call('GET', KEYS[1])
  if open then room = max - redis.call('LLEN', open) end
end
local done, opened = 0, 0
while done < n do
  local fresh = room <= 0
  if fresh then
    if opened == k then return redis.error_reply('JOIN: too few new batches given') end
    open = ARGV[first_pair + 2 * opened]
    opened = opened + 1
    room = max
  end
  local take = math.min(room, n - done)
  redis.call('RPUSH', open, unpack(ARGV, 9 + done, 8 + done + take))
  if fresh then
    redis.call('EXPIRE', open, ttl)
    redis.call('SET', KEYS[1], open, 'EX', live)
    redis.call('LPUSH', KEYS[2], ARGV[first_pair + 2 * opened - 1])
  end
  done = done + take
  room = room - take
end
publish_events(KEYS[3], ARGV[5], ARGV[6], first_event)
return opened
"""

# KEYS: open-batch pointer, the batch. ARGV: seconds the claimed batch is kept. Closes the
# batch (later comments open a new one), sets it to expire, and returns its ids. Run again for
# a re-delivered message, it returns the same ids and keeps them as long again.
CLAIM = """
if redis.call('GET', KEYS[1]) == KEYS[2] then
  redis.call('DEL', KEYS[1])
end
redis.call('EXPIRE', KEYS[2], ARGV[1])
return redis.call('LRANGE', KEYS[2], 0, -1)
"""


def open_batch_key(queue: str) -> str:
    return f"triage:batch-open:{queue}"


def claimed_ttl(visibility_timeout: int) -> int:
    """Seconds a claimed batch is kept: a message whose worker died comes back after one
    visibility timeout (and the restore's interval) and claims it again."""
    return 2 * visibility_timeout + 60


def batch_key(queue: str) -> str:
    return f"triage:batch:{queue}:{uuid.uuid4().hex}"


class Scripts(LuaScripts):
    """The queue's scripts, JOIN and CLAIM."""

    def __init__(self, client: redis.Redis) -> None:
        super().__init__(client, {"join": JOIN, "claim": CLAIM})

    def claim(self, queue: str, batch: str, keep_seconds: int) -> list[str]:
        """Close `batch`, keep it `keep_seconds` more (for a re-delivery), return its ids."""
        ids = self.call("claim", 2, open_batch_key(queue), batch, keep_seconds)
        return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]


def broker_options(settings: Settings) -> dict[str, object]:
    """Transport options shared by the API's producer and the workers."""
    return {
        "visibility_timeout": settings.visibility_timeout,
        # Look for messages a dead worker left unacknowledged every few seconds (and scan on
        # every look), so they come back soon after the visibility timeout, not minutes later.
        "unacked_restore_interval": max(1, min(10, settings.visibility_timeout // 4)),
        "unacked_restore_throttle": 1,
        # The restore scan holds a lock in Redis; a worker killed while holding it would block
        # every restore until the lock expires (300 s by default), so it expires much sooner.
        "unacked_mutex_expire": max(5, min(60, settings.visibility_timeout)),
        # A broker that vanishes without closing the connection must not hang a publish.
        "socket_timeout": 15,
        "socket_connect_timeout": 5,
    }


def task_message(name: str, args: list[Any], queue: str, origin: str,
                 extra_headers: dict[str, Any] | None = None,
                 kwargs: dict[str, Any] | None = None) -> bytes:
    """A Celery protocol 2 message as kombu's Redis transport stores it."""
    task_id = str(uuid.uuid4())
    body = json.dumps([args, kwargs or {}, _EMBED]).encode()
    headers: dict[str, Any] = {
        "lang": "py", "task": name, "id": task_id, "shadow": None, "eta": None,
        "expires": None, "group": None, "group_index": None, "retries": 0,
        "timelimit": [None, None], "root_id": task_id, "parent_id": None,
        "argsrepr": repr(args), "kwargsrepr": repr(kwargs or {}), "origin": origin, "ignore_result": True,
        "replaced_task_nesting": 0, "stamped_headers": None, "stamps": {},
    }
    if extra_headers:
        headers.update(extra_headers)
    message = {
        "body": base64.b64encode(body).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": {
            "correlation_id": task_id,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return json.dumps(message).encode()


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
                         "1" if fresh else "0", OPEN_SECONDS, MAXLEN, CHANNEL,
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


# Below this many comments a second (over the last RATE_WINDOW seconds; ENQUEUE_BUSY_PER_SECOND)
# an API process sends each comment at once: a send costs the process about 0.2 ms, so up to
# a tenth of a core, and nothing waits. Above it, comments wait up to ENQUEUE_DELAY_MS. A
# quarter of a second smooths bursts out of a steady rate and still reacts to a rush at once.
BUSY_PER_SECOND = 400
RATE_WINDOW = 0.25
# Guards a SendBuffer's start in each process; keyed by pid, as a forked child must start its
# own thread and never inherit a lock held by a thread of its parent.
_STARTING: dict[int, threading.Lock] = {}


class SendBuffer:
    """Comments this process accepted, handed to the queue: each at once while the process is
    quiet, together every few milliseconds while it is busy.

    A Redis round trip costs a request about as much as its insert and commit. Under
    BUSY_PER_SECOND comments a second, the request sends its own comment, as if there were no
    buffer (a thread would only add the wait for it to be scheduled). Above it, comments wait
    for a daemon thread that sends at most once per `delay`, everything gathered meanwhile in
    one script call (and Redis runs one script instead of one each); a request that finds
    `max_items` waiting sends them itself, and `flush()` sends what is left at exit. Rows are
    committed before they are buffered, so a process that dies with ids in its buffer loses
    no comment: they are still pending, and the sweeper re-sends them.
    """

    def __init__(self, send: Callable[[Sequence[str], Sequence[Event]], None], delay: float,
                 max_items: int = MAX_IDS, busy_per_second: float = BUSY_PER_SECOND,
                 rate_window: float = RATE_WINDOW) -> None:
        self.send = send
        self.delay = delay
        self.max_items = max_items
        self.busy_per_second = busy_per_second
        self.rate_window = rate_window
        self._pid = 0
        self._cond = threading.Condition()
        self._sending = threading.Lock()
        self._ids: list[str] = []
        self._events: list[Event] = []
        self._reset_rate()

    def _reset_rate(self) -> None:
        self._window_start, self._window_adds, self._busy = time.monotonic(), 0, False
        self._last_send = float("-inf")

    def add(self, comment_id: str, request_id: str | None = None, events: Sequence[Event] = ()) -> None:
        """Hand a committed comment and its events on (the same call as `TaskSender.moderate`);
        never raises: a failed send leaves the comment to the sweeper."""
        if self._pid != os.getpid():
            self._start()
        now = time.monotonic()
        with self._cond:
            self._ids.append(comment_id)
            self._events.extend(events)
            waiting = len(self._ids)
            self._window_adds += 1
            elapsed = now - self._window_start
            if elapsed >= self.rate_window:
                self._busy = self._window_adds > self.busy_per_second * elapsed
                self._window_start, self._window_adds = now, 0
            busy = self._busy
            if busy and waiting == 1:
                self._cond.notify()  # once per batch: the thread starts its wait
        if not busy or waiting >= self.max_items:
            self.flush()

    def flush(self) -> int:
        """Send what is buffered now, in one call; returns how many comments were sent.

        A failed send is logged and counted; its comments stay pending for the sweeper."""
        with self._sending:  # one send at a time keeps batches in order
            with self._cond:
                ids, events = self._ids, self._events
                self._ids, self._events = [], []
            if not ids:
                return 0
            self._last_send = time.monotonic()
            try:
                self.send(ids, events)
            except Exception as exc:  # noqa: BLE001 - the sweeper re-sends; nothing is lost
                ENQUEUE_FAILURES.inc(len(ids))
                log.warning("enqueue failed, comments stay pending for the sweeper",
                            extra={"count": len(ids), "comment_ids": ids[:10], "error": str(exc)})
                return 0
            ENQUEUE_SIZES.observe(len(ids))
            return len(ids)

    def _start(self) -> None:
        pid = os.getpid()
        with _STARTING.setdefault(pid, threading.Lock()):
            if self._pid == pid:
                return
            # A forked child's copy of its parent's buffer is the parent's to send.
            self._cond, self._sending = threading.Condition(), threading.Lock()
            self._ids, self._events = [], []
            self._reset_rate()
            threading.Thread(target=self._run, name="triage-send-buffer", daemon=True).start()
            self._pid = pid

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._ids:
                    self._cond.wait()
            wait = self._last_send + self.delay - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self.flush()
