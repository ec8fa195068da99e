"""Poison messages: a comment that stops its worker is retried a bounded number of times, then
held as `error` for a person; a full Redis is not retried every two seconds; the sweeper walks
a backlog a page at a time. On the real database and Redis, with the task bodies run in this
process (a worker's death or a time limit is stood in for by the exception it raises)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import update

from services.comments.models import Comment
from services.comments.shapes import NewComment
from services.queue import protocol
from tests.conftest import DEMO

# Each test builds its own Celery app from its own settings; Celery warns that the task names
# repeat across apps, which is expected here.
pytestmark = [pytest.mark.integration,
              pytest.mark.filterwarnings("ignore::celery.exceptions.DuplicateTaskNameWarning")]


class WorkerStopped(BaseException):
    """Stands in for a worker killed while classifying (nothing after it runs)."""


@pytest.fixture
def rt(queue_settings):  # type: ignore[no-untyped-def]
    from workers.runtime import Runtime

    runtime = Runtime(queue_settings)
    runtime.service.add_article(DEMO, "Demo")
    yield runtime
    runtime.db.dispose()


def submit(rt: Any, body: str) -> str:
    accepted, _ = rt.service.submit(DEMO, NewComment(author="Ana", body=body))
    return str(accepted.id)


def test_a_batch_claimed_again_is_counted(rt, queue_settings):  # type: ignore[no-untyped-def]
    batch = protocol.batch_key(queue_settings.queue_name)
    rt.redis.rpush(batch, "a", "b")
    first = protocol.claim_counted(rt.queue_scripts, queue_settings.queue_name, batch, 5)
    again = protocol.claim_counted(rt.queue_scripts, queue_settings.queue_name, batch, 5)
    assert first == (["a", "b"], 1) and again == (["a", "b"], 2)
    assert 0 < rt.redis.ttl(batch + ":claims") <= protocol.claimed_ttl(5)


def test_a_comment_that_keeps_stopping_its_worker_is_held_as_error_and_spares_the_others(
        rt, monkeypatch):  # type: ignore[no-untyped-def]
    from workers import tasks

    before = submit(rt, "Thank you for this careful article.")
    poison = submit(rt, "this one stops the worker")
    after = submit(rt, "I learned a lot from it.")
    real = tasks.classify

    def classify(runtime, body, *args, **kwargs):  # type: ignore[no-untyped-def]
        if body == "this one stops the worker":
            raise WorkerStopped()
        return real(runtime, body, *args, **kwargs)

    monkeypatch.setattr(tasks, "classify", classify)
    ids = [before, poison, after]
    for _ in range(3):
        with pytest.raises(WorkerStopped):
            tasks.moderate_carefully(rt, ids, max_attempts=3)
    assert rt.service.get(before)[0].status == "approved"
    assert rt.service.get(poison)[0].status == "pending"
    assert tasks.moderate_carefully(rt, ids, max_attempts=3) == 2
    held = rt.service.get(poison)[0]
    assert held.status == "held" and held.categories == ["error"]
    assert rt.service.get(after)[0].status == "approved"


class Broker:
    """Records what a batch would send back to the queue (the one boundary stood in for)."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send_task(self, *args: Any, **kwargs: Any) -> None:
        self.sent.append(kwargs)


def test_the_moderation_task_has_time_limits_and_comes_back_after_a_failure(queue_settings):  # type: ignore[no-untyped-def]
    from workers.celery_app import make_celery

    app = make_celery(queue_settings)
    assert app.conf.task_soft_time_limit == queue_settings.task_soft_time_limit
    assert app.conf.task_time_limit == queue_settings.task_time_limit
    task = app.tasks[protocol.MODERATE_TASK]
    assert task.acks_late and not task.acks_on_failure_or_timeout


def test_a_full_redis_is_left_to_the_sweeper_and_a_failing_batch_is_resent_a_few_times(
        rt, queue_settings, monkeypatch):  # type: ignore[no-untyped-def]
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import OutOfMemoryError

    from workers import tasks

    broker = Broker()

    def full(*_: Any) -> Any:
        raise OutOfMemoryError("OOM command not allowed when used memory > 'maxmemory'.")

    monkeypatch.setattr(tasks, "claim_counted", full)
    assert tasks.run_batch(broker, rt, queue_settings, "b") == 0 and broker.sent == []  # type: ignore[arg-type]

    def broken(*_: Any) -> Any:
        raise RedisConnectionError("gone")

    monkeypatch.setattr(tasks, "moderate_batch", broken)
    monkeypatch.setattr(tasks, "moderate_carefully", broken)
    for claims, resent in ((1, True), (tasks.MAX_RESENDS, True), (tasks.MAX_RESENDS + 1, False)):
        broker.sent.clear()
        monkeypatch.setattr(tasks, "claim_counted", lambda *_, n=claims: (["x"], n))
        assert tasks.run_batch(broker, rt, queue_settings, "b") == 0  # type: ignore[arg-type]
        assert bool(broker.sent) is resent, claims
    # A soft time limit is a retry too (then comment by comment, the batch being claimed again).
    broker.sent.clear()
    monkeypatch.setattr(tasks, "claim_counted", lambda *_: (["x"], 1))

    def slow(*_: Any) -> Any:
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(tasks, "moderate_batch", slow)
    assert tasks.run_batch(broker, rt, queue_settings, "b") == 0 and len(broker.sent) == 1  # type: ignore[arg-type]


def test_the_sweeper_pages_through_a_backlog_oldest_first(rt, queue_settings, monkeypatch):  # type: ignore[no-untyped-def]
    from workers import tasks

    ids = [submit(rt, f"waiting {i}") for i in range(5)]
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    with rt.db.session() as s:
        for i, cid in enumerate(ids):
            s.execute(update(Comment).where(Comment.id == cid).values(
                created_at=old + dt.timedelta(seconds=i)))
    settings = replace(queue_settings, sweep_page=2, sweep_grace=60)
    resent: list[list[str]] = []
    rt.redis.delete(tasks.SWEEP_CURSOR.format(queue=settings.queue_name))
    monkeypatch.setattr(rt.service, "redispatch", lambda page: resent.append(list(page)) or len(page))
    for _ in range(4):
        tasks.sweep(rt, settings)
    assert resent == [ids[0:2], ids[2:4], ids[4:5], ids[0:2]]
