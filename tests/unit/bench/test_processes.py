"""The benchmark's process helpers: waiting for a quiet stack, and timing the filter chain in a
process of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from bench.classify import ClassifyAlone
from bench.stack import cpu_seconds, wait_quiet
from services.config import ROOT


def _parent_of(child_code: str) -> subprocess.Popen[bytes]:
    """A process that sleeps while its child runs `child_code` (a tree, in a session of its own)."""
    code = ("import subprocess, sys, time; "
            f"subprocess.Popen([sys.executable, '-c', {child_code!r}]); time.sleep(60)")
    return subprocess.Popen([sys.executable, "-c", code], start_new_session=True)


def _end(tree: subprocess.Popen[bytes]) -> None:
    os.killpg(tree.pid, signal.SIGKILL)
    tree.wait()


def test_a_busy_child_keeps_the_stack_from_going_quiet():
    tree = _parent_of("while True: pass")
    try:
        time.sleep(0.5)
        t0 = time.monotonic()
        quiet, waited = wait_quiet([tree.pid], time.monotonic() + 1.0, window=0.3)
        assert not quiet
        assert waited >= 1.0 and time.monotonic() - t0 < 3
        assert cpu_seconds([tree.pid]) < 0.3  # the parent only sleeps: the child was counted
    finally:
        _end(tree)


def test_an_idle_tree_is_quiet_at_the_first_look():
    tree = _parent_of("import time; time.sleep(60)")
    try:
        time.sleep(1.0)  # past the interpreters' start
        quiet, waited = wait_quiet([tree.pid], time.monotonic() + 10, window=0.3)
        assert quiet and waited < 1.0
    finally:
        _end(tree)


def test_the_filter_chain_is_timed_in_a_process_of_its_own():
    alone = ClassifyAlone(ROOT, timeout=120)
    alone.wait_ready()
    figures = alone.run()
    assert figures["comments"] > 0
    assert figures["samples"] == 3 * figures["comments"]
    assert 0 < figures["p50"] <= figures["p99"]
    assert not alone.proc.is_alive()


def test_the_benchmark_measures_in_a_database_of_its_own_and_drops_it(database_url):
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from bench.stack import scratch_database

    with scratch_database(database_url, "t1") as (url, name):
        if make_url(database_url).get_backend_name() != "postgresql":
            assert (url, name) == (database_url, None)  # SQLite: the run's own file already
            return
        assert name and make_url(url).database == name != make_url(database_url).database
        engine = create_engine(url)
        with engine.begin() as conn:  # a database that takes writes, empty of ours
            conn.execute(text("CREATE TABLE marker (id int)"))
        held = engine.connect()  # left open, as a killed process would leave its session
        held.execute(text("SELECT 1"))
    server = create_engine(database_url)
    with server.connect() as conn:
        left = conn.execute(text("SELECT count(*) FROM pg_database WHERE datname = :n"), {"n": name})
        assert left.scalar() == 0
    server.dispose()
    held.invalidate()  # its session ended with the database: nothing to hand back to the pool
    engine.dispose()


def test_without_the_right_to_create_a_database_the_benchmark_uses_the_one_it_was_given(database_url):
    import pytest
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from bench.stack import scratch_database

    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        pytest.skip("needs a database server (set TEST_DATABASE_URL to PostgreSQL)")
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("DROP ROLE IF EXISTS triage_bench_nocreate"))
        conn.execute(text("CREATE ROLE triage_bench_nocreate LOGIN NOCREATEDB"))
    try:
        plain = url.set(username="triage_bench_nocreate", password=None)
        given = plain.render_as_string(hide_password=False)
        with scratch_database(given, "t2") as (got, name):
            assert (got, name) == (given, None)
    finally:
        with admin.connect() as conn:
            conn.execute(text("DROP ROLE IF EXISTS triage_bench_nocreate"))
        admin.dispose()
