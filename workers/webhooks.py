"""Webhook tasks, on their own queue and worker (`triage webhooks-worker`): a receiver that
is slow or down never holds up moderation.

`webhooks.pump` (beat, every WEBHOOK_PUMP_INTERVAL) turns new events into deliveries and
re-sends deliveries whose message is overdue; `webhooks.deliver(delivery_id)` makes one
attempt and schedules the next with backoff until the delivery succeeds or is marked failed.
"""

from __future__ import annotations

import logging
import os

from celery import Celery

from services.config import Settings

log = logging.getLogger("triage.webhooks")

DELIVER_TASK = "webhooks.deliver"
PUMP_TASK = "webhooks.pump"


class _State:
    def __init__(self, settings: Settings) -> None:
        import redis

        from services.db import Database
        from services.webhooks.service import Policy, WebhookService, http_post
        from services.webhooks.ssrf import pool_manager

        self.pid = os.getpid()
        self.db = Database(settings.database_url)
        self.service = WebhookService(self.db, Policy.from_settings(settings))
        self.redis = redis.Redis.from_url(settings.redis_url)
        self.post = http_post(pool_manager(settings.webhook_allow_private_addresses,
                                           settings.webhook_timeout), settings.webhook_timeout)


_state: _State | None = None


def register(app: Celery, settings: Settings) -> None:
    def state() -> _State:
        global _state
        if _state is None or _state.pid != os.getpid():
            _state = _State(settings)
        return _state

    def send(delivery_id: str, countdown: float | None = None) -> None:
        app.send_task(DELIVER_TASK, kwargs={"delivery_id": delivery_id},
                      queue=settings.webhook_queue, countdown=countdown)

    @app.task(name=DELIVER_TASK, acks_late=True, ignore_result=True)
    def deliver(delivery_id: str) -> str:
        """One attempt of one delivery (nothing if it is done, not due, or being tried)."""
        st = state()
        result = st.service.attempt(delivery_id, st.post)
        if result is None:
            return "skipped"
        if result.retry_in is not None:
            # If this message is lost, the pump finds the delivery overdue and sends it again.
            send(delivery_id, countdown=result.retry_in)
        if result.disabled:
            log.warning("webhook endpoint disabled", extra={"delivery": delivery_id})
        log.info("webhook attempt", extra={"delivery": delivery_id, "ok": result.delivered,
                                           "status_code": result.status_code, "error": result.error})
        return "delivered" if result.delivered else "failed"

    @app.task(name=PUMP_TASK, ignore_result=True)
    def pump() -> int:
        """New events → deliveries (committed, then sent); overdue deliveries → sent again."""
        from services.webhooks import pump as stream

        st = state()
        events = stream.read(st.redis)
        created = st.service.fan_out([e for e in events if e[1]])
        stream.ack(st.redis, [e[0] for e in events])
        overdue = st.service.due(grace_seconds=max(30.0, settings.webhook_timeout * 4))
        for delivery_id in dict.fromkeys(created + overdue):
            send(delivery_id)
        return len(created)
