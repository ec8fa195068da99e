"""The benchmark's own stack: Redis, API and worker processes, paused and stopped by us only."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from services.devstack import die_with_parent, free_port, redis_answers

__all__ = ["free_port", "redis_answers", "scratch_database", "Stack"]


# The same helpers `make run` uses: a free port, Redis liveness, children that die with us.
_child_setup = die_with_parent


class Stack:
    """Processes the benchmark started, by name; stop() ends every one of them."""

    def __init__(self, repo: Path, logs: Path, env: dict[str, str]) -> None:
        self.repo = repo
        self.logs = logs
        self.env = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._files: list[IO[bytes]] = []
        logs.mkdir(parents=True, exist_ok=True)

    def _log(self, name: str) -> IO[bytes]:
        f = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self._files.append(f)
        return f

    def start_redis(self, fallback_url: str) -> str:
        """A private redis-server on a free port; REDIS_URL when there is no redis-server."""
        server = shutil.which("redis-server")
        if not server:
            if not redis_answers(fallback_url):
                raise SystemExit(f"no redis-server on PATH and nothing answers at {fallback_url}")
            return fallback_url
        port = free_port()
        log = self._log("redis")
        self.procs["redis"] = subprocess.Popen(
            [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=log, stderr=log, preexec_fn=_child_setup)
        url = f"redis://127.0.0.1:{port}/0"
        for _ in range(100):
            if redis_answers(url):
                return url
            time.sleep(0.05)
        raise RuntimeError("private redis-server did not answer")

    def triage(self, *args: str) -> None:
        """Run one `triage` command to completion (migrate, seed, articles add)."""
        log = self._log("setup")
        subprocess.run([sys.executable, "-m", "services", *args], env=self.env, cwd=self.repo,
                       stdout=log, stderr=log, check=True, timeout=120)

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = self._log(name)
        proc = subprocess.Popen([sys.executable, "-m", "services", *args], env=self.env,
                                cwd=self.repo, stdout=log, stderr=log, preexec_fn=_child_setup)
        self.procs[name] = proc
        return proc

    def check_alive(self) -> None:
        for name, p in self.procs.items():
            if p.poll() is not None:
                raise RuntimeError(f"{name} exited with {p.returncode}; see {self.logs / (name + '.log')}")

    def wait_http(self, url: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")

    def signal(self, name: str, sig: int) -> None:
        p = self.procs.get(name)
        if p is not None and p.poll() is None:
            try:
                os.killpg(p.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def pause(self, name: str) -> None:
        """Freeze the whole process tree (its messages wait in Redis)."""
        self.signal(name, signal.SIGSTOP)

    def resume(self, name: str) -> None:
        self.signal(name, signal.SIGCONT)

    def stop(self) -> None:
        """SIGTERM each process group (newest first), SIGKILL what is left after a grace."""
        for name in reversed(list(self.procs)):
            self.signal(name, signal.SIGCONT)
            self.signal(name, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for name, p in self.procs.items():
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.signal(name, signal.SIGKILL)
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        for f in self._files:
            f.close()
        self._files.clear()


# -- memory -----------------------------------------------------------------------------------

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _stat_fields(pid: int | str) -> list[bytes] | None:
    """/proc/<pid>/stat from its third field (state) on, or None for a process gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: fields start after the last ')'.
    return stat[stat.rfind(b")") + 2:].split()


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat_fields(entry)) is not None:
            kids.setdefault(int(fields[1]), []).append(int(entry))
    return kids


def tree(pid: int, kids: dict[int, list[int]]) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time the processes have used so far (processes gone count 0)."""
    total = 0
    for p in pids:
        fields = _stat_fields(p)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / _TICKS


def wait_quiet(roots: list[int], deadline: float, window: float = 0.5,
               busy: float = 0.05) -> tuple[bool, float]:
    """Wait until the process trees of `roots` use less than `busy` of a core over `window`
    seconds (or the deadline passes). Returns (quiet, seconds waited)."""
    t0 = time.monotonic()
    if not os.path.isdir("/proc"):
        return False, 0.0
    while True:
        kids = _children_map()
        pids = [p for r in roots for p in tree(r, kids)]
        before, start = cpu_seconds(pids), time.monotonic()
        time.sleep(window)
        used = cpu_seconds(pids) - before
        if used <= busy * (time.monotonic() - start):
            return True, time.monotonic() - t0
        if time.monotonic() >= deadline:
            return False, time.monotonic() - t0


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/statm", "rb") as f:
                total += int(f.read().split()[1]) * _PAGE
        except (OSError, IndexError, ValueError):
            continue
    return total


class RssSampler(threading.Thread):
    """Peak resident memory of each named process tree (sum over its processes)."""

    def __init__(self, roots: dict[str, int], interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.roots = roots
        self.interval = interval
        self.peak: dict[str, int] = {name: 0 for name in roots}
        self.processes: dict[str, int] = {name: 0 for name in roots}
        self._stop = threading.Event()

    def sample(self) -> None:
        if not os.path.isdir("/proc"):
            return
        kids = _children_map()
        for name, root in self.roots.items():
            pids = tree(root, kids)
            rss = rss_bytes(pids)
            if rss > self.peak[name]:
                self.peak[name] = rss
                self.processes[name] = len(pids)

    def run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self._stop.set()


@contextmanager
def scratch_database(url: str, tag: str) -> Iterator[tuple[str, str | None]]:
    """A database of the run's own on the server `url` names, dropped when the run ends.

    A benchmark writes some 30,000 comments: in a database someone uses they would stay, and
    a run would measure tables grown by every run before it. Yields the URL to use and the
    scratch database's name; without the right to create databases it yields `url` itself
    and None (the run then tags its articles instead). SQLite URLs are yielded as they are."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql" or not parsed.database:
        yield url, None
        return
    name = f"{parsed.database[:30]}_bench_{tag}"
    admin = create_engine(parsed, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except DBAPIError:
        admin.dispose()
        yield url, None
        return
    try:
        yield parsed.set(database=name).render_as_string(hide_password=False), name
    finally:
        with admin.connect() as conn:
            # FORCE ends sessions a stopped process may have left (PostgreSQL 13 and later).
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
