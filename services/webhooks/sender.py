"""Sends a delivery task by name from a process that is not a worker (the API's redeliver)."""

from __future__ import annotations

import threading
from typing import Any

from ..config import Settings


class DeliverySender:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._app: Any = None
        self._lock = threading.Lock()

    def send(self, delivery_id: str) -> None:
        with self._lock:
            if self._app is None:
                from celery import Celery

                self._app = Celery("triage-api", broker=self.settings.redis_url,
                                   set_as_current=False)
        self._app.send_task("webhooks.deliver", kwargs={"delivery_id": delivery_id},
                            queue=self.settings.webhook_queue)
