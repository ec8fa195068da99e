"""A process's send buffer: comments accepted together go to the queue in one call."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence

from ..events import Event
from ..metrics import ENQUEUE_FAILURES, ENQUEUE_SIZES
from .protocol import MAX_IDS

log = logging.getLogger("triage.queue")

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
