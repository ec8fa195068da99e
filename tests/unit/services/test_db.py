"""Writers of one SQLite file take turns on a lock shared by every process."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text

from services.db import Database, WriterLock


def _write(url: str, started: Any, out: Any) -> None:
    db = Database(url)
    started.set()
    with db.writing() as conn:
        out.put(time.monotonic())
        conn.execute(text("INSERT INTO t VALUES (2)"))


def _take(lock: WriterLock, started: Any, out: Any) -> None:
    started.set()
    with lock.held():
        out.put(time.monotonic())


def _entered_after_release(ctx: Any, target: Any, args: tuple[Any, ...], hold: Any) -> None:
    started, out = ctx.Event(), ctx.Queue()
    with hold():
        child = ctx.Process(target=target, args=(*args, started, out))
        child.start()
        assert started.wait(30)
        time.sleep(0.3)
        released = time.monotonic()
    entered = out.get(timeout=30)
    child.join(30)
    assert child.exitcode == 0
    assert entered >= released


def test_a_writer_in_another_process_waits_for_the_one_writing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    db = Database(url)
    with db.engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))

    def hold():  # type: ignore[no-untyped-def]
        return db.writing()

    _entered_after_release(multiprocessing.get_context("spawn"), _write, (url,), hold)
    with db.engine.connect() as conn:
        assert [r[0] for r in conn.execute(text("SELECT x FROM t ORDER BY x"))] == [2]


def test_a_forked_process_takes_the_lock_itself(tmp_path: Path) -> None:
    # gunicorn and Celery fork their workers: a descriptor inherited from the parent would be
    # the parent's lock, and the child would walk straight in while the parent holds it.
    lock = WriterLock(str(tmp_path / "w.lock"))
    with lock.held():
        pass  # opened in this process before the fork
    _entered_after_release(multiprocessing.get_context("fork"), _take, (lock,), lock.held)


def test_only_a_sqlite_file_has_a_writer_lock(tmp_path: Path) -> None:
    assert Database("sqlite:///:memory:").writer_lock is None
    assert Database(f"sqlite:///{tmp_path / 'f.db'}").writer_lock is not None


def test_without_a_lock_file_writes_go_on_under_sqlites_own_locking(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'w.db'}")
    assert db.writer_lock is not None
    db.writer_lock.path = str(tmp_path / "missing" / "w.lock")  # a folder that is not there
    with db.writing() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
        conn.execute(text("INSERT INTO t VALUES (1)"))
    with db.writing() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 1


def test_threads_racing_to_open_the_lock_take_turns_and_leave_it_free(
        tmp_path: Path, monkeypatch: Any) -> None:
    import fcntl
    import os
    import threading

    lock = WriterLock(str(tmp_path / "w.lock"))
    real_open, real_getpid = os.open, os.getpid

    def slow(real: Any, pause: float) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            time.sleep(pause)  # widens the window in which threads find the lock unopened
            return real(*args, **kwargs)
        return call

    monkeypatch.setattr(os, "open", slow(real_open, 0.05))
    monkeypatch.setattr(os, "getpid", slow(real_getpid, 0.01))
    inside, most, done = [0], [0], []
    count = threading.Lock()

    def write() -> None:
        with lock.held():
            with count:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(0.05)
            with count:
                inside[0] -= 1
            done.append(1)

    threads = [threading.Thread(target=write, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    monkeypatch.undo()
    assert len(done) == 4, "a thread is stuck waiting for a lock nobody will release"
    assert most[0] == 1, "two writers were inside at once"
    fd = os.open(str(tmp_path / "w.lock"), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if the lock was left held
    finally:
        os.close(fd)


def _hot_on(url: str) -> tuple[Database, Any]:
    from sqlalchemy import Column, Integer, MetaData, String, Table

    from services.db import RowInsert

    table = Table("hot", MetaData(), Column("id", Integer, primary_key=True, autoincrement=False),
                  Column("note", String(40)))
    db = Database(url)
    table.metadata.create_all(db.engine)
    return db, RowInsert(table, db.engine.dialect)


def _hot_table(tmp_path: Path) -> tuple[Database, Any]:
    return _hot_on(f"sqlite:///{tmp_path / 'hot.db'}")


def _rows(db: Database) -> list[tuple[int, str]]:
    with db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT id, note FROM hot ORDER BY id"))]


def test_a_hot_insert_is_committed_and_a_failed_one_leaves_the_connection_usable(tmp_path: Path) -> None:
    from sqlalchemy.exc import IntegrityError

    db, ins = _hot_table(tmp_path)
    db.insert_committed(ins, {"id": 1, "note": "first"})
    assert _rows(db) == [(1, "first")]  # seen by another connection: committed
    try:
        db.insert_committed(ins, {"id": 1, "note": "again"})
        raise AssertionError("a duplicate key must fail")
    except IntegrityError:
        pass  # SQLAlchemy's error, as conn.execute would raise
    db.insert_committed(ins, {"id": 2, "note": "after"})
    assert _rows(db) == [(1, "first"), (2, "after")]
    with db.writing() as conn:  # nothing left open: the lock and the file are free
        conn.execute(text("INSERT INTO hot VALUES (3, 'core')"))
    assert len(_rows(db)) == 3


def test_threads_and_a_forked_child_each_insert_on_their_own_connection(tmp_path: Path) -> None:
    import os
    import threading

    db, ins = _hot_table(tmp_path)
    db.insert_committed(ins, {"id": 1, "note": "parent"})
    errors: list[BaseException] = []

    def insert(i: int) -> None:
        try:
            for k in range(20):
                db.insert_committed(ins, {"id": 100 * i + k, "note": f"thread {i}"})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=insert, args=(i,)) for i in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            db.insert_committed(ins, {"id": 9, "note": "child"})
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    db.insert_committed(ins, {"id": 10, "note": "parent again"})
    rows = _rows(db)
    assert len(rows) == 1 + 60 + 2 and (9, "child") in rows
    with db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"


def test_comment_ids_are_uuid7_unguessable_and_later_ones_sort_last() -> None:
    import uuid

    from services.comments.models import new_id

    first = [new_id() for _ in range(2000)]
    time.sleep(0.003)
    later = new_id()
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in first)
    parsed = uuid.UUID(later)
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert abs(int(later[:12], 16) - time.time() * 1000) < 5000  # milliseconds since the epoch
    assert later > max(first)
    assert len(set(first)) == len(first)
    # Ids of the same millisecond still differ in their random bits.
    same_ms = [i for i in first if i[:12] == first[0][:12]]
    assert len({i[13:] for i in same_ms}) == len(same_ms)


def test_the_hot_connection_checkpoints_every_so_many_inserts_itself(tmp_path: Path, monkeypatch: Any) -> None:
    import services.db as dbmod

    monkeypatch.setattr(dbmod, "HOT_CHECKPOINT_EVERY", 3)
    db, ins = _hot_table(tmp_path)
    db.insert_committed(ins, {"id": 0, "note": "opens the connection"})
    raw = db._hot_connection()
    assert raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0  # never inside a commit
    statements: list[str] = []
    raw.set_trace_callback(statements.append)
    for i in range(1, 8):
        db.insert_committed(ins, {"id": i, "note": "x"})
    assert sum("wal_checkpoint(PASSIVE)" in s for s in statements) == 2  # after the 3rd and 6th
    assert len(_rows(db)) == 8


def _post_rows(url: str, first: int, count: int, every: int) -> None:
    """A child process posting rows as fast as it can (see the test below)."""
    import services.db as dbmod

    dbmod.HOT_CHECKPOINT_EVERY = every
    db, ins = _hot_on(url)
    for i in range(first, first + count):
        db.insert_committed(ins, {"id": i, "note": "x" * 2000})
    db.dispose()


def test_the_log_stays_small_while_two_processes_keep_posting(tmp_path: Path) -> None:
    """Checkpoints run inside the writers' turn, so each copies the whole log and the log
    starts over: with two processes posting without pause it never outgrows a few
    checkpoints' worth of pages. (Run outside the turn, a checkpoint never caught up with the
    other process's commits, and the log grew with every post.)"""
    import multiprocessing
    import os

    url = f"sqlite:///{tmp_path / 'hot.db'}"
    db, _ins = _hot_on(url)  # the table, before the children race to create it
    every, count = 50, 1500
    ctx = multiprocessing.get_context("spawn")
    children = [ctx.Process(target=_post_rows, args=(url, k * count, count, every)) for k in range(2)]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=120)
        assert child.exitcode == 0
    assert len(_rows(db)) == 2 * count
    # The code that checkpointed after the turn left 31 MB of log here.
    assert os.path.getsize(tmp_path / "hot.db-wal") < 4 * 1024 * 1024


def test_a_checkpoint_that_cannot_run_does_not_fail_the_committed_insert(tmp_path: Path, monkeypatch: Any) -> None:
    import os
    import sqlite3

    import services.db as dbmod

    monkeypatch.setattr(dbmod, "HOT_CHECKPOINT_EVERY", 1)
    db, ins = _hot_table(tmp_path)
    db.insert_committed(ins, {"id": 0, "note": "opens the connection"})
    raw = db._hot_connection()

    class Busy:  # the connection, except that another process is checkpointing
        def __getattr__(self, name: str) -> Any:
            return getattr(raw, name)

        def execute(self, sql: str, *args: Any) -> Any:
            if "wal_checkpoint" in sql:
                raise sqlite3.OperationalError("database is locked")
            return raw.execute(sql, *args)

    db._hot.conn = (os.getpid(), Busy())
    db.insert_committed(ins, {"id": 1, "note": "committed all the same"})
    assert (1, "committed all the same") in _rows(db)


# -- the hot insert on whichever database the tests run on (PostgreSQL with TEST_DATABASE_URL) --

def _postgres_only(db: Database) -> None:
    import pytest

    if db.engine.dialect.name != "postgresql":
        pytest.skip("a server-side connection to lose needs PostgreSQL (set TEST_DATABASE_URL)")


def _postgres_hot(url: str) -> tuple[Database, Any]:
    """The hot table on PostgreSQL (else the test is skipped), its connection already open."""
    db, ins = _hot_on(url)
    _postgres_only(db)
    db.insert_committed(ins, {"id": 1, "note": "opens the connection"})
    return db, ins


def _kill_hot_session(db: Database) -> None:
    """End the hot connection's server session, as a server restart or an idle timeout would."""
    pid = db._hot_connection().info.backend_pid
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
    for _ in range(100):  # the session ends asynchronously
        with db.engine.connect() as conn:
            gone = not conn.execute(text("SELECT 1 FROM pg_stat_activity WHERE pid = :p"),
                                    {"p": pid}).first()
        if gone:
            return
        time.sleep(0.02)
    raise AssertionError("the session did not end")


def test_a_hot_insert_is_committed_when_it_returns_and_a_duplicate_still_fails(database_url: str) -> None:
    from sqlalchemy.exc import IntegrityError

    db, ins = _hot_on(database_url)
    db.insert_committed(ins, {"id": 1, "note": "first"})
    with db.engine.connect() as conn:  # another connection sees it: committed, not pending
        assert conn.execute(text("SELECT note FROM hot WHERE id = 1")).scalar() == "first"
    try:
        db.insert_committed(ins, {"id": 1, "note": "again"})
        raise AssertionError("a duplicate key must fail")
    except IntegrityError:
        pass
    db.insert_committed(ins, {"id": 2, "note": "after"})  # the connection is still usable
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM hot")).scalar() == 2
    db.dispose()


def test_a_hot_insert_on_a_lost_postgres_session_runs_again_on_a_new_one(database_url: str) -> None:
    db, ins = _postgres_hot(database_url)
    _kill_hot_session(db)
    db.insert_committed(ins, {"id": 2, "note": "after the loss"})
    with db.engine.connect() as conn:
        assert [tuple(r) for r in conn.execute(text("SELECT id, note FROM hot ORDER BY id"))] == [
            (1, "opens the connection"), (2, "after the loss")]
    db.dispose()


def test_an_insert_whose_commit_went_through_before_the_session_was_lost_is_done_once(
        database_url: str) -> None:
    db, ins = _postgres_hot(database_url)
    # The server committed row 2 and the answer never came back: the row is there, the
    # session is gone, and the caller does not know.
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO hot VALUES (2, 'committed')"))
    _kill_hot_session(db)
    db.insert_committed(ins, {"id": 2, "note": "committed"})  # no error: it is done
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM hot WHERE id = 2")).scalar() == 1
    db.dispose()


def test_reads_keep_postgres_prepared_statements_where_a_rollback_would_discard_them(
        database_url: str) -> None:
    db, ins = _hot_on(database_url)
    _postgres_only(db)
    db.insert_committed(ins, {"id": 1, "note": "x"})
    query = text("SELECT note FROM hot WHERE id = :id")

    def prepared(conn: Any) -> int:
        return int(conn.execute(text("SELECT count(*) FROM pg_prepared_statements")).scalar())

    for _ in range(8):  # the driver prepares a statement from its sixth run on a connection
        with db.reading() as conn:
            assert conn.execute(query, {"id": 1}).scalar() == "x"
    with db.reading() as conn:
        assert prepared(conn) >= 1
    # The same reads in a transaction that ends in ROLLBACK (engine.connect()'s way) lose them.
    with db.engine.connect() as conn:
        conn.execute(query, {"id": 1})
        conn.rollback()
        assert prepared(conn) == 0
    db.dispose()


def test_postgres_plans_each_execution_for_its_values_and_the_table_as_it_is(database_url: str) -> None:
    db = Database(database_url)
    _postgres_only(db)
    # The pool's connections, for reads and writes alike.
    with db.reading() as conn:
        assert conn.execute(text("SHOW plan_cache_mode")).scalar() == "force_custom_plan"
    with db.writing() as conn:
        assert conn.execute(text("SHOW plan_cache_mode")).scalar() == "force_custom_plan"
    # The hot insert's own keeps PostgreSQL's choice: one row's INSERT has one plan.
    cur = db._hot_connection().execute("SHOW plan_cache_mode")
    assert cur.fetchone()[0] == "auto"
    db.dispose()


def test_a_grown_write_ahead_log_is_cut_back_once_it_starts_over(tmp_path: Path, monkeypatch: Any) -> None:
    import os

    import services.db as dbmod

    monkeypatch.setattr(dbmod, "HOT_CHECKPOINT_EVERY", 10**9)  # the log grows as under load
    monkeypatch.setattr(dbmod, "WAL_SIZE_LIMIT", 64 * 1024)
    db, ins = _hot_table(tmp_path)
    wal = tmp_path / "hot.db-wal"
    for i in range(400):
        db.insert_committed(ins, {"id": i, "note": "x" * 2000})
    grown = os.path.getsize(wal)
    assert grown > 10 * 64 * 1024
    raw = db._hot_connection()
    raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()  # a lull: it catches up
    db.insert_committed(ins, {"id": 400, "note": "starts the log over"})
    assert os.path.getsize(wal) <= 64 * 1024 + 8192
    assert len(_rows(db)) == 401


def _hold_flock(path: str, started: Any, stop: Any) -> None:
    import fcntl
    import os

    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    started.set()
    stop.wait(60)


def _gives_up(call: Any, within: float = 20.0) -> BaseException | None:
    """Run `call` in a thread; the error it ended with, or a failure if it is still waiting."""
    import threading

    out: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            out.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(within)
    assert out, f"still waiting after {within} s"
    return out[0]


def test_a_writer_stuck_in_another_process_is_given_up_on_as_a_locked_database(tmp_path: Path) -> None:
    """The writers' turn is waited for a few seconds, not forever (SQLITE_LOCK_WAIT), in the
    main thread (woken by a timer) and in any other."""
    from sqlalchemy.exc import OperationalError

    url = f"sqlite:///{tmp_path / 'w.db'}"
    db = Database(url)
    assert db.writer_lock is not None
    ctx = multiprocessing.get_context("spawn")
    started, stop = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_flock, args=(db.writer_lock.path, started, stop))
    holder.start()
    try:
        assert started.wait(30)
        err = _gives_up(lambda: db.writer_lock.acquire(wait=0.5))  # type: ignore[union-attr]
        assert isinstance(err, OperationalError) and "locked" in str(err)
        try:
            db.writer_lock.acquire(wait=0.5)
        except OperationalError as exc:
            assert "locked" in str(exc)
        else:
            raise AssertionError("the main thread took a lock another process holds")
    finally:
        stop.set()
        holder.join(30)
    db.writer_lock.release(db.writer_lock.acquire())  # free again: taken at once


def test_a_locked_sqlite_file_is_a_prompt_503_with_retry_after(settings: Any, service: Any) -> None:
    import sqlite3

    from services.api import create_app
    from tests.conftest import DEMO

    if not settings.database_url.startswith("sqlite"):
        import pytest

        pytest.skip("SQLite's file locking")
    client = create_app(settings, service=service).test_client()
    path = settings.database_url.removeprefix("sqlite:///")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        answers: list[Any] = []
        err = _gives_up(lambda: answers.append(client.post(
            f"/v1/articles/{DEMO}/comments", json={"author": "A", "body": "while locked"})))
        assert err is None
        resp = answers[0]
        assert resp.status_code == 503 and int(resp.headers["Retry-After"]) > 0
        assert resp.mimetype == "application/problem+json"
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_database_errors_never_carry_the_statement_parameters(database_url: str) -> None:
    """An error's text (what a log line prints) names the statement, never an email or body."""
    from sqlalchemy.exc import DBAPIError

    from services.comments import repository as repo
    from services.comments.models import utcnow
    from services.db import RowInsert

    db = Database(database_url)
    secret = "victim@example.org"
    values = {c.key: None for c in repo.COMMENTS_TABLE.c}
    values.update(id="x" * 32, article_id=999999, author="A", email=secret, body="private body",
                  status="pending", priority="normal", rank=1, categories=[], findings=[], scores={},
                  report_count=0, version=1, created_at=utcnow())
    insert = RowInsert(repo.COMMENTS_TABLE, db.engine.dialect)
    errors: list[str] = []

    def through_core() -> None:
        with db.engine.begin() as conn:
            conn.execute(repo.COMMENTS_TABLE.insert(), values)

    for attempt in (lambda: db.insert_committed(insert, values), through_core):
        try:
            attempt()
        except DBAPIError as exc:
            errors.append(str(exc))
    assert len(errors) == 2, "the unknown article must be refused (foreign key)"
    assert not any(secret in e or "private body" in e for e in errors), errors
    db.dispose()
