"""`make bench`: start a private stack, measure every figure of the performance issue, report.

Phases, in order (the worker is frozen with SIGSTOP where its work would disturb a figure):
200 approved comments for the read test (also warms the worker) · the filter chain alone,
in a process of its own, once the stack is quiet · ingest and its baseline, taking turns
(worker frozen) · reads and their baseline, taking turns · no-op tasks · the moderation
pipeline · end-to-end latency at a steady 200 comments/s.

One module per phase (classify, ingest, read, pipeline, e2e), the report in report.py; this one
starts the stack, runs the phases in order and stops what it started.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import redis

from services.config import ROOT, Settings

from . import classify, coral, e2e, ingest, pipeline, read
from . import corpus as corpus_mod
from .common import Progress, Run, machine_info, wait_drained
from .load import have_wrk
from .report import report
from .stack import RssSampler, Stack, free_port, scratch_database


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
    env.setdefault("TRIAGE_ENV", "development")  # a private, throw-away stack
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

        from services.wiring import build

        svc = build(settings, "cli")
        db = svc.db
        run = Run(args, progress, stack, settings, base, db, redis.Redis.from_url(settings.redis_url),
                  work, corpus, results, details)

        read_art = svc.comments.add_article(read_slug, "Benchmark: read path")
        pipe_art = svc.comments.add_article(f"bench-pipeline{suffix}", "Benchmark: pipeline")
        e2e_slugs = [f"bench-e2e{suffix}-{i:03d}" for i in
                     range(int(args.e2e_rate * args.e2e_seconds) // 25 + 1)]
        for slug in e2e_slugs:
            svc.comments.add_article(slug, "Benchmark: end to end")

        progress("read setup: posting 200 clean comments and waiting for approval")
        details["read_setup"] = read.prepare_read(base, db, read_art.id, read_slug, corpus,
                                                  progress, deadline=time.monotonic() + 45)
        wait_drained(run.r, run.qname, time.monotonic() + 10, progress, "read setup", 0)

        classify.measure(run, repo)
        ingest.measure(run)
        read.measure(run, read_slug)
        pipeline.measure_noop(run)
        pipeline.measure_pipeline(run, pipe_art.id)
        e2e.measure(run, e2e_slugs)
        # On an API of its own, last: its engine would weigh on the figures above.
        coral.measure(run, [d["body"] for d in dev])
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
    report(results, details, sampler, machine, progress.elapsed(), var, database_url,
           args.write_docs)
    return 0
