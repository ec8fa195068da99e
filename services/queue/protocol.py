"""The moderation queue's protocol, shared by the API (sending) and the workers (claiming).

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

This module is the protocol both sides share: task names, keys, scripts and the message
format. The API sends with `sender.TaskSender` (through `buffer.SendBuffer`); a worker claims
its batch with `claim()`.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import redis

from ..config import Settings
from ..events import LUA_PUBLISH_EVENTS
from ..scripts import LuaScripts

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
# The same, counting the claims of the batch (KEYS[3], kept as long as the batch): a batch
# claimed again was re-delivered or re-sent after a crash, a time limit or an error. Returns
# the count, then the ids.
CLAIM_COUNTED = """
if redis.call('GET', KEYS[1]) == KEYS[2] then
  redis.call('DEL', KEYS[1])
end
redis.call('EXPIRE', KEYS[2], ARGV[1])
local n = redis.call('INCR', KEYS[3])
redis.call('EXPIRE', KEYS[3], ARGV[1])
local ids = redis.call('LRANGE', KEYS[2], 0, -1)
table.insert(ids, 1, n)
return ids
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
        super().__init__(client, {"join": JOIN, "claim": CLAIM, "claim_counted": CLAIM_COUNTED})

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


def claim(scripts: Scripts, queue: str, batch: str, visibility_timeout: int) -> list[str]:
    """A worker's claim on `batch`: close it, keep it for a re-delivery, return its ids."""
    return scripts.claim(queue, batch, claimed_ttl(visibility_timeout))


def claim_counted(scripts: Scripts, queue: str, batch: str, visibility_timeout: int) -> tuple[list[str], int]:
    """`claim`, with how many times the batch has been claimed, this time included."""
    reply = scripts.call("claim_counted", 3, open_batch_key(queue), batch, batch + ":claims",
                         claimed_ttl(visibility_timeout))
    ids = [i.decode() if isinstance(i, bytes) else str(i) for i in reply[1:]]
    return ids, int(reply[0])

