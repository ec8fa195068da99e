"""The moderation pipeline against a same-run no-op baseline: queues filled while the worker is
frozen, timed from its release."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from services.config import Settings

from . import corpus as corpus_mod
from .common import UNACKED, Run, count_status, purge_queue, queue_depth, wait_drained


def insert_pipeline(settings: Settings, db: Any, art_id: int,
                    items: list[tuple[str, str]], corpus: corpus_mod.Corpus) -> list[str]:
    """Insert pending comments and commit, then send one task per comment as the API does."""
    from services.comments.models import Comment
    from services.comments.shapes import author_ref
    from services.queue.sender import TaskSender

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


def measure_noop(run: Run) -> None:
    """`bench.noop` tasks through the same broker and worker: the baseline."""
    r, qname, n = run.r, run.qname, run.args.pipeline_comments
    run.progress(f"noop: sending {n:,} bench.noop tasks (worker frozen)")
    t_enq = time.perf_counter()
    send_noops(run.settings, n)
    noop_enqueue_s = time.perf_counter() - t_enq
    run.stack.resume("worker")
    t0 = time.perf_counter()
    t1 = wait_drained(r, qname, time.monotonic() + 40, run.progress, "noop", n)
    noop_s = (t1 or time.perf_counter()) - t0
    left = 0 if t1 else queue_depth(r, qname) + int(r.hlen(UNACKED))
    run.results["noop_cps"] = (n - left) / noop_s if noop_s > 0 else None
    run.details["noop"] = {"tasks": n, "seconds": noop_s, "complete": t1 is not None,
                           "left": left, "enqueue_seconds": noop_enqueue_s}
    if t1 is None:
        purge_queue(r, qname)


def measure_pipeline(run: Run, article_id: int) -> None:
    """The same shape as the no-op baseline, with real comments; capped by the run's budget."""
    r, qname, n, db, args = run.r, run.qname, run.args.pipeline_comments, run.db, run.args
    wait_drained(r, qname, time.monotonic() + 10, run.progress, "noop", n)
    run.stack.pause("worker")
    run.progress(f"pipeline: inserting {n:,} comments and sending their tasks (worker frozen)")
    items = run.corpus.mixed(n)
    t_enq = time.perf_counter()
    ids = insert_pipeline(run.settings, db, article_id, items, run.corpus)
    enqueue_s = time.perf_counter() - t_enq
    # e2e, its grace and tail, the Coral phase and its warm-up, stop and report
    reserve = args.e2e_seconds + 2 + 5 + args.coral_seconds + 15 + 10
    cap = max(10.0, args.budget - run.progress.elapsed() - reserve)
    run.stack.resume("worker")
    t0 = time.perf_counter()
    deadline = time.monotonic() + cap
    decided, t1 = 0, None
    while time.monotonic() < deadline:
        counts = count_status(db, article_id)
        decided = len(ids) - counts.get("pending", 0)
        if decided >= len(ids):
            t1 = time.perf_counter()
            break
        el = time.perf_counter() - t0
        run.progress(f"pipeline: {decided:,}/{len(ids):,} decided, {decided / el if el else 0:,.0f}/s "
                     f"(cap {cap:.0f} s)", quiet=True)
        time.sleep(0.025)
    elapsed = (t1 or time.perf_counter()) - t0
    run.results["pipeline_cps"] = decided / elapsed if elapsed > 0 else None
    counts = count_status(db, article_id)
    details: dict[str, Any] = {
        "comments": len(ids), "decided": decided, "complete": t1 is not None,
        "seconds": elapsed, "cap_seconds": cap, "enqueue_seconds": enqueue_s,
        "mix": dict(Counter(k for k, _ in items)), "statuses": dict(counts)}
    run.details["pipeline"] = details
    if t1 is None:
        run.stack.pause("worker")
        details["purged"] = purge_queue(r, qname)
        run.stack.resume("worker")
        wait_drained(r, qname, time.monotonic() + 10, run.progress, "pipeline leftovers", 0)
