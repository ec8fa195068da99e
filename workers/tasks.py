"""Tasks take ids, reload state, and do nothing when the work is already done.

The API queues each comment once, after its row is committed, and comments waiting for a
worker share a batch (see `services.queue.protocol`): `moderation.moderate_comments(batch)`
moderates up to `MAX_IDS` comments with one query to load them and one transaction to record
the decisions. A message is acknowledged only after its batch has returned (acks_late), and
the database's unique (comment, version) constraint keeps every comment to exactly one engine
decision however often a message is delivered.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from typing import Any

from celery import Celery
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_process_init
from redis.exceptions import OutOfMemoryError, RedisError
from sqlalchemy.exc import OperationalError

from services.config import Settings
from services.queue.protocol import MODERATE_TASK, claim_counted

from .engine.pipeline import Verdict, error_verdict
from .runtime import Runtime

log = logging.getLogger("triage.worker")

_runtime: Runtime | None = None

# Errors that go away by themselves (a database or Redis blip): try again later.
TRANSIENT = (OperationalError, RedisError, ConnectionError)
RETRY_DELAY = 2.0
# Times one batch is sent again after a transient error before it is left to the sweeper
# (which re-sends what is still pending every SWEEP_INTERVAL, a page at a time).
MAX_RESENDS = 5
SWEEP_CURSOR = "triage:sweep:after:{queue}"


def register(app: Celery, settings: Settings) -> None:
    from .engine.pipeline import required_filter_classes

    # Every filter is mandatory: a worker that cannot load one refuses to start (raises here).
    required_filter_classes()

    def runtime() -> Runtime:
        global _runtime
        if _runtime is None or _runtime.pid != os.getpid():
            _runtime = Runtime(settings)
        return _runtime

    @worker_process_init.connect(weak=False)
    def _warm(**_: object) -> None:
        # Load the engine as the process starts, not when the first comment is waiting.
        try:
            runtime().engine.get()
        except Exception:  # noqa: BLE001 - a database not yet reachable: load on first use
            log.warning("engine warm-up failed; it loads on first use", exc_info=True)
        # The engine and everything imported live as long as the process: kept out of the
        # collector's sight, a full collection walks only what batches leave behind.
        gc.freeze()

    # A failure or time-out leaves the message unacknowledged, so it comes back and the batch
    # is claimed again: then taken comment by comment (moderate_carefully).
    @app.task(name=MODERATE_TASK, acks_late=True, ignore_result=True, acks_on_failure_or_timeout=False)
    def moderate_comments(batch: str) -> int:
        """Moderate the comments of one batch (see services.queue.protocol) still pending."""
        return run_batch(app, runtime(), settings, batch)

    @app.task(name="moderation.moderate_comment", acks_late=True, ignore_result=True,
              autoretry_for=TRANSIENT, retry_backoff=True, max_retries=5)
    def moderate_comment(comment_id: str) -> int:
        """One comment by id: the single-comment form of the task, for callers that send it."""
        return moderate_batch(runtime(), [str(comment_id)])

    @app.task(name="moderation.retrain", ignore_result=True, acks_late=True,
              autoretry_for=TRANSIENT, retry_backoff=True, max_retries=5)
    def retrain() -> bool:
        """Rebuild the learned model when moderators' decisions added examples."""
        from .learning import retrain as rebuild

        result = rebuild(runtime().service, max_examples=settings.retrain_max_examples)
        return bool(result["rebuilt"])

    @app.task(name="bench.noop", ignore_result=True, acks_late=True)
    def noop(comment_id: str) -> None:
        """Does nothing: `make bench` measures the broker and worker ceiling with it."""

    @app.task(name="moderation.purge", ignore_result=True, acks_late=True)
    def purge() -> int:
        """Forget idempotency keys past their 24 h window."""
        return runtime().service.purge_idempotency_keys()

    @app.task(name="moderation.sweep_pending", ignore_result=True, acks_late=True)
    def sweep_pending() -> int:
        """Re-send comments still pending after the grace period (see `sweep`)."""
        return sweep(runtime(), settings)


def run_batch(app: Celery, rt: Runtime, settings: Settings, batch: str) -> int:
    """The body of `moderation.moderate_comments`: claim the batch and moderate it, all at once
    the first time, comment by comment when it comes back."""
    claims = 0
    try:
        ids, claims = claim_counted(rt.queue_scripts, settings.queue_name, batch,
                                    settings.visibility_timeout)
        if claims > 1:
            return moderate_carefully(rt, ids, settings.max_attempts)
        return moderate_batch(rt, ids)
    except OutOfMemoryError:
        # A full Redis will not empty itself in two seconds: the comments stay pending for
        # the sweeper, rather than a retry every 2 s that cannot succeed.
        log.error("Redis is out of memory; the batch is left to the sweeper", extra={"batch": batch})
        return 0
    except (*TRANSIENT, SoftTimeLimitExceeded) as exc:
        # Nothing was recorded (one transaction) and the batch is kept: run it again shortly,
        # a few times. If even that send fails, the sweeper finds the comments still pending.
        if claims > MAX_RESENDS:
            log.error("batch failed again; left to the sweeper", extra={"batch": batch})
            return 0
        log.warning("batch failed, retrying", extra={"batch": batch, "error": type(exc).__name__})
        try:
            app.send_task(MODERATE_TASK, kwargs={"batch": batch}, queue=settings.queue_name,
                          countdown=RETRY_DELAY)
        except Exception:  # noqa: BLE001 - the comments stay pending; the sweeper re-sends
            pass
        return 0


def sweep(rt: Runtime, settings: Settings) -> int:
    """Re-send comments still pending after the grace period (lost messages): one page, oldest
    first, then the next page at the next sweep, so a large backlog is walked through and
    newer comments are reached too."""
    key = SWEEP_CURSOR.format(queue=settings.queue_name)
    after = rt.redis.get(key)
    ids, following = rt.service.stale_pending_page(
        settings.sweep_grace, settings.sweep_page,
        after.decode() if isinstance(after, bytes) else None)
    if following is None:
        rt.redis.delete(key)
    else:
        rt.redis.set(key, following, ex=max(settings.sweep_grace, settings.sweep_interval) * 10)
    n = rt.service.redispatch(ids)
    if n:
        log.info("re-sent pending comments", extra={"count": n})
    return n


def moderate_batch(rt: Runtime, ids: list[str]) -> int:
    """Moderate the comments among `ids` that are still pending; returns how many were decided."""
    started = time.perf_counter()
    if not ids:
        return 0
    # One connection for everything read before the engine runs (Core rows, no ORM session:
    # for a lone comment, a session's bookkeeping costs more than the queries). No snapshot
    # is needed: the write is guarded by each row's version.
    with rt.db.reading() as s:
        pending = rt.service.pending_batch(ids, s)
        refs = {c.author_ref for c, _ in pending if c.author_ref}
        banned = rt.moderation.banned_among(refs, s)
        trusted = rt.moderation.trusted_among(refs - banned, s)
    if not pending:
        return 0
    dups = rt.recent_duplicates_many([(c.id, c.body, c.author_ref, slug) for c, slug in pending])
    try:  # the sentence vectors (and nearest neighbours) of the whole batch in one pass
        features = rt.engine.get().sentence_features([c.body for c, _ in pending])
    except Exception:  # noqa: BLE001 - each comment is then encoded (or held) on its own
        log.exception("batch encoding failed", extra={"size": len(pending)})
        features = None
    verdicts: dict[str, Verdict] = {}
    for i, (c, slug) in enumerate(pending):
        try:
            verdicts[c.id] = classify(rt, c.body, c.author, slug, dups.get(c.id, 0),
                                      c.author_ref in trusted, c.author_ref in banned,
                                      None if features is None else features[i])
        except Exception as exc:  # noqa: BLE001 - poison input: hold it, don't loop
            log.exception("engine failed", extra={"comment_id": c.id, "request_id": c.request_id})
            verdicts[c.id] = error_verdict(exc)
    decided = set(rt.service.record_engine_decisions(verdicts, pending))
    observe(pending, verdicts, decided)
    for c, _ in pending:
        v = verdicts[c.id]
        log.info("decided" if c.id in decided else "already decided",
                 extra={"comment_id": c.id, "request_id": c.request_id, "action": v.action,
                        "priority": v.priority, "categories": list(v.categories)})
    log.debug("batch", extra={"size": len(pending), "ms": round((time.perf_counter() - started) * 1e3, 2)})
    return len(decided)


def moderate_carefully(rt: Runtime, ids: list[str], max_attempts: int) -> int:
    """A batch claimed again (its worker died, timed out or failed): each comment is recorded
    on its own, so one that stops the worker takes no other with it, and a comment that was
    being classified `max_attempts` times when its worker stopped is held as `error` for a
    person instead of being tried again."""
    with rt.db.reading() as s:
        pending = rt.service.pending_batch(ids, s)
        refs = {c.author_ref for c, _ in pending if c.author_ref}
        banned = rt.moderation.banned_among(refs, s)
        trusted = rt.moderation.trusted_among(refs - banned, s)
    order = {cid: i for i, cid in enumerate(ids)}
    pending.sort(key=lambda row: order.get(row[0].id, len(order)))  # in the batch's order
    decided = 0
    for c, slug in pending:
        key = f"triage:attempts:{c.id}"
        attempts = int(rt.redis.incr(key))
        rt.redis.expire(key, 24 * 3600)
        if attempts > max_attempts:
            log.error("comment stopped its worker %d times; held for a person", attempts - 1,
                      extra={"comment_id": c.id, "request_id": c.request_id})
            verdict = error_verdict(PoisonComment(f"gave up after {attempts - 1} attempts"))
        else:
            try:
                dups = rt.recent_duplicates_many([(c.id, c.body, c.author_ref, slug)])
                verdict = classify(rt, c.body, c.author, slug, dups.get(c.id, 0),
                                   c.author_ref in trusted, c.author_ref in banned)
            except SoftTimeLimitExceeded:
                raise
            except Exception as exc:  # noqa: BLE001 - poison input: hold it, don't loop
                log.exception("engine failed", extra={"comment_id": c.id, "request_id": c.request_id})
                verdict = error_verdict(exc)
        decided += len(rt.service.record_engine_decisions({c.id: verdict}, [(c, slug)]))
        rt.redis.delete(key)
    return decided


class PoisonComment(Exception):
    """A comment that stopped its worker too often."""


def observe(pending: list[Any], verdicts: dict[str, Verdict], decided: set[str]) -> None:
    """Metrics: decisions by action and category, submitted → decided latency, batch size."""
    import datetime as dt

    from services.metrics import BATCH_SIZES, DECISIONS, MODERATION_LATENCY

    BATCH_SIZES.observe(len(pending))
    now = dt.datetime.now(dt.UTC)
    for c, _ in pending:
        if c.id not in decided:
            continue
        v = verdicts[c.id]
        for category in v.categories or ["none"]:
            DECISIONS.labels(v.action, category).inc()
        created = c.created_at if c.created_at.tzinfo else c.created_at.replace(tzinfo=dt.UTC)
        MODERATION_LATENCY.observe(max(0.0, (now - created).total_seconds()))


def classify(
    rt: Runtime, body: str, author: str | None, slug: str, duplicates: int = 0,
    trusted: bool = False, banned: bool = False, features: Any = None,
) -> Verdict:
    """Run the engine with what the worker knows (duplicates, trust, a ban, what the encoder gave
    the comment in its batch)."""
    from .engine.filters.base import Context

    engine = rt.engine.get()
    ctx = Context(author=author, article=slug, recent_duplicates=duplicates, trusted_author=trusted)
    return engine.classify(body, author=author, context=ctx, banned=banned, features=features)
