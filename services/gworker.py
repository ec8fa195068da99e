"""The API's gunicorn worker: gevent, so a slow client holds a connection, not a process.

gunicorn's gevent worker reads each request head under a deadline of `keepalive` seconds
(a slowloris trickling header lines is dropped when it passes); this one adds an idle timeout
on every socket read and write, so a client that stalls mid-body or stops reading its answer
is dropped too instead of holding its greenlet for ever."""

from __future__ import annotations

from typing import Any

from gunicorn.workers.ggevent import GeventWorker

# Seconds a client may leave the connection idle mid-request (body, or reading the answer).
IDLE_TIMEOUT = 15.0


class Worker(GeventWorker):  # type: ignore[misc]
    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        client.settimeout(IDLE_TIMEOUT)
        super().handle(listener, client, addr)
