"""The API's send buffer: comments accepted within moments of each other share one send."""

from __future__ import annotations

import os
import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from services.queue.buffer import SendBuffer


class Recorder:
    def __init__(self, fail: int = 0) -> None:
        self.calls: list[tuple[list[str], list[Any], str]] = []
        self.fail = fail
        self.sent = threading.Event()

    def __call__(self, ids: Any, events: Any) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("redis away")
        self.calls.append((list(ids), list(events), threading.current_thread().name))
        self.sent.set()


def wait_until(cond: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "not within the timeout"
        time.sleep(0.005)


def busy(rec: Recorder, delay: float, **kw: Any) -> SendBuffer:
    """A buffer that counts itself busy from its first comment on."""
    return SendBuffer(rec, delay=delay, busy_per_second=0, rate_window=0, **kw)


def warmed(buf: SendBuffer, rec: Recorder) -> SendBuffer:
    """Has just sent: what comes next waits out the delay."""
    buf.add("warm-up")
    assert rec.sent.wait(5)
    rec.sent.clear()
    return buf


def test_a_quiet_process_sends_each_comment_from_the_request_itself() -> None:
    rec = Recorder()
    buf = SendBuffer(rec, delay=30)  # a delay no test waits out
    for i in range(5):
        buf.add(f"c{i}", None, [("comment.submitted", {"id": f"c{i}"})])
        # Sent before add() returned, by the request's own thread: nothing waits for a thread.
        assert rec.calls[-1][0] == [f"c{i}"]
        assert rec.calls[-1][2] == threading.current_thread().name
        time.sleep(0.02)  # 50 a second, well under BUSY_PER_SECOND
    assert [e[1]["id"] for c in rec.calls for e in c[1]] == [f"c{i}" for i in range(5)]


def test_a_busy_process_sends_what_gathers_within_the_delay_in_one_call_in_order() -> None:
    rec = Recorder()
    buf = busy(rec, delay=0.3)
    buf.add("c0", None, [("comment.submitted", {"id": "c0"})])
    assert rec.sent.wait(5)  # the first, with nothing sent before it, goes at once
    rec.sent.clear()
    for i in range(1, 5):
        buf.add(f"c{i}", None, [("comment.submitted", {"id": f"c{i}"})])
    assert rec.calls[-1][0] == ["c0"]  # the others wait for the thread
    assert rec.sent.wait(5)
    (first, _, _), (ids, events, thread) = rec.calls
    assert first == ["c0"]
    assert ids == ["c1", "c2", "c3", "c4"]  # waited for the delay, together
    assert [e[1]["id"] for e in events] == ids and thread == "triage-send-buffer"


def test_a_full_buffer_is_sent_by_the_request_that_fills_it() -> None:
    rec = Recorder()
    buf = warmed(busy(rec, delay=60, max_items=3), rec)
    for i in range(7):
        buf.add(f"c{i}")
    assert [c[0] for c in rec.calls[1:]] == [["c0", "c1", "c2"], ["c3", "c4", "c5"]]
    assert {c[2] for c in rec.calls[1:]} == {threading.current_thread().name}
    assert buf.flush() == 1 and rec.calls[-1][0] == ["c6"]
    assert buf.flush() == 0


def test_a_failed_send_is_logged_and_later_comments_still_go(caplog: pytest.LogCaptureFixture) -> None:
    rec = Recorder(fail=1)
    buf = SendBuffer(rec, delay=60)
    with caplog.at_level("WARNING", logger="triage.queue"):
        buf.add("lost-for-now")  # never raises: the comment is committed, the sweeper has it
    [record] = [r for r in caplog.records if "sweeper" in r.getMessage()]
    assert record.comment_ids == ["lost-for-now"]  # type: ignore[attr-defined]
    assert buf.flush() == 0  # not kept for another try: the sweeper owns it now
    buf.add("next")
    assert rec.calls == [(["next"], [], threading.current_thread().name)]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_sends_its_own_comments_only() -> None:
    rec = Recorder()
    buf = warmed(busy(rec, delay=60), rec)
    buf.add("parents")  # waits a minute for company
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its own thread, its own (empty) buffer
        try:
            buf.add("childs")
            buf.flush()
            wait_until(lambda: len(rec.calls) == 2)
            os.write(write, repr([c[0] for c in rec.calls[1:]]).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        child_sent = f.read()
    os.waitpid(pid, 0)
    assert child_sent == "[['childs']]"
    assert buf.flush() == 1 and rec.calls[-1][0] == ["parents"]


def test_a_gunicorn_worker_sends_its_buffer_when_it_exits() -> None:
    from services.server import _worker_exit

    rec = Recorder()
    buf = warmed(busy(rec, delay=60), rec)
    buf.add("late")
    assert rec.calls[-1][0] == ["warm-up"]
    _worker_exit(None, SimpleNamespace(wsgi=SimpleNamespace(extensions={"triage.send_buffer": buf})))
    assert rec.calls[-1][0] == ["late"]
    _worker_exit(None, SimpleNamespace(wsgi=SimpleNamespace(extensions={})))  # none: nothing to do
