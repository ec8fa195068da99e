"""One Celery app per process, built from settings: `make_celery(settings)`."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import Celery
from celery.signals import setup_logging as celery_setup_logging

from services.config import Settings
from services.logs import setup_logging
from services.queue.protocol import broker_options


def make_celery(settings: Settings | None = None) -> Celery:
    """A Celery app configured for reliability, with the moderation tasks registered."""
    settings = settings or Settings.from_env()
    app = Celery("triage", broker=settings.redis_url, set_as_current=True)
    app.conf.update(
        broker_transport_options=broker_options(settings),
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        # A task is acknowledged only once it has finished, and a task whose worker died is
        # put back rather than dropped: the comment must reach a decision.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # A comment that hangs the engine must not hold a worker forever: the soft limit
        # raises in the task (the batch is retried comment by comment), the hard one kills
        # the process (the message comes back, claimed again; see tasks.moderate_carefully).
        task_soft_time_limit=settings.task_soft_time_limit,
        task_time_limit=settings.task_time_limit,
        # A worker process holds one message at a time: what waits stays in Redis, where new
        # comments join the waiting batches (services.queue.protocol), rather than in a worker's
        # prefetch buffer, where nothing can join them.
        worker_prefetch_multiplier=1,
        # A pool process loads the engine (the model and the sentence encoder's weights, a few
        # seconds) before it reports up: Celery's default 4 s would kill it mid-load.
        worker_proc_alive_timeout=60,
        task_default_queue=settings.queue_name,
        task_routes={"moderation.*": {"queue": settings.queue_name},
                     "webhooks.*": {"queue": settings.webhook_queue}},
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        beat_schedule={
            "sweep-pending": {
                "task": "moderation.sweep_pending",
                "schedule": timedelta(seconds=settings.sweep_interval),
            },
            "retrain": {
                "task": "moderation.retrain",
                "schedule": timedelta(seconds=settings.retrain_interval),
            },
            "purge": {"task": "moderation.purge", "schedule": timedelta(hours=1)},
            # Expires: with no webhooks worker running, old turns are dropped, not piled up.
            "webhooks-pump": {"task": "webhooks.pump",
                              "schedule": timedelta(seconds=settings.webhook_pump_interval),
                              "options": {"expires": max(5.0, settings.webhook_pump_interval * 5)}},
        },
    )
    app.conf.triage_settings = settings

    # Our JSON lines instead of Celery's own log format, in the worker and in beat.
    @celery_setup_logging.connect(weak=False)
    def _logging(**_: object) -> None:
        setup_logging(settings.log_level)
        # Celery's own "received"/"succeeded" line per message repeats what our one
        # "decided" line per comment says, at a real cost per message.
        for name in ("celery.worker.strategy", "celery.app.trace"):
            logging.getLogger(name).setLevel(logging.WARNING)

    from . import tasks, webhooks

    tasks.register(app, settings)
    webhooks.register(app, settings)
    return app
