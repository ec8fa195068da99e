"""What Triage promises, tried under faults: killed workers, an emptied Redis, a database that
goes away, and a crowd of clients that retry. Bounded here; `make test-long` runs the full size."""

from __future__ import annotations

import json
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import replace

import pytest
import requests
from sqlalchemy import func, select

from services.comments.models import Comment, Decision
from tests.conftest import DEMO, free_port, wait_for, wait_port

pytestmark = pytest.mark.integration
URL = f"/v1/articles/{DEMO}/comments"


def scaled(normal: int, long: int, request) -> int:  # type: ignore[no-untyped-def]
    return long if request.node.get_closest_marker("long") else normal


def decided_once(service, ids) -> None:  # type: ignore[no-untyped-def]
    """Every comment decided, each by exactly one engine decision (enforced by the schema)."""
    with service.db.session() as s:
        pending = s.scalar(select(func.count()).select_from(Comment)
                           .where(Comment.id.in_(ids), Comment.status == "pending"))
        per_comment = dict(s.execute(select(Decision.comment_id, func.count())
                                     .where(Decision.comment_id.in_(ids))
                                     .group_by(Decision.comment_id)).all())
    assert pending == 0
    assert len(per_comment) == len(ids) and set(per_comment.values()) == {1}


def all_decided(service, ids) -> bool:  # type: ignore[no-untyped-def]
    with service.db.session() as s:
        return s.scalar(select(func.count()).select_from(Comment)
                        .where(Comment.id.in_(ids), Comment.status == "pending")) == 0


def submit_many(service, n: int, prefix: str) -> list[str]:  # type: ignore[no-untyped-def]
    from services.comments.shapes import NewComment

    bodies = ["Thanks for the balanced piece on {}.", "My clinic visit {} went fine, no issues.",
              "Is session {} covered by insurance?", "Buy cheap ketamine now, DM @kshop{}"]
    return [service.submit(DEMO, NewComment(author=f"{prefix}{i}",
                                            body=bodies[i % 4].format(i)))[0].id for i in range(n)]


@pytest.mark.parametrize("n", [pytest.param(200, id="200"),
                               pytest.param(1000, id="1000", marks=pytest.mark.long)])
def test_sigkill_worker_mid_stream_every_comment_decided_exactly_once(
        n, live_service, worker_factory, process_factory, queue_settings):
    # The whole system: workers and beat's sweeper. Unacknowledged messages come back after the
    # visibility timeout; a message a worker had popped from Redis but not yet recorded as
    # unacknowledged when it died (the Redis transport's small at-most-once window) is re-sent
    # by the sweeper, because the comment is still pending in the database.
    cfg = replace(queue_settings, sweep_interval=2, sweep_grace=15)
    ids = submit_many(live_service, n, "k")
    first = worker_factory(concurrency=2, settings=cfg)
    process_factory(cfg, "beat")
    wait_for(lambda: all_decided(live_service, ids[: n // 10]), timeout=90, interval=0.02)
    first.kill()  # SIGKILL: no goodbye, messages it held are unacknowledged
    worker_factory(concurrency=2, settings=cfg)
    wait_for(lambda: all_decided(live_service, ids), timeout=240, interval=0.5)
    decided_once(live_service, ids)


def _redis_server(port: int) -> subprocess.Popen[bytes]:
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is needed on PATH for the Redis restart test")
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL)
    wait_port(port)
    return proc


@pytest.mark.parametrize("n", [pytest.param(100, id="100"),
                               pytest.param(500, id="500", marks=pytest.mark.long)])
def test_redis_restarted_empty_the_sweeper_decides_every_pending_comment(
        n, settings, process_factory, events):
    from services.comments.service import CommentService
    from services.db import Database
    from services.queue.sender import TaskSender

    port = free_port()
    redis_proc = _redis_server(port)
    try:
        cfg = replace(settings, redis_url=f"redis://127.0.0.1:{port}/0", sweep_interval=1,
                      sweep_grace=1)
        svc = CommentService(Database(cfg.database_url), dispatch=TaskSender(cfg).moderate,
                             publisher=events)
        svc.add_article(DEMO, "Ketamine")
        ids = submit_many(svc, n, "r")  # queued in Redis; no worker yet
        redis_proc.send_signal(signal.SIGKILL)
        redis_proc.wait(10)
        redis_proc = _redis_server(port)  # back, and empty: every message is gone
        process_factory(cfg, "worker", "-c", "2")
        process_factory(cfg, "beat")
        wait_for(lambda: all_decided(svc, ids), timeout=180, interval=0.5)
        decided_once(svc, ids)
    finally:
        redis_proc.kill()
        redis_proc.wait(10)


class TcpProxy:
    """A loopback proxy in front of PostgreSQL that the test can cut and restore."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.up = True
        self.conns: list[socket.socket] = []
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass

    def cut(self) -> None:
        self.up = False
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.conns.clear()

    def restore(self) -> None:
        self.up = True


def test_database_outage_answers_503_writes_nothing_half_and_recovers(settings, service):
    from sqlalchemy.engine import make_url

    from services.api import create_app
    from services.comments.service import CommentService
    from services.db import Database

    url = make_url(settings.database_url)
    if url.get_backend_name() != "postgresql":
        pytest.skip("needs a database server to take away (set TEST_DATABASE_URL to PostgreSQL)")
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    cfg = replace(settings, database_url=proxied)
    svc = CommentService(Database(proxied), dispatch=lambda *_: None, publisher=None)
    client = create_app(cfg, service=svc).test_client()
    before = client.post(URL, json={"author": "A", "body": "before"})
    assert before.status_code == 202
    proxy.cut()
    during = client.post(URL, json={"author": "A", "body": "during the outage"})
    assert during.status_code == 503 and during.mimetype == "application/problem+json"
    assert during.headers.get("Retry-After")
    assert client.get("/readyz").status_code == 503
    time.sleep(2)
    proxy.restore()
    after = wait_for(lambda: (r := client.post(URL, json={"author": "A", "body": "after"})).status_code == 202 and r,
                     timeout=30, interval=0.5)
    assert after.status_code == 202
    with service.db.session() as s:
        bodies = [b for (b,) in s.execute(select(Comment.body))]
    assert "during the outage" not in bodies and {"before", "after"} <= set(bodies)


@pytest.mark.parametrize("total", [pytest.param(800, id="800"),
                                   pytest.param(5000, id="5000", marks=pytest.mark.long)])
def test_32_clients_retrying_with_idempotency_keys_lose_and_duplicate_nothing(
        total, settings, service, api_factory):
    _, root = api_factory(settings, WEB_CONCURRENCY="2")
    base = f"{root}{URL}"
    keys = [uuid.uuid4().hex for _ in range(total)]
    answers: dict[str, set[str]] = {k: set() for k in keys}
    errors: list[str] = []
    rng = random.Random(7)
    drops = [rng.random() < 0.2 for _ in keys]  # one in five answers is "lost" and retried

    def client(chunk: list[int]) -> None:
        session = requests.Session()
        for i in chunk:
            body = json.dumps({"author": f"c{i % 97}", "body": f"Comment {i} on the spray."})
            for attempt in range(5):
                try:
                    r = session.post(base, data=body, timeout=10,
                                     headers={"Content-Type": "application/json",
                                              "Idempotency-Key": keys[i]})
                except requests.RequestException:
                    continue
                if r.status_code == 202:
                    answers[keys[i]].add(r.json()["id"])
                    if drops[i] and attempt == 0:
                        continue  # pretend the answer never arrived: retry with the same key
                    break
            else:
                errors.append(keys[i])

    chunks = [list(range(total))[j::32] for j in range(32)]
    threads = [threading.Thread(target=client, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert errors == []
    assert all(len(ids) == 1 for ids in answers.values())
    with service.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Comment)) == total
    assert len({next(iter(v)) for v in answers.values()}) == total
