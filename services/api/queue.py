"""Sending moderation tasks by name, so the API never imports worker code."""

from __future__ import annotations

from celery import Celery

from ..config import Settings

MODERATE_TASK = "moderation.moderate_comment"


def broker_options(settings: Settings) -> dict[str, object]:
    """Transport options shared by the API's producer and the workers."""
    return {
        "visibility_timeout": settings.visibility_timeout,
        # Look for messages a dead worker left unacknowledged every few seconds (and scan on
        # every look), so they come back soon after the visibility timeout, not minutes later.
        "unacked_restore_interval": max(1, min(10, settings.visibility_timeout // 4)),
        "unacked_restore_throttle": 1,
        # A broker that vanishes without closing the connection must not hang a publish.
        "socket_timeout": 15,
        "socket_connect_timeout": 5,
    }


class TaskSender:
    """A producer-only Celery app (no tasks registered) created per process, lazily connected."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = Celery("triage-api", broker=settings.redis_url, set_as_current=False)
        self.app.conf.update(
            broker_transport_options=broker_options(settings),
            task_serializer="json",
            accept_content=["json"],
            broker_connection_retry_on_startup=False,
        )

    def moderate(self, comment_id: str, request_id: str | None = None) -> None:
        """Send `moderation.moderate_comment(comment_id)`; raises if the broker is down."""
        self.app.send_task(
            MODERATE_TASK,
            args=[comment_id],
            queue=self.settings.queue_name,
            headers={"request_id": request_id} if request_id else None,
            retry=False,
        )

    def ping(self) -> None:
        with self.app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
