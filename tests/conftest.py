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


def fresh_database_url(directory: Path) -> str:
    """TEST_DATABASE_URL emptied, else a new SQLite file in `directory`; migrated."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        _reset_database(url)
    else:
        url = f"sqlite:///{directory / 'triage.db'}"
    upgrade(url)
    return url


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    yield fresh_database_url(tmp_path)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=REDIS_URL,
        queue_name=f"moderation-test-{uuid.uuid4().hex[:8]}",
        visibility_timeout=5,
        log_level="WARNING",
        metrics_dir="",
        ratelimit_enabled=False,
        author_salt="test-salt",
    )


class RecordingDispatch:
    """Collects sent ids; stands in for the broker where a test is about the API alone."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.events: list[tuple[str, dict]] = []
        self.fail = False

    def __call__(self, comment_id: str, request_id: str | None, events=()) -> None:  # type: ignore[no-untyped-def]
        if self.fail:
            raise ConnectionError("broker down")
        self.sent.append(comment_id)
        self.events.extend(events)


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
        SWEEP_INTERVAL=str(settings.sweep_interval),
        SWEEP_GRACE=str(settings.sweep_grace),
        RATELIMIT_ENABLED="true" if settings.ratelimit_enabled else "false",
        AUTHOR_SALT=settings.author_salt,
        METRICS_DIR=settings.metrics_dir,
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    return env


class ServiceProcess:
    """A real `triage <role>` process (Celery worker or beat, gunicorn API), started and
    stopped by the test, in its own process group so a kill reaches its children too."""

    def __init__(self, settings: Settings, log_path: Path, args: list[str],
                 env: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.log_path = log_path
        self.args = args
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services", *self.args],
            env={**settings_env(self.settings), **self.env}, cwd=ROOT, stdout=log, stderr=log,
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
    client = redis.Redis.from_url(settings.redis_url)
    # Texts seen by earlier runs would count as recent duplicates (a spam signal).
    for key in client.scan_iter("triage:dup:*"):
        client.delete(key)
    yield settings
    client = redis.Redis.from_url(settings.redis_url)
    client.delete(settings.queue_name)


@pytest.fixture
def process_factory(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Start `triage` processes; every one is stopped when the test ends."""
    started: list[ServiceProcess] = []

    def make(settings: Settings, *args: str, env: dict[str, str] | None = None) -> ServiceProcess:
        p = ServiceProcess(settings, tmp_path / f"{args[0]}{len(started)}.log", list(args), env)
        started.append(p)
        return p.start()

    yield make
    for p in started:
        p.stop()
    for p in started:
        if p.log_path.exists():
            sys.stderr.write(p.log_path.read_text(errors="replace")[-3000:])


@pytest.fixture
def api_factory(process_factory):  # type: ignore[no-untyped-def]
    """Start a real gunicorn API (`triage api`) on a free port; returns it and its base URL."""
    def make(settings: Settings, **env: str) -> tuple[ServiceProcess, str]:
        port = free_port()
        api = process_factory(replace(settings, port=port), "api", env={"PORT": str(port), **env})
        wait_port(port)
        return api, f"http://127.0.0.1:{port}"

    return make


@pytest.fixture
def worker_factory(queue_settings: Settings, process_factory):  # type: ignore[no-untyped-def]
    def make(concurrency: int = 1, settings: Settings | None = None) -> ServiceProcess:
        return process_factory(settings or queue_settings, "worker", "-c", str(concurrency))

    return make


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 30.0) -> None:
    import socket

    def up() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    wait_for(up, timeout=timeout)


@pytest.fixture
def live_service(queue_settings: Settings, events: InMemoryPublisher) -> Iterator[CommentService]:
    """The domain service sending real tasks to Redis, as the API process does."""
    from services.queue.sender import TaskSender

    db = Database(queue_settings.database_url)
    sender = TaskSender(queue_settings)
    svc = CommentService(db, dispatch=sender.moderate, publisher=events,
                         redispatch_many=sender.moderate_many)
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
