"""Sending moderation tasks by name, so the API never imports worker code.

The API sends one message per accepted comment, in the request. Through Celery's
`send_task` that costs about 1.5 ms of the request's CPU (most of it kombu's generic publish
path), more than validating and storing the comment together; so the message is built here in
Celery's task protocol 2, exactly as `send_task` would build it for the Redis transport, and
pushed with a single LPUSH. `tests/integration/test_queue.py` checks that real workers take it.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import uuid
from typing import Any

from collections.abc import Sequence

import redis

from ..config import Settings
from ..events import add_events

MODERATE_TASK = "moderation.moderate_comment"
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


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
                 extra_headers: dict[str, Any] | None = None) -> bytes:
    """A Celery protocol 2 message as kombu's Redis transport stores it."""
    task_id = str(uuid.uuid4())
    body = json.dumps([args, {}, _EMBED]).encode()
    headers: dict[str, Any] = {
        "lang": "py", "task": name, "id": task_id, "shadow": None, "eta": None,
        "expires": None, "group": None, "group_index": None, "retries": 0,
        "timelimit": [None, None], "root_id": task_id, "parent_id": None,
        "argsrepr": repr(args), "kwargsrepr": "{}", "origin": origin, "ignore_result": True,
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
    """Pushes moderation tasks onto the worker's queue in Redis (one connection pool per process)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = redis.Redis.from_url(settings.redis_url, socket_timeout=5,
                                           socket_connect_timeout=3)
        self.origin = f"{os.getpid()}@{socket.gethostname()}"

    def moderate(self, comment_id: str, request_id: str | None = None,
                 events: Sequence[tuple[str, dict[str, Any]]] = ()) -> None:
        """Send `moderation.moderate_comment(comment_id)` and publish `events`, in one round
        trip; raises if Redis does not take them."""
        extra = {"request_id": request_id} if request_id else None
        pipe = self.client.pipeline(transaction=False)
        pipe.lpush(self.settings.queue_name,
                   task_message(MODERATE_TASK, [comment_id], self.settings.queue_name,
                                self.origin, extra))
        add_events(pipe, events)
        pipe.execute()
