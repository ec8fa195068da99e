"""Engine and sessions; the same SQLAlchemy code runs on SQLite and PostgreSQL."""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, create_engine, event, insert
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger("triage.db")


# Bytes of write-ahead log kept on disk once the log starts over (SQLite's journal_size_limit).
WAL_SIZE_LIMIT = 64 * 1024 * 1024
# How long a write waits for a locked SQLite file (and for the writers' turn) before it gives
# up with "database is locked", which the API answers as 503 with Retry-After: well inside
# gunicorn's 30 s timeout, so a locked file costs a client seconds, never a killed worker.
SQLITE_LOCK_WAIT = 3.0


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL and a busy timeout so API and workers can share a file."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_LOCK_WAIT}, hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            # A log that did grow (a checkpoint that could not copy everything while readers
            # or writers kept using it: 424 MB after about 28,000 posts, before the hot insert
            # checkpointed inside the writers' turn) keeps its size on disk when it starts
            # over, unless a limit makes SQLite cut it back.
            cur.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={int(SQLITE_LOCK_WAIT * 1000)}")
            cur.close()

        return engine
    # hide_parameters: an error's log line names the statement, never the values (emails, bodies).
    engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, hide_parameters=True)
    if parsed.get_backend_name() == "postgresql":

        @event.listens_for(engine, "connect")
        def _custom_plans(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            # The driver prepares a statement once it has run five times, and PostgreSQL may
            # then keep one plan for all values, made for the table as it was. On a new
            # database without autovacuum, the engine's UPDATE (by id, version and status,
            # then run once per comment) kept the plan made while `comments` was nearly
            # empty, a walk of the status index: with 10,000 comments pending, a batch of 250
            # took about a second instead of 130-280 ms. Here each execution is planned for
            # its values and the table as it is now; the statement is still parsed only once.
            # (The hot insert, whose plan never changes, keeps its own: see
            # Database._hot_connection.)
            with dbapi_conn.cursor() as cur:
                cur.execute("SET plan_cache_mode = force_custom_plan")
            dbapi_conn.commit()

    return engine


# Guards a WriterLock's opening in each process; keyed by pid so that a forked child never
# inherits one held by a thread of its parent.
_OPENING: dict[int, threading.Lock] = {}
# Hot inserts (about four log pages each) a connection commits between two checkpoints. With
# two API processes the log then holds about 15 MB at most: at 2,100-2,970 posts a second, 512
# kept it at 13-15 MB, 1024 at 26-29 MB, 2048 at 57 MB, with no clear difference in posts a
# second; 64 cost some (2,170-2,610).
HOT_CHECKPOINT_EVERY = 512
# PostgreSQL's code for a unique violation: an insert's retry finding its own committed row.
UNIQUE_VIOLATION = "23505"
# Connections a forked child inherited (see Database._hot_connection).
_INHERITED: list[Any] = []


def _locked() -> OperationalError:
    return OperationalError("writer lock", None, sqlite3.OperationalError("database is locked"))


class _Waited(Exception):
    """The wait for the writers' flock ran out."""


def _flock_until(fd: int, deadline: float) -> None:
    """flock LOCK_EX, given up at `deadline`. Free, it is taken at once; taken by another
    process, a main thread (gunicorn's and Celery's workers run requests and tasks there)
    sleeps in flock, woken the moment it is released, with a timer to end the wait; another
    thread polls."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    if threading.current_thread() is threading.main_thread():
        def expire(_signum: int, _frame: object) -> None:
            raise _Waited()

        previous = signal.signal(signal.SIGALRM, expire)
        try:
            signal.setitimer(signal.ITIMER_REAL, max(deadline - time.monotonic(), 0.001))
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                return
            except _Waited:
                pass
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        finally:
            signal.signal(signal.SIGALRM, previous)
    pause = 0.0002
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # also: the timer fired just as it came
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise _locked() from None
        time.sleep(pause)
        pause = min(pause * 2, 0.005)


class WriterLock:
    """The hot writes (`Database.writing`, `Database.insert_committed`) of one SQLite file, in
    every process, take turns on an flock.

    SQLite lets one writer in at a time, and a connection that finds the file locked sleeps
    (1 ms, then 2, 5…) before it looks again: under concurrent posts about one post in five
    slept so, 1.3 ms on average. A waiter on an flock is woken the moment the lock is
    released. Other writes (a moderator's decision, a report) wait in SQLite's own way."""

    def __init__(self, path: str) -> None:
        self.path = path
        # (pid, descriptor or -1, lock for this process's threads), replaced as a whole.
        self._state: tuple[int, int, threading.Lock] | None = None

    def _mine(self) -> tuple[int, int, threading.Lock]:
        pid = os.getpid()
        state = self._state
        if state is not None and state[0] == pid:
            return state
        with _OPENING.setdefault(pid, threading.Lock()):
            state = self._state
            if state is not None and state[0] == pid:  # another thread opened it meanwhile
                return state
            if state is not None and state[1] >= 0:
                # Inherited across fork: the parent's open file, so the parent's lock.
                os.close(state[1])
            try:
                # flock needs no write access: any process that may read the file can queue.
                fd = os.open(self.path, os.O_RDONLY | os.O_CREAT, 0o644)
            except OSError as exc:
                # Only a speed-up: SQLite's own locking keeps writes correct without it.
                fd = -1
                log.warning("writer lock unavailable; SQLite's own locking only",
                            extra={"path": self.path, "error": str(exc)})
            # An flock belongs to an open file, not a thread: threads queue on this first.
            state = self._state = (pid, fd, threading.Lock())
            return state

    @contextmanager
    def held(self) -> Iterator[None]:
        turn = self.acquire()
        try:
            yield
        finally:
            self.release(turn)

    def acquire(self, wait: float = SQLITE_LOCK_WAIT) -> tuple[int, threading.Lock]:
        """Wait for the turn, `wait` seconds at most ("database is locked" then); pass what it
        returns to `release` (for the hottest path, where a generator-based context manager
        costs as much as the lock itself)."""
        _, fd, threads = self._mine()
        deadline = time.monotonic() + wait
        if not threads.acquire(timeout=wait):
            raise _locked()
        if fd >= 0:
            try:
                _flock_until(fd, deadline)
            except BaseException:
                threads.release()
                raise
        return fd, threads

    @staticmethod
    def release(turn: tuple[int, threading.Lock]) -> None:
        fd, threads = turn
        try:
            if fd >= 0:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            threads.release()


class Database:
    """One engine and its session factory for a process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        parsed = make_url(url)
        self.writer_lock: WriterLock | None = None
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            self.writer_lock = WriterLock(f"{parsed.database}-writer.lock")
        self._hot = threading.local()

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """A Core transaction for the hot writes (a new comment, a batch of decisions); on a
        SQLite file it first waits its turn among writers (see WriterLock)."""
        turn = self.writer_lock.held() if self.writer_lock is not None else nullcontext()
        with turn, self.engine.begin() as conn:
            yield conn

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A Core connection for reads that need no snapshot of their own (each statement sees
        what is committed). On PostgreSQL it is in autocommit: no BEGIN before the reads and
        no ROLLBACK after, which is also what keeps the driver's prepared statements (every
        ROLLBACK discards them: a worker's batch read through a rolled-back connection had its
        statements planned afresh each time). SQLite's driver opens no transaction for a
        read, and switching its connection to autocommit and back cost a statement on every
        return (a read 56-70 us instead of 32-37), so it is left as it is."""
        with self.engine.connect() as conn:
            if self.engine.dialect.name == "postgresql":
                conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn

    def insert_committed(self, statement: RowInsert, values: Mapping[str, Any]) -> None:
        """Insert one row through `statement` and commit it, as `writing()` would.

        The hottest write (a new comment) runs on a DBAPI connection kept by each thread,
        without SQLAlchemy's pool checkout, Connection and Transaction: those cost about as
        much as the database's own insert and commit. On a SQLite file it takes the writers'
        turn (see WriterLock); on PostgreSQL it is one statement in autocommit, a single round
        trip where the pool's liveness check, BEGIN, INSERT and COMMIT took four."""
        if self.writer_lock is not None:
            self._insert_sqlite(statement, values)
        elif self.engine.dialect.name == "postgresql":
            self._insert_autocommit(statement, values)
        else:
            with self.writing() as conn:
                statement.run(conn, values)

    def _insert_sqlite(self, statement: RowInsert, values: Mapping[str, Any]) -> None:
        # A SQLite connection is a handle on a local file and cannot go stale.
        assert self.writer_lock is not None
        dialect = self.engine.dialect
        raw = self._hot_connection()
        args = statement.params(values)  # before the turn: other writers wait less
        turn = self.writer_lock.acquire()
        try:
            _run_control(raw, dialect, "BEGIN")
            statement.execute_dbapi(raw, dialect, args)
            _run_control(raw, dialect, "COMMIT")
            self._hot.commits += 1
            if self._hot.commits % HOT_CHECKPOINT_EVERY == 0:
                # Inside the writers' turn: with no other writer appending meanwhile, the
                # checkpoint copies the whole log, and the next commit starts the log over.
                # Run outside it (PASSIVE lets writers go on), it never caught up while posts
                # kept coming from two processes: the log grew by about 150 MB every 4 s of
                # posting (870 MB after 24 s, for a 33 MB database), and posts a second fell
                # as it grew, 2,500-2,860 at first, 2,080-2,160 in the fifth run; checkpointed in
                # the turn it stays at about 15 MB (five 4 s runs in a row: 2,580-2,940 posts
                # a second with a checkpoint every 256 commits). The row is committed: a
                # checkpoint that cannot run now is no error of this insert.
                try:
                    raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except dialect.loaded_dbapi.Error as exc:
                    log.debug("checkpoint skipped", extra={"error": str(exc)})
        except BaseException:
            try:
                if raw.in_transaction:
                    raw.execute("ROLLBACK")
            except dialect.loaded_dbapi.Error:
                pass  # the error that brought us here is the one to report
            raise
        finally:
            self.writer_lock.release(turn)

    def _insert_autocommit(self, statement: RowInsert, values: Mapping[str, Any]) -> None:
        """The row as a statement of its own, committed by the server before it answers.

        A server connection can go stale (a restart, an idle timeout), which the pool would
        have caught with its liveness check: here the insert finds out, and runs once more on
        a new connection. If the lost answer was to a commit that happened, the row is there
        already, under the same primary key: the retry's unique violation means done."""
        dialect = self.engine.dialect
        args = statement.params(values)
        raw = self._hot_connection()
        try:
            statement.execute_dbapi(raw, dialect, args)
            return
        except DBAPIError as err:
            if not dialect.is_disconnect(cast(Any, err.orig), raw, None):
                raise
            log.warning("database connection lost; inserting again on a new one",
                        extra={"error": str(err.orig)})
            self._drop_hot_connection()
        raw = self._hot_connection()
        try:
            statement.execute_dbapi(raw, dialect, args)
        except IntegrityError as err:
            if getattr(err.orig, "sqlstate", None) != UNIQUE_VIOLATION:
                raise
            log.info("the lost insert had committed", extra={"error": str(err.orig)})

    def _hot_connection(self) -> Any:
        # Per thread, and per process: a connection must never be used across a fork.
        mine = getattr(self._hot, "conn", None)
        pid = os.getpid()
        if mine is not None and mine[0] == pid:
            return mine[1]
        if mine is not None:
            # Inherited across fork: closing it here could let SQLite checkpoint and remove
            # the WAL under the parent's feet, or end the parent's PostgreSQL session, so it is
            # kept, unused, for the process's life.
            _INHERITED.append(mine[1])
        dialect = self.engine.dialect
        try:
            pooled = self.engine.raw_connection()  # runs the engine's connect hooks (PRAGMAs)
        except dialect.loaded_dbapi.Error as err:
            # The pool raises the driver's own error here; callers (the API's 503) expect
            # SQLAlchemy's, as from engine.connect().
            raise DBAPIError.instance(None, None, err, dialect.loaded_dbapi.Error,
                                      dialect=dialect) from err
        pooled.detach()  # ours for good: closed with the thread, never returned to the pool
        # The driver's own connection (sqlite3's or psycopg's), with their own attributes.
        raw: Any = pooled.dbapi_connection
        if dialect.name == "sqlite":
            # Its commits leave the checkpoint to insert_committed, which runs it every
            # HOT_CHECKPOINT_EVERY commits (SQLite's own would run at the first commit after
            # 1000 pages, and be an insert's cost wherever it fell).
            raw.execute("PRAGMA wal_autocheckpoint=0").fetchall()
            # Transactions by explicit BEGIN and COMMIT, which the driver keeps prepared; its
            # own implicit ones parse "BEGIN" and "COMMIT" afresh for every transaction.
            raw.isolation_level = None
        else:
            raw.rollback()  # whatever the pool's first-connect checks left open
            raw.autocommit = True
            # An INSERT of one row has one plan whatever its values and the table's size, so
            # this connection keeps its prepared statement's plan (see make_engine): planning
            # each insert cost PostgreSQL about a third more CPU per post (692-739 us instead
            # of 491-578, in three interleaved pairs).
            raw.execute("RESET plan_cache_mode")
        self._hot.conn = (pid, raw)
        self._hot.commits = 0
        return raw

    def _drop_hot_connection(self) -> None:
        mine = getattr(self._hot, "conn", None)
        self._hot.conn = None
        if mine is not None and mine[0] != os.getpid():
            _INHERITED.append(mine[1])  # the parent's: never closed here (see _hot_connection)
        elif mine is not None:
            try:
                mine[1].close()
            except Exception:  # noqa: BLE001 - it is broken already; a new one replaces it
                pass

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        session = self.sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        """Close pooled connections and this thread's hot one (after fork, at shutdown); a
        hot connection inherited across a fork is left to the parent."""
        self._drop_hot_connection()
        self.engine.dispose()


def _run_control(raw: Any, dialect: Dialect, sql: str) -> None:
    """BEGIN or COMMIT on a DBAPI connection; the driver's errors come out as SQLAlchemy's."""
    try:
        raw.execute(sql)
    except dialect.loaded_dbapi.Error as err:
        raise DBAPIError.instance(sql, None, err, dialect.loaded_dbapi.Error,
                                  dialect=dialect) from err


class RowInsert:
    """An INSERT of a whole row, compiled once for a dialect and run on the DBAPI cursor.

    For the hottest write (a new comment): SQLAlchemy's execution path (execution context,
    result set, events) costs more than SQLite's insert itself. This keeps SQLAlchemy's SQL
    and its bind processors (JSON, datetimes), so the row is stored exactly as the ORM would
    store it on either database, and skips the rest."""

    def __init__(self, table: Table, dialect: Dialect) -> None:
        compiled = insert(table).compile(dialect=dialect)
        self.sql = str(compiled)
        self.positional = bool(compiled.positional)
        self.keys: list[str] = list(compiled.positiontup or []) if self.positional else [
            c.key for c in table.c]
        impls = {c.key: c.type.dialect_impl(dialect) for c in table.c}
        self.processors = [(k, impls[k].bind_processor(dialect)) for k in self.keys]

    def run(self, conn: Connection, values: Mapping[str, Any]) -> None:
        """Insert one row (every column given) inside `conn`'s transaction; the driver's
        errors come out as SQLAlchemy's (IntegrityError, OperationalError…), as from
        `conn.execute`, so callers and the API's error mapping see no difference."""
        self.execute_dbapi(conn.connection.dbapi_connection, conn.dialect, self.params(values))

    def params(self, values: Mapping[str, Any]) -> Any:
        """The driver's parameters for a row: SQLAlchemy's bind processors applied."""
        params = [proc(values[k]) if proc is not None else values[k]
                  for k, proc in self.processors]
        return params if self.positional else dict(zip(self.keys, params))

    def execute_dbapi(self, dbapi_conn: Any, dialect: Dialect, args: Any) -> None:
        """Run the INSERT with parameters from `params` on a DBAPI connection."""
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute(self.sql, args)
        except dialect.loaded_dbapi.Error as err:
            raise DBAPIError.instance(self.sql, args, err, dialect.loaded_dbapi.Error,
                                      hide_parameters=True, dialect=dialect) from err
        finally:
            cursor.close()
