"""Shared fixtures: settings, a fresh database (SQLite, or PostgreSQL with TEST_DATABASE_URL),
the Flask app, and real Celery worker processes on a real Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis
from sqlalchemy import MetaData, create_engine

from services.comments.service import CommentService
from services.config import ROOT, Settings
from services.db import Database
from services.events import InMemoryPublisher
from services.migrate import upgrade

DEMO = "ketamine-new-hope-depression"
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _reset_database(url: str) -> None:
    """Drop every table (ours and Alembic's) so each test module starts from migrations."""
    engine = create_engine(url)
    meta = MetaData()
    meta.reflect(engine)
    meta.drop_all(engine)
    engine.dispose()


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        _reset_database(url)
    else:
        url = f"sqlite:///{tmp_path / 'triage.db'}"
    upgrade(url)
    yield url


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=REDIS_URL,
        queue_name=f"moderation-test-{uuid.uuid4().hex[:8]}",
        visibility_timeout=5,
        log_level="WARNING",
        ratelimit_enabled=False,
        author_salt="test-salt",
    )


class RecordingDispatch:
    """Collects sent ids; stands in for the broker where a test is about the API alone."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.fail = False

    def __call__(self, comment_id: str, request_id: str | None) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        self.sent.append(comment_id)


@pytest.fixture
def dispatch() -> RecordingDispatch:
    return RecordingDispatch()


@pytest.fixture
def events() -> InMemoryPublisher:
    return InMemoryPublisher()


@pytest.fixture
def service(settings: Settings, dispatch: RecordingDispatch, events: InMemoryPublisher) -> Iterator[CommentService]:
    db = Database(settings.database_url)
    svc = CommentService(db, dispatch=dispatch, publisher=events, salt=settings.author_salt)
    svc.add_article(DEMO, "Ketamine a new hope for people suffering from depression?")
    yield svc
    db.dispose()


@pytest.fixture
def app(settings: Settings, service: CommentService):  # type: ignore[no-untyped-def]
    from services.api import create_app

    return create_app(settings, service=service)


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


# -- real queue ---------------------------------------------------------------------------------


def redis_available() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def settings_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url,
        QUEUE_NAME=settings.queue_name,
        VISIBILITY_TIMEOUT=str(settings.visibility_timeout),
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    return env


class WorkerProcess:
    """A real `triage worker` process (Celery prefork), started and stopped by the test."""

    def __init__(self, settings: Settings, log_path: Path, concurrency: int = 1) -> None:
        self.settings = settings
        self.log_path = log_path
        self.concurrency = concurrency
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "WorkerProcess":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services", "worker", "-c", str(self.concurrency)],
            env=settings_env(self.settings), cwd=ROOT, stdout=log, stderr=log,
            start_new_session=True,
        )
        return self

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and its pool children)."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


@pytest.fixture
def queue_settings(settings: Settings) -> Iterator[Settings]:
    if not redis_available():
        pytest.fail(f"integration tests need Redis at {REDIS_URL}")
    yield settings
    client = redis.Redis.from_url(settings.redis_url)
    client.delete(settings.queue_name)


@pytest.fixture
def worker_factory(queue_settings: Settings, tmp_path: Path):  # type: ignore[no-untyped-def]
    started: list[WorkerProcess] = []

    def make(concurrency: int = 1) -> WorkerProcess:
        w = WorkerProcess(queue_settings, tmp_path / f"worker{len(started)}.log", concurrency)
        started.append(w)
        return w.start()

    yield make
    for w in started:
        w.stop()
    for w in started:
        if w.log_path.exists():
            sys.stderr.write(w.log_path.read_text(errors="replace")[-3000:])


@pytest.fixture
def live_service(queue_settings: Settings, events: InMemoryPublisher) -> Iterator[CommentService]:
    """The domain service sending real tasks to Redis, as the API process does."""
    from services.api.queue import TaskSender

    db = Database(queue_settings.database_url)
    sender = TaskSender(queue_settings)
    svc = CommentService(db, dispatch=sender.moderate, publisher=events)
    svc.add_article(DEMO, "Ketamine a new hope for people suffering from depression?")
    yield svc
    db.dispose()


@pytest.fixture
def live_client(queue_settings: Settings, live_service: CommentService):  # type: ignore[no-untyped-def]
    from services.api import create_app

    return create_app(queue_settings, service=live_service).test_client()


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.1):  # type: ignore[no-untyped-def]
    """Poll until predicate() is truthy; return its value or fail the test."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(interval)


__all__ = ["wait_for", "DEMO", "replace"]
