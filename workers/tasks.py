"""Tasks take ids, reload state, and do nothing when the work is already done."""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery
from redis.exceptions import RedisError
from sqlalchemy.exc import OperationalError

from services.config import Settings

from .runtime import Runtime

log = logging.getLogger("triage.worker")

_runtime: Runtime | None = None

# Errors that go away by themselves (a database or Redis blip): retry with backoff.
TRANSIENT = (OperationalError, RedisError, ConnectionError)


def error_verdict(exc: Exception) -> dict[str, Any]:
    """A comment the engine cannot handle is held for a person, never retried forever."""
    return {
        "action": "hold",
        "priority": "normal",
        "categories": ["error"],
        "published_body": None,
        "findings": [{"category": "error", "score": 1.0, "rule": "engine.error", "spans": [],
                      "detail": type(exc).__name__}],
        "scores": {},
        "policy_version": None,
        "reason": "error",
    }


def register(app: Celery, settings: Settings) -> None:
    def runtime() -> Runtime:
        global _runtime
        if _runtime is None or _runtime.pid != os.getpid():
            _runtime = Runtime(settings, dispatch=send_moderate)
        return _runtime

    def send_moderate(comment_id: str, request_id: str | None) -> None:
        app.send_task("moderation.moderate_comment", args=[comment_id],
                      queue=settings.queue_name,
                      headers={"request_id": request_id} if request_id else None)

    @app.task(
        name="moderation.moderate_comment",
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        ignore_result=True,
        autoretry_for=TRANSIENT,
        retry_backoff=True,
        retry_backoff_max=60,
        max_retries=20,
    )
    def moderate_comment(self: Any, comment_id: str) -> str:
        rid = (self.request.headers or {}).get("request_id") if self.request.headers else None
        rt = runtime()
        pending = rt.service.pending_for_moderation(comment_id)
        if pending is None:
            log.info("already decided", extra={"comment_id": comment_id, "request_id": rid})
            return "skipped"
        comment, slug = pending
        try:
            verdict = classify(rt, comment.id, comment.body, comment.author, slug,
                               comment.author_ref)
        except TRANSIENT:
            raise
        except Exception as exc:  # noqa: BLE001 - poison input: hold it, don't loop
            log.exception("engine failed", extra={"comment_id": comment_id, "request_id": rid})
            verdict = error_verdict(exc)
        recorded = rt.service.record_engine_decision(comment_id, verdict)
        log.info(
            "decided" if recorded else "already decided",
            extra={"comment_id": comment_id, "request_id": rid, "action": verdict["action"],
                   "priority": verdict.get("priority"), "categories": verdict.get("categories")},
        )
        return verdict["action"]

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
        """Re-send every comment still pending after the grace period (lost messages)."""
        rt = runtime()
        ids = rt.service.stale_pending(settings.sweep_grace)
        n = rt.service.redispatch(ids)
        if n:
            log.info("re-sent pending comments", extra={"count": n})
        return n


def classify(
    rt: Runtime, comment_id: str, body: str, author: str | None, slug: str,
    author_ref: str | None = None,
) -> dict[str, Any]:
    """Run the engine with what the worker knows (duplicates, trust) and apply author bans."""
    from .filters.base import Context
    from .filters.profanity import mask

    engine = rt.engine.get()
    ctx = Context(author=author, article=slug,
                  recent_duplicates=rt.recent_duplicates(comment_id, body),
                  trusted_author=rt.moderation.is_trusted(author_ref))
    verdict = engine.classify(body, author=author, context=ctx)
    out: dict[str, Any] = verdict.to_json()
    profane = [f for f in verdict.findings if f.category == "profanity"]
    # Kept even when held, so a moderator's approval publishes the masked text.
    out["masked_body"] = mask(body, profane) if profane else body
    if rt.moderation.is_banned(author_ref):
        out = apply_ban(out, rt.settings.banned_action)
    return out


def apply_ban(verdict: dict[str, Any], banned_action: str) -> dict[str, Any]:
    """A banned author's comment is held or rejected; a crisis is still held, urgent."""
    out = dict(verdict, reason="banned", published_body=None,
               categories=sorted(set(verdict.get("categories", [])) | {"banned"}))
    if "self_harm" in verdict.get("categories", []):
        out["action"], out["priority"] = "hold", "urgent"
    else:
        out["action"] = "block" if banned_action == "reject" else "hold"
    return out
