"""The API's send buffer: comments accepted within moments of each other share one send."""

from __future__ import annotations

import os
import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from services.api.queue import SendBuffer


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


def test_comments_added_within_the_delay_after_a_send_are_sent_in_one_call_in_order() -> None:
    rec = Recorder()
    buf = SendBuffer(rec, delay=0.3)
    buf.add("c0", None, [("comment.submitted", {"id": "c0"})])
    assert rec.sent.wait(5)  # the first, with no send before it, goes at once
    rec.sent.clear()
    for i in range(1, 5):
        buf.add(f"c{i}", None, [("comment.submitted", {"id": f"c{i}"})])
    assert rec.sent.wait(5)
    (first, _, _), (ids, events, thread) = rec.calls
    assert first == ["c0"]
    assert ids == ["c1", "c2", "c3", "c4"]  # waited for the delay, together
    assert [e[1]["id"] for e in events] == ids and thread == "triage-send-buffer"


def test_a_lone_comment_on_a_quiet_site_is_sent_at_once_not_held_for_company() -> None:
    rec = Recorder()
    buf = SendBuffer(rec, delay=30)
    started = time.monotonic()
    buf.add("alone")
    assert rec.sent.wait(5)
    assert rec.calls[0][0] == ["alone"] and time.monotonic() - started < 5
    # The next one, within the delay of that send, waits for it.
    rec.sent.clear()
    buf.add("second")
    assert not rec.sent.wait(0.3)
    assert buf.flush() == 1 and rec.calls[-1][0] == ["second"]


def test_a_full_buffer_is_sent_by_the_request_that_fills_it() -> None:
    rec = Recorder()
    buf = SendBuffer(rec, delay=60, max_items=3)
    for i in range(7):
        buf.add(f"c{i}")
    assert [c[0] for c in rec.calls] == [["c0", "c1", "c2"], ["c3", "c4", "c5"]]
    assert {c[2] for c in rec.calls} == {threading.current_thread().name}
    assert buf.flush() == 1 and rec.calls[-1][0] == ["c6"]
    assert buf.flush() == 0


def test_a_failed_send_is_logged_and_later_comments_still_go(caplog: pytest.LogCaptureFixture) -> None:
    rec = Recorder(fail=1)
    buf = SendBuffer(rec, delay=60)
    buf.add("lost-for-now")
    with caplog.at_level("WARNING", logger="triage.queue"):
        assert buf.flush() == 0
    [record] = [r for r in caplog.records if "sweeper" in r.getMessage()]
    assert record.comment_ids == ["lost-for-now"]  # type: ignore[attr-defined]
    buf.add("next")
    assert buf.flush() == 1 and rec.calls == [(["next"], [], threading.current_thread().name)]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_sends_its_own_comments_only() -> None:
    rec = Recorder()
    buf = SendBuffer(rec, delay=60)
    buf.add("warm-up")  # sent at once; the next waits a minute for company
    assert rec.sent.wait(5)
    buf.add("parents")
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
    buf = SendBuffer(rec, delay=60)
    buf.add("late")
    _worker_exit(None, SimpleNamespace(wsgi=SimpleNamespace(extensions={"triage.send_buffer": buf})))
    assert rec.calls[0][0] == ["late"]
    _worker_exit(None, SimpleNamespace(wsgi=SimpleNamespace(extensions={})))  # none: nothing to do
