"""`make bench`: start a private stack, measure every figure of the performance issue, report.

Phases, in order (the worker is frozen with SIGSTOP where its work would disturb a figure):
200 approved comments for the read test (also warms the worker) · the filter chain alone,
in a process of its own, once the stack is quiet · ingest and its baseline, taking turns
(worker frozen) · reads and their baseline, taking turns · no-op tasks · the moderation
pipeline · end-to-end latency at a steady 200 comments/s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import http.client
import json
import os
import platform
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from importlib import metadata
from pathlib import Path
from typing import Any

import redis
from sqlalchemy.engine import make_url

from services.config import ROOT, Settings
from . import corpus as corpus_mod
from .coral import phase as coral_phase
from .load import alternate, have_wrk, run_load
from .stack import RssSampler, Stack, free_port, scratch_database, wait_quiet
from .stats import (
    evaluate_targets,
    percentile_censored,
    machine_line,
    percentile,
    ratio,
    render_markdown,
    render_text,
    table_rows,
)

UNACKED = "unacked"  # kombu's Redis transport keeps delivered, unacknowledged messages here


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


# -- helpers --------------------------------------------------------------------------------

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
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
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


# -- measurements ---------------------------------------------------------------------------

def measure_classify(engine: Any, dev: list[dict[str, Any]], corpus: corpus_mod.Corpus,
                     passes: int = 3) -> dict[str, Any]:
    """Per-comment time of Engine.classify on the dev set (in the calling process, steady state)."""
    rows = [(r["body"], r.get("author")) for r in dev] or [
        (b, "Maya") for _, b in corpus.mixed(400)]
    for body, author in rows[:50]:
        engine.classify(body, author)
    samples: list[float] = []
    for _ in range(passes):
        for body, author in rows:
            t = time.perf_counter_ns()
            engine.classify(body, author)
            samples.append((time.perf_counter_ns() - t) / 1000)
    return {"source": "dev set" if dev else "generated", "comments": len(rows),
            "samples": len(samples), "p50": percentile(samples, 50), "p99": percentile(samples, 99),
            "mean": sum(samples) / len(samples)}


def classify_alone(repo: str, conn: Any, passes: int = 3) -> None:
    """In a process of its own, as a worker's pool process holds the engine: load the engine and
    the dev set, freeze them out of the collector's sight (workers.tasks does the same), say
    "ready", and on "go" send back measure_classify's figures (or the error, as text)."""
    try:
        from workers.engine.pipeline import Engine

        engine = Engine()
        dev = corpus_mod.load_dev_set(Path(repo))
        corpus = None if dev else corpus_mod.Corpus(dev)
        gc.collect()
        gc.freeze()
        conn.send("ready")
        if conn.recv() == "go":
            conn.send(measure_classify(engine, dev, corpus, passes))  # type: ignore[arg-type]
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        conn.send(f"error: {exc!r}")


class ClassifyAlone:
    """classify_alone in a spawned process (nothing of this process's heap or threads comes
    along): the engine loads while the stack settles; the chain is timed on run()."""

    def __init__(self, repo: Path, timeout: float = 120) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self.timeout = timeout
        self.conn, there = ctx.Pipe()
        self.proc = ctx.Process(target=classify_alone, args=(str(repo), there), daemon=True)
        self.proc.start()

    def _answer(self) -> Any:
        if not self.conn.poll(self.timeout):
            raise RuntimeError(f"the classify process did not answer within {self.timeout:.0f} s")
        got = self.conn.recv()
        if isinstance(got, str) and got.startswith("error:"):
            raise RuntimeError(f"the classify process failed: {got[7:]}")
        return got

    def wait_ready(self) -> None:
        if self._answer() != "ready":
            raise RuntimeError("the classify process did not say it was ready")

    def run(self) -> dict[str, Any]:
        """Let it time the chain (after wait_ready) and return its figures."""
        try:
            self.conn.send("go")
            return self._answer()  # type: ignore[no-any-return]
        finally:
            self.close()

    def close(self) -> None:
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()


def post_many(base: str, slug: str, payloads: list[dict[str, Any]], threads: int = 4) -> list[str]:
    """POST comments (a few keep-alive clients); returns the ids accepted."""
    ids: list[str] = []
    lock = threading.Lock()
    todo: queue.Queue[dict[str, Any] | None] = queue.Queue()
    for p in payloads:
        todo.put(p)
    host, port = base.split("//", 1)[1].split(":")

    def run() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        while True:
            try:
                p = todo.get_nowait()
            except queue.Empty:
                break
            conn.request("POST", f"/v1/articles/{slug}/comments", json.dumps(p),
                         {"Content-Type": "application/json"})
            r = conn.getresponse()
            data = r.read()
            if r.status == 202:
                with lock:
                    ids.append(json.loads(data)["id"])
        conn.close()

    ts = [threading.Thread(target=run) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return ids


def count_status(db: Any, article_id: int) -> Counter[str]:
    from sqlalchemy import text

    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT status, count(*) FROM comments WHERE article_id = :a "
                                 "GROUP BY status"), {"a": article_id}).all()
    return Counter({s: int(n) for s, n in rows})


def prepare_read(base: str, db: Any, art_id: int, slug: str, corpus: corpus_mod.Corpus,
                 progress: Progress, deadline: float, want: int = 200) -> dict[str, Any]:
    """Post clean comments until `want` are approved (this also warms every worker process)."""
    posted = 0
    t0 = time.monotonic()
    counts: Counter[str] = Counter()
    while time.monotonic() < deadline:
        counts = count_status(db, art_id)
        approved, pending = counts.get("approved", 0), counts.get("pending", 0)
        if approved >= want:
            break
        missing = want - approved - pending
        if missing > 0:
            payloads = [corpus.payload(b) for b in corpus.clean_unique(missing)]
            posted += len(post_many(base, slug, payloads))
        progress(f"read setup: {approved}/{want} approved, {pending} pending "
                 "(first tasks also load the engine in each worker process)", quiet=True)
        time.sleep(0.2)
    counts = count_status(db, art_id)
    return {"posted": posted, "approved": counts.get("approved", 0), "statuses": dict(counts),
            "seconds": time.monotonic() - t0}


def insert_pipeline(settings: Settings, db: Any, art_id: int,
                    items: list[tuple[str, str]], corpus: corpus_mod.Corpus) -> list[str]:
    """Insert pending comments and commit, then send one task per comment as the API does."""
    from services.queue.sender import TaskSender
    from services.comments.models import Comment
    from services.comments.shapes import author_ref

    rows = []
    with db.session() as s:
        for _, body in items:
            p = corpus.payload(body)
            c = Comment(article_id=art_id, author=p["author"], email=p.get("email"), body=body,
                        author_ref=author_ref(settings.author_salt, p.get("email"), None))
            s.add(c)
            rows.append(c)
        s.flush()
        ids = [c.id for c in rows]
    sender = TaskSender(settings)
    for cid in ids:
        sender.moderate(cid)
    return ids


def send_noops(settings: Settings, n: int) -> None:
    """`bench.noop` messages built and pushed exactly as the API pushes moderation tasks."""
    from services.queue.protocol import task_message
    from services.queue.sender import TaskSender

    sender = TaskSender(settings)
    pipe = sender.client.pipeline(transaction=False)
    for i in range(n):
        pipe.lpush(settings.queue_name, task_message("bench.noop", [f"noop-{i}"],
                                                     settings.queue_name, sender.origin))
        if i % 500 == 499:
            pipe.execute()
    pipe.execute()


def _get(conn: http.client.HTTPConnection, path: str,
         hdrs: dict[str, str]) -> tuple[int, str | None, bytes] | None:
    try:
        conn.request("GET", path, headers=hdrs)
        r = conn.getresponse()
        return r.status, r.getheader("ETag"), r.read()
    except (OSError, http.client.HTTPException):
        conn.close()
        return None


def poll_visibility(host: str, port: int, inbox: Any, outbox: Any, stop: Any, taken: Any,
                    unseen: Any, poll_interval: float) -> None:
    """The widget-like poller of `measure_e2e`, in a process of its own (so the senders'
    threads never hold it up): every `poll_interval` it asks for the pages of the articles
    that still have comments on their way, with If-None-Match as a widget would, and notes
    when each comment is first listed. `inbox` brings (slug, comment id, POST returned at);
    `taken` counts what it brought, `unseen` what is still awaited; `outbox` gets what it saw.
    Times are `time.perf_counter()`, the system's monotonic clock, shared by both processes."""
    conn = http.client.HTTPConnection(host, port, timeout=10)
    outbox.send("ready")
    seen: dict[str, float] = {}
    waiting: dict[str, dict[str, float]] = {}  # slug -> {comment id: POST returned at}
    not_shown: list[str] = []
    polls = Counter[str]()
    etags: dict[str, str] = {}
    last_check = time.perf_counter()
    while not stop.is_set():
        cycle = time.perf_counter()
        arrived = 0
        while inbox.poll():
            slug, cid, t = inbox.recv()
            if cid not in seen:
                waiting.setdefault(slug, {})[cid] = t
            arrived += 1
        if arrived:
            # Awaited before taken: whoever sees all taken also sees them awaited.
            unseen.value = sum(len(w) for w in waiting.values())
            taken.value += arrived
        for slug in [s for s, w in waiting.items() if w]:
            hdrs = {"If-None-Match": etags[slug]} if slug in etags else {}
            got = _get(conn, f"/v1/articles/{slug}/comments?limit=100", hdrs)
            if got is None:
                polls["error"] += 1
                continue
            status, etag, data = got
            t = time.perf_counter()
            polls[str(status)] += 1
            if status == 200:
                if etag:
                    etags[slug] = etag
                for item in json.loads(data).get("items", []):
                    seen.setdefault(item["id"], t)
                    waiting.get(slug, {}).pop(item["id"], None)
        if cycle - last_check > 0.5:
            # Comments unseen for half a second: held or rejected ones are not waited for.
            last_check = cycle
            slow = [(s, c) for s, w in waiting.items() for c, t0 in w.items() if cycle - t0 > 0.5]
            for slug, cid in slow:
                got = _get(conn, f"/v1/comments/{cid}", {})
                polls["status"] += 1
                if got and got[0] == 200 and json.loads(got[2]).get("status") in ("held", "rejected"):
                    not_shown.append(cid)
                    waiting[slug].pop(cid, None)
        unseen.value = sum(len(w) for w in waiting.values())
        spare = poll_interval - (time.perf_counter() - cycle)
        time.sleep(spare if spare > 0 else 0.0005)
    outbox.send((seen, not_shown, dict(polls)))


def measure_e2e(base: str, slugs: list[str], payloads: list[dict[str, Any]], rate: float,
                seconds: float, window: int, tail: float, progress: Progress,
                poll_interval: float = 0.005) -> dict[str, Any]:
    """Open-loop POSTs at `rate`/s; each comment's time from its POST returning to the read
    endpoint listing it. Comment i goes to article i // window, so one small page holds it.

    The poller (`poll_visibility`) runs in a process of its own: in this one, sixteen sender
    threads take turns holding the interpreter, and a poller among them noticed a change only
    when its turn came. A comment unseen for a while is looked up once by id: if the engine
    held or rejected it, it is not waited for."""
    import multiprocessing as mp

    host, port = base.split("//", 1)[1].split(":")
    n = int(rate * seconds)
    returned = [0.0] * n
    ids: list[str | None] = [None] * n
    errors = Counter[str]()
    todo: queue.Queue[int | None] = queue.Queue()
    ctx = mp.get_context("spawn")
    inbox, to_poller = ctx.Pipe(duplex=False)
    from_poller, outbox = ctx.Pipe(duplex=False)
    stop, taken, unseen = ctx.Event(), ctx.Value("i", 0), ctx.Value("i", 0)
    poller = ctx.Process(target=poll_visibility, daemon=True,
                         args=(host, int(port), inbox, outbox, stop, taken, unseen, poll_interval))
    poller.start()
    # The clock starts once the poller is up (starting a process takes a good part of a second).
    if not from_poller.poll(60) or from_poller.recv() != "ready":
        raise RuntimeError("the end-to-end poller did not start")
    notify = threading.Lock()  # one sender at a time on the pipe
    # An overloaded API falls behind the schedule; what is still unsent 2 s after the last
    # slot is dropped (and counted) so the phase keeps to its time.
    send_deadline = [float("inf")]

    def sender() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        while True:
            i = todo.get()
            if i is None:
                break
            if time.perf_counter() > send_deadline[0]:
                errors["not sent (behind schedule)"] += 1
                continue
            slug = slugs[i // window]
            try:
                conn.request("POST", f"/v1/articles/{slug}/comments", json.dumps(payloads[i]),
                             {"Content-Type": "application/json"})
                r = conn.getresponse()
                data = r.read()
                t = time.perf_counter()
                if r.status == 202:
                    cid = json.loads(data)["id"]
                    ids[i], returned[i] = cid, t
                    with notify:
                        to_poller.send((slug, cid, t))
                else:
                    errors[f"post {r.status}"] += 1
            except (OSError, http.client.HTTPException) as exc:
                errors[f"post {type(exc).__name__}"] += 1
                conn.close()

    senders = [threading.Thread(target=sender, daemon=True) for _ in range(16)]
    for t in senders:
        t.start()
    t0 = time.perf_counter()
    send_deadline[0] = t0 + seconds + 2.0
    for i in range(n):
        wait = t0 + i / rate - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        todo.put(i)
        if i % rate == 0:
            progress(f"e2e: {rate:.0f} comments/s, {i / rate:4.1f}/{seconds:.0f} s, "
                     f"{unseen.value:,} on their way", quiet=True)
    for _ in senders:
        todo.put(None)
    for t in senders:
        t.join(timeout=15)
    send_seconds = time.perf_counter() - t0
    end = time.perf_counter() + tail
    accepted = sum(1 for c in ids if c is not None)
    # Done when the poller has taken in every accepted comment and awaits none of them.
    while time.perf_counter() < end and (taken.value < accepted or unseen.value):
        progress(f"e2e: waiting for the last comments to show, {unseen.value:,} on their way",
                 quiet=True)
        time.sleep(0.05)
    stop.set()
    seen: dict[str, float] = {}
    not_shown: list[str] = []
    polls: dict[str, int] = {}
    if from_poller.poll(10):
        seen, not_shown, polls = from_poller.recv()
    else:
        errors["poller gave no answer"] += 1
    poller.join(timeout=5)
    if poller.is_alive():
        poller.kill()
    t_end = time.perf_counter()
    latency = {cid: max(0.0, seen[cid] - returned[i]) * 1000 for i, cid in enumerate(ids)
               if cid is not None and cid in seen}
    unseen_ms = {cid: (t_end - returned[i]) * 1000 for i, cid in enumerate(ids)
                 if cid is not None and cid not in seen}
    return {
        "offered_rate": rate, "seconds": seconds, "send_seconds": send_seconds,
        "achieved_rate": accepted / send_seconds if send_seconds else 0.0,
        "posted": n, "accepted": accepted, "visible": len(latency),
        "errors": dict(errors), "polls": polls, "poll_interval_ms": poll_interval * 1000,
        "not_shown": len(not_shown), "latency": latency, "unseen": unseen_ms,
    }


def e2e_summary(raw: dict[str, Any], statuses: dict[str, str]) -> dict[str, Any]:
    """Percentiles over comments that should have shown: those held or rejected by the engine
    are left out (counted); those still pending or unseen count as the time they were watched."""
    latency, unseen = raw.pop("latency"), raw.pop("unseen")
    excluded = {cid for cid in unseen if statuses.get(cid) in ("held", "rejected")}
    censored = [ms for cid, ms in unseen.items() if cid not in excluded]
    observed = list(latency.values())
    out = dict(raw, held_or_rejected=len(excluded), unseen_when_stopped=len(censored))
    for q in (50, 90, 99):
        value, lower = percentile_censored(observed, censored, q)
        out[f"p{q}_ms"], out[f"p{q}_lower_bound"] = value, lower
    out["max_ms"] = max(observed) if observed else None
    out["statuses"] = dict(Counter(statuses.values()))
    return out


def statuses_of(db: Any, ids: list[str]) -> dict[str, str]:
    from sqlalchemy import select

    from services.comments.models import Comment

    out: dict[str, str] = {}
    with db.session() as s:
        for start in range(0, len(ids), 500):
            for cid, status in s.execute(select(Comment.id, Comment.status).where(
                    Comment.id.in_(ids[start:start + 500]))):
                out[cid] = status
    return out


def decided_latency(db: Any, ids: list[str]) -> dict[str, Any]:
    """created_at → decided_at as the database recorded them (the pipeline's share of e2e)."""
    from sqlalchemy import select

    from services.comments.models import Comment

    out: list[float] = []
    with db.session() as s:
        for start in range(0, len(ids), 500):
            for created, decided in s.execute(
                    select(Comment.created_at, Comment.decided_at).where(
                        Comment.id.in_(ids[start:start + 500]))):
                if created is not None and decided is not None:
                    out.append((decided - created).total_seconds() * 1000)
    return {"p50_ms": percentile(out, 50), "p99_ms": percentile(out, 99), "n": len(out)}


# -- the run --------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--ingest-seconds", type=float, default=10)
    p.add_argument("--read-seconds", type=float, default=5)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--rounds", type=int, default=5,
                   help="ingest and read loads alternate with their baselines this many times")
    p.add_argument("--pipeline-comments", type=int, default=10_000)
    p.add_argument("--e2e-rate", type=float, default=200)
    p.add_argument("--e2e-seconds", type=float, default=20)
    p.add_argument("--coral-rate", type=float, default=50,
                   help="Coral phase requests a second (a busy newsroom's comments)")
    p.add_argument("--coral-seconds", type=float, default=10)
    p.add_argument("--budget", type=float, default=190, help="seconds the whole run may take")
    p.add_argument("--write-docs", action="store_true",
                   help="also write the table into README.md (otherwise only var/ is written)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    progress = Progress()

    def _term(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    repo = ROOT
    var = repo / "var"
    work = var / "bench"
    work.mkdir(parents=True, exist_ok=True)
    for old in work.glob("*.log"):
        old.unlink()
    base_settings = Settings.from_env()
    env_db = os.environ.get("DATABASE_URL", "").strip()
    run_tag = dt.datetime.now().strftime("%Y%m%d%H%M%S")
    # Dropped in the `finally` below, once the stack is stopped.
    scratch = ExitStack()
    scratch_name: str | None = None
    if env_db:
        database_url, scratch_name = scratch.enter_context(scratch_database(env_db, run_tag))
        if scratch_name:
            progress(f"database: {scratch_name}, created for this run and dropped after it")
        else:
            progress("database: could not create one for this run; measuring in DATABASE_URL's "
                     "own, with this run's articles tagged -" + run_tag)
        suffix = "" if scratch_name else f"-{run_tag}"
    else:
        db_file = work / "bench.db"
        for p in (db_file, Path(f"{db_file}-wal"), Path(f"{db_file}-shm")):
            p.unlink(missing_ok=True)
        database_url, suffix = f"sqlite:///{db_file}", ""
    port = free_port()
    # Own metrics folder: `triage api`/`worker` clear theirs at start, and `make run` may be up.
    env = dict(os.environ, DATABASE_URL=database_url, PORT=str(port), HOST="127.0.0.1",
               BENCH_ENDPOINTS="true", RATELIMIT_ENABLED="false",
               METRICS_DIR=str(work / "metrics"))
    stack = Stack(repo, work, env)
    sampler: RssSampler | None = None
    results: dict[str, Any] = {}
    details: dict[str, Any] = {"tool": "wrk" if have_wrk() else "python-asyncio",
                               "scratch_database": scratch_name}
    try:
        progress("starting redis")
        env["REDIS_URL"] = stack.start_redis(base_settings.redis_url)
        settings = Settings.from_env(env)
        base = f"http://127.0.0.1:{port}"
        read_slug = f"bench-read{suffix}"
        boot_error: list[BaseException] = []

        def boot() -> None:
            try:
                stack.triage("migrate")
                stack.triage("seed")
                stack.triage("articles", "add", read_slug, "--title", "Benchmark: read path")
            except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
                boot_error.append(exc)

        progress("migrating and seeding a fresh database; loading the engine")
        booter = threading.Thread(target=boot, daemon=True)
        booter.start()
        from workers.engine.pipeline import Engine

        engine = Engine()
        dev = corpus_mod.load_dev_set(repo)
        corpus = corpus_mod.Corpus(dev)
        dropped = corpus.keep_clean(lambda s: engine.classify(s, "Maya").action == "publish")
        details["clean_fragments_dropped"] = dropped
        booter.join(timeout=120)
        if boot_error:
            raise boot_error[0]
        if booter.is_alive():
            raise RuntimeError("migrations did not finish within 120 s")
        # Started from this thread: a child's parent-death signal follows the thread that
        # started it, and this one lives as long as the run.
        stack.start("api", "api")
        stack.start("worker", "worker")
        stack.wait_http(base + "/healthz")
        sampler = RssSampler({"api": stack.procs["api"].pid, "worker": stack.procs["worker"].pid})
        sampler.start()

        from services.comments.service import CommentService
        from services.db import Database

        db = Database(database_url)
        svc = CommentService(db, salt=settings.author_salt)
        r = redis.Redis.from_url(settings.redis_url)
        qname = settings.queue_name

        read_art = svc.add_article(read_slug, "Benchmark: read path")
        pipe_art = svc.add_article(f"bench-pipeline{suffix}", "Benchmark: pipeline")
        e2e_slugs = [f"bench-e2e{suffix}-{i:03d}" for i in
                     range(int(args.e2e_rate * args.e2e_seconds) // 25 + 1)]
        for slug in e2e_slugs:
            svc.add_article(slug, "Benchmark: end to end")

        progress("read setup: posting 200 clean comments and waiting for approval")
        details["read_setup"] = prepare_read(base, db, read_art.id, read_slug, corpus, progress,
                                             deadline=time.monotonic() + 45)
        wait_drained(r, qname, time.monotonic() + 10, progress, "read setup", 0)

        # Timed once the stack is idle and warm: after the read setup the worker's processes
        # were seen still busy for a second or two (their engines loading, the last batches),
        # on the same two cores. Timed in a process that holds only the engine, as a worker's
        # pool process does, not in this one with its corpora and sampling thread.
        progress("classify: loading the engine in a process of its own; waiting for the stack "
                 "to go quiet")
        classifier = ClassifyAlone(repo)
        classifier.wait_ready()
        quiet, waited = wait_quiet([p.pid for p in stack.procs.values()], time.monotonic() + 15)
        progress("classify: filter chain on the dev set, in a process of its own")
        cls = classifier.run()
        cls.update(stack_quiet=quiet, quiet_wait_s=round(waited, 2))
        details["classify"] = cls
        results["classify_us_p50"] = cls["p50"]
        results["classify_us_p99"] = cls["p99"]

        # Ingest: the worker is frozen so the API alone is measured; the backlog is purged.
        stack.pause("worker")
        bodies = [json.dumps(corpus.payload(b)) for _, b in corpus.mixed(4000)]
        lk = dict(connections=args.connections, workdir=work)
        json_type = {"Content-Type": "application/json"}
        post_path = f"/v1/articles/{settings.demo_article_slug}/comments"

        def load(label: str, method: str, path: str, **kw: Any) -> Callable[[float], dict[str, Any]]:
            def run(seconds: float) -> dict[str, Any]:
                progress(f"{label}, {args.connections} clients, {seconds:.0f} s")
                return run_load(base, method, path, seconds=seconds, **kw, **lk)
            return run

        ingest_runs = alternate({
            "echo": load("ingest baseline: POST /bench/echo", "POST", "/bench/echo",
                         headers=json_type, bodies=bodies),
            "post": load("ingest: POST /v1/articles/…/comments", "POST", post_path,
                         headers=json_type, bodies=bodies),
        }, args.ingest_seconds, args.rounds)
        echo, ingest = ingest_runs["echo"], ingest_runs["post"]
        details["ingest"], details["ingest_baseline"] = ingest, echo
        results["ingest_rps"], results["ingest_baseline_rps"] = ingest["rps"], echo["rps"]
        details["ingest_purged"] = purge_queue(r, qname)

        # Reads.
        read_path = f"/v1/articles/{read_slug}/comments?limit=100"
        status, headers, body = http_json(base, "GET", read_path)
        etag = headers.get("etag")
        inm_status = None
        if etag:
            inm_status, _, _ = http_json(base, "GET", read_path, headers={"If-None-Match": etag})
        details["read_check"] = {"status": status, "items": len((body or {}).get("items", [])),
                                 "etag": etag, "if_none_match_status": inm_status,
                                 "connection": headers.get("connection")}
        read_runs = alternate({
            "hello": load("read baseline: GET /bench/hello", "GET", "/bench/hello"),
            "read": load(f"read: GET {read_path}", "GET", read_path),
            "inm": load(f"read: same with If-None-Match ({'ETag ' + etag if etag else 'no ETag served'})",
                        "GET", read_path, headers={"If-None-Match": etag or '"no-etag-served"'}),
        }, args.read_seconds, args.rounds)
        hello, read, read_inm = read_runs["hello"], read_runs["read"], read_runs["inm"]
        details["read_baseline"], details["read"], details["read_inm"] = hello, read, read_inm
        results["read_rps"], results["read_rps_inm"] = read["rps"], read_inm["rps"]
        results["read_baseline_rps"] = hello["rps"]

        # No-op tasks: queue filled while the worker is frozen, timed from its release.
        n = args.pipeline_comments
        progress(f"noop: sending {n:,} bench.noop tasks (worker frozen)")
        t_enq = time.perf_counter()
        send_noops(settings, n)
        noop_enqueue_s = time.perf_counter() - t_enq
        stack.resume("worker")
        t0 = time.perf_counter()
        t1 = wait_drained(r, qname, time.monotonic() + 40, progress, "noop", n)
        noop_s = (t1 or time.perf_counter()) - t0
        left = 0 if t1 else queue_depth(r, qname) + int(r.hlen(UNACKED))
        results["noop_cps"] = (n - left) / noop_s if noop_s > 0 else None
        details["noop"] = {"tasks": n, "seconds": noop_s, "complete": t1 is not None,
                           "left": left, "enqueue_seconds": noop_enqueue_s}
        if t1 is None:
            purge_queue(r, qname)

        # The pipeline: same shape, real comments.
        wait_drained(r, qname, time.monotonic() + 10, progress, "noop", n)
        stack.pause("worker")
        progress(f"pipeline: inserting {n:,} comments and sending their tasks (worker frozen)")
        items = corpus.mixed(n)
        t_enq = time.perf_counter()
        ids = insert_pipeline(settings, db, pipe_art.id, items, corpus)
        enqueue_s = time.perf_counter() - t_enq
        reserve = args.e2e_seconds + 2 + 5 + 10  # e2e, its grace and tail, stop and report
        cap = max(10.0, args.budget - progress.elapsed() - reserve)
        stack.resume("worker")
        t0 = time.perf_counter()
        deadline = time.monotonic() + cap
        decided, t1 = 0, None
        while time.monotonic() < deadline:
            counts = count_status(db, pipe_art.id)
            decided = len(ids) - counts.get("pending", 0)
            if decided >= len(ids):
                t1 = time.perf_counter()
                break
            el = time.perf_counter() - t0
            progress(f"pipeline: {decided:,}/{len(ids):,} decided, {decided / el if el else 0:,.0f}/s "
                     f"(cap {cap:.0f} s)", quiet=True)
            time.sleep(0.025)
        elapsed = (t1 or time.perf_counter()) - t0
        results["pipeline_cps"] = decided / elapsed if elapsed > 0 else None
        counts = count_status(db, pipe_art.id)
        details["pipeline"] = {
            "comments": len(ids), "decided": decided, "complete": t1 is not None,
            "seconds": elapsed, "cap_seconds": cap, "enqueue_seconds": enqueue_s,
            "mix": dict(Counter(k for k, _ in items)), "statuses": dict(counts)}
        if t1 is None:
            stack.pause("worker")
            details["pipeline"]["purged"] = purge_queue(r, qname)
            stack.resume("worker")
            wait_drained(r, qname, time.monotonic() + 10, progress, "pipeline leftovers", 0)

        # End to end at a steady offered load.
        progress(f"e2e: {args.e2e_rate:.0f} comments/s for {args.e2e_seconds:.0f} s")
        payloads = [corpus.payload(b) for b in
                    corpus.clean_unique(int(args.e2e_rate * args.e2e_seconds))]
        # This process holds the engine and the corpora: a full collection of them in a sender
        # thread would delay a POST or the note of when it returned.
        gc.collect()
        gc.freeze()
        e2e = measure_e2e(base, e2e_slugs, payloads, args.e2e_rate, args.e2e_seconds, 25, 5.0,
                          progress)
        e2e_ids = list(e2e["latency"]) + list(e2e["unseen"])
        e2e = e2e_summary(e2e, statuses_of(db, e2e_ids))
        e2e["decided"] = decided_latency(db, e2e_ids)
        details["e2e"] = e2e
        for q in ("p50", "p99"):
            results[f"e2e_{q}_ms"] = e2e[f"{q}_ms"]
            if e2e[f"{q}_lower_bound"]:
                results[f"e2e_{q}_ms_lower_bound"] = True
        # The Coral phase, on an API of its own (its engine would weigh on the figures above).
        stack.pause("worker")
        coral = coral_phase(stack, [d["body"] for d in dev] or ["Thank you for the article."],
                            args.coral_rate, args.coral_seconds, progress)
        stack.resume("worker")
        details["coral"] = coral
        results["coral_p50_ms"], results["coral_p99_ms"] = coral["p50_ms"], coral["p99_ms"]
        sampler.sample()
        machine = machine_info(settings, db)
        stack.check_alive()
    except KeyboardInterrupt:
        progress.done()
        print("bench: interrupted; stopping what it started", file=sys.stderr)
        return 130
    finally:
        if sampler is not None:
            sampler.stop()
        progress("stopping the stack")
        stack.stop()
        if scratch_name:
            progress(f"dropping {scratch_name}")
        scratch.close()
        progress.done()

    assert sampler is not None
    mb = 1024 * 1024
    results["rss_mb_api"] = sampler.peak["api"] / mb
    results["rss_mb_worker"] = sampler.peak["worker"] / mb
    results["ingest_ratio"] = ratio(results.get("ingest_rps"), results.get("ingest_baseline_rps"))
    results["pipeline_ratio"] = ratio(results.get("pipeline_cps"), results.get("noop_cps"))
    results["read_ratio"] = ratio(results.get("read_rps"), results.get("read_baseline_rps"))
    results["read_ratio_inm"] = ratio(results.get("read_rps_inm"), results.get("read_baseline_rps"))
    targets = evaluate_targets(results)
    rows = table_rows(results)
    details["rss_processes"] = sampler.processes
    details["seconds"] = progress.elapsed()
    figures = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in results.items()}
    figures["targets_met"] = {k: v["met"] for k, v in targets.items()}
    figures["machine"] = machine

    notes = notes_for(details)
    text = render_text(rows)
    print(f"Triage benchmark — {machine_line(machine)}")
    print(text)
    for note in notes:
        print(f"  · {note}")
    print(f"  · total {details['seconds']:.0f} s; details in var/bench.json, logs in var/bench/")
    (var / "bench.json").write_text(json.dumps(
        {"figures": figures, "targets": targets, "details": details}, indent=2, default=str) + "\n",
        encoding="utf-8")
    md = [f"Measured by `make bench` on {machine_line(machine)}.", "", render_markdown(rows), ""]
    md += [f"- {note}" for note in notes]
    section = readme_section(database_url)
    # `make docs` (or --write-docs) copies this into README; a plain run changes no tracked file.
    (var / f"{section}.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    if args.write_docs:
        from services.readme import write_table

        try:
            write_table(section, "\n".join(md))
        except SystemExit as exc:
            print(f"bench: README not updated: {exc}", file=sys.stderr)
    print(json.dumps(figures, separators=(",", ":"), default=str))
    return 0


def readme_section(database_url: str) -> str:
    """The README section a run writes: the default SQLite's table, or its database's own, so
    a run on PostgreSQL stands beside the default's instead of replacing it."""
    backend = make_url(database_url).get_backend_name()
    return "performance" if backend == "sqlite" else f"performance-{backend}"


def notes_for(d: dict[str, Any]) -> list[str]:
    """How each figure was taken, in a few lines under the table."""
    out = []
    ing = d.get("ingest", {})
    base = d.get("ingest_baseline", {})
    out.append(f"ingest: {d.get('tool')} -t2 -c32, bodies drawn from 4,000 varied comments; worker "
               f"frozen meanwhile; {ing.get('error_count', 0)} errors (baseline "
               f"{base.get('error_count', 0)}); {len(ing.get('rounds', []))} turns each, "
               f"req/s by turn {_turns(ing)} (baseline {_turns(base)})"
               + ("; the server closes each connection after its answer, the baseline's as the "
                  "posts'" if d.get("read_check", {}).get("connection") == "close" else "") + ".")
    p = d.get("pipeline", {})
    if p:
        mix = ", ".join(f"{k} {v}" for k, v in sorted(p.get("mix", {}).items()))
        out.append(f"pipeline: {p.get('comments', 0):,} comments ({mix}) queued with the worker "
                   f"frozen, timed from its release to the last decision"
                   + ("" if p.get("complete") else f" — stopped after {p.get('cap_seconds', 0):.0f} s "
                      f"with {p.get('decided', 0):,} decided (rate over that time)")
                   + "; noop: the same count of `bench.noop` through the same broker and worker.")
    nd = d.get("noop", {})
    if nd and not nd.get("complete", True):
        out.append(f"noop: stopped after {nd.get('seconds', 0):.0f} s with {nd.get('left', 0):,} "
                   "tasks left (rate over that time).")
    rc = d.get("read_check", {})
    out.append(f"read: page of 100 of 200 approved; ETag {'served' if rc.get('etag') else 'not served'}"
               f", If-None-Match answered {rc.get('if_none_match_status') or '—'}; "
               f"req/s by turn {_turns(d.get('read', {}))}, with If-None-Match "
               f"{_turns(d.get('read_inm', {}))} (baseline {_turns(d.get('read_baseline', {}))}).")
    c = d.get("classify", {})
    if c:
        out.append(f"classify: {c.get('comments', 0):,} comments of the {c.get('source', '?')}, "
                   f"{c.get('samples', 0):,} timed calls (mean {c.get('mean', 0):,.0f} µs), in a "
                   "process holding only the engine, once the stack had "
                   + (f"used under 5% of a core for 0.5 s (waited {c.get('quiet_wait_s', 0):.1f} s)."
                      if c.get("stack_quiet") else
                      f"not gone quiet within {c.get('quiet_wait_s', 0):.0f} s (timed anyway)."))
    e = d.get("e2e", {})
    if e:
        dec = e.get("decided", {})
        out.append(f"e2e: {e.get('accepted', 0):,} clean comments at {e.get('offered_rate', 0):.0f}/s "
                   f"open loop ({e.get('achieved_rate', 0):.0f}/s achieved), visibility polled on the "
                   f"read endpoint every {e.get('poll_interval_ms', 0):.0f} ms; "
                   + "".join(f"{v} {k}, " for k, v in e.get("errors", {}).items()) +
                   f"{e.get('held_or_rejected', 0)} held by the engine (left out), "
                   f"{e.get('unseen_when_stopped', 0)} still unseen {5:.0f} s after the last POST "
                   "(counted as the time watched, so ≥ marks a lower bound); "
                   "decision alone (DB created→decided) "
                   f"p50 {_ms(dec.get('p50_ms'))}, p99 {_ms(dec.get('p99_ms'))}.")
    co = d.get("coral", {})
    if co:
        out.append(f"coral: {co.get('n', 0):,} signed requests at {co.get('rate', 0):.0f}/s open loop "
                   f"to an API of its own (worker frozen), statuses {co.get('statuses')}, "
                   f"{co.get('answered_in_budget', 0):.1%} decided in the budget, "
                   f"max {_ms(co.get('max_ms'))}.")
    return out


def _turns(run: dict[str, Any]) -> str:
    return " / ".join(f"{r:,.0f}" for r in run.get("rounds", [])) or "—"


def _ms(v: float | None) -> str:
    return "—" if v is None else f"{v:.1f} ms"
