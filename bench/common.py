"""What every phase of `make bench` shares: the run, progress, HTTP and queue helpers, the machine."""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import redis

from services.config import Settings

from . import corpus as corpus_mod
from .load import run_load
from .stack import Stack

UNACKED = "unacked"  # kombu's Redis transport keeps delivered, unacknowledged messages here


@dataclass
class Run:
    """One benchmark run: its options, the stack it started, and what it has measured."""

    args: argparse.Namespace
    progress: Progress
    stack: Stack
    settings: Settings
    base: str
    db: Any
    r: redis.Redis
    work: Path
    corpus: corpus_mod.Corpus
    results: dict[str, Any]
    details: dict[str, Any]

    @property
    def qname(self) -> str:
        return self.settings.queue_name

    def load(self, label: str, method: str, path: str,
             **kw: Any) -> Callable[[float], dict[str, Any]]:
        """A load of `method path` for some seconds, with the run's clients and work folder."""
        def run(seconds: float) -> dict[str, Any]:
            self.progress(f"{label}, {self.args.connections} clients, {seconds:.0f} s")
            return run_load(self.base, method, path, seconds=seconds,
                            connections=self.args.connections, workdir=self.work, **kw)
        return run


class Progress:
    """One status line on stderr, rewritten in place on a terminal."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.tty = sys.stderr.isatty()
        self.text = ""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        if self.tty:
            threading.Thread(target=self._tick, daemon=True).start()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def _write(self) -> None:
        line = f"[bench {self.elapsed():5.1f}s] {self.text}"
        if self.tty:
            sys.stderr.write("\r\033[K" + line[:150])
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def __call__(self, text: str, quiet: bool = False) -> None:
        with self._lock:
            self.text = text
            if self.tty or not quiet:
                self._write()

    def _tick(self) -> None:
        while not self._stop.wait(0.5):
            with self._lock:
                self._write()

    def done(self) -> None:
        self._stop.set()
        if self.tty:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def http_json(base: str, method: str, path: str, body: Any = None,
              headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    host, port = base.split("//", 1)[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        hdrs = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body)
            hdrs["Content-Type"] = "application/json"
        conn.request(method, path, data, hdrs)
        r = conn.getresponse()
        raw = r.read()
        parsed = json.loads(raw) if raw and r.getheader("Content-Type", "").endswith("json") else None
        return r.status, {k.lower(): v for k, v in r.getheaders()}, parsed
    finally:
        conn.close()


def queue_depth(r: redis.Redis, name: str) -> int:
    total = int(r.llen(name))
    for key in r.scan_iter(match=f"{name}\x06\x16*"):  # kombu's priority sub-queues
        total += int(r.llen(key))
    return total


def purge_queue(r: redis.Redis, name: str) -> int:
    depth = queue_depth(r, name)
    r.delete(name, *list(r.scan_iter(match=f"{name}\x06\x16*")))
    return depth


def wait_drained(r: redis.Redis, name: str, deadline: float, progress: Progress, label: str,
                 total: int) -> float | None:
    """Time (perf_counter) the queue and the unacknowledged set were first seen empty for good."""
    first_empty = None
    streak = 0
    while time.monotonic() < deadline:
        depth = queue_depth(r, name)
        unacked = int(r.hlen(UNACKED))
        now = time.perf_counter()
        if depth == 0 and unacked == 0:
            if first_empty is None:
                first_empty = now
            streak += 1
            if streak >= 3:
                return first_empty
            time.sleep(0.005)
            continue
        first_empty, streak = None, 0
        progress(f"{label}: {total - depth - unacked:,}/{total:,} done", quiet=True)
        time.sleep(0.01)
    return None


def machine_info(settings: Settings, db: Any) -> dict[str, Any]:
    versions: dict[str, str] = {}
    for pkg in ("flask", "gunicorn", "celery", "kombu", "redis", "sqlalchemy", "pydantic",
                "better-profanity"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    for tool, args, pat in (("redis-server", ["--version"], r"v=(\S+)"), ("wrk", ["-v"], r"wrk (\S+)")):
        if shutil.which(tool):
            try:
                out = subprocess.run([tool, *args], capture_output=True, text=True, timeout=5)
                m = re.search(pat, out.stdout + out.stderr)
                if m:
                    versions[tool] = m.group(1)
            except (OSError, subprocess.TimeoutExpired):
                pass
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    backend = db.engine.dialect.name
    if backend == "sqlite":
        import sqlite3

        database = f"SQLite {sqlite3.sqlite_version}"
    else:
        info = db.engine.dialect.server_version_info or ()
        database = f"PostgreSQL {'.'.join(str(x) for x in info)}" if backend == "postgresql" else backend
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "cpu": cpu,
        # Which build matters as much as the version: see PYTHON in the Makefile.
        "python": f"{platform.python_version()} "
                  f"({os.path.realpath(getattr(sys, '_base_executable', sys.executable))})",
        "database": database,
        "web_concurrency": settings.web_concurrency,
        "worker_concurrency": settings.worker_concurrency,
        "versions": versions,
    }


def count_status(db: Any, article_id: int) -> Counter[str]:
    from sqlalchemy import text

    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT status, count(*) FROM comments WHERE article_id = :a "
                                 "GROUP BY status"), {"a": article_id}).all()
    return Counter({s: int(n) for s, n in rows})
