"""gunicorn serving `create_app`, with the same configuration for `make run` and `make bench`."""

from __future__ import annotations

import gc
import logging
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

from .config import Settings


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from .api import create_app

        return create_app(self.settings)


class QuietAccessLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger, minus access lines nobody will see.

    gunicorn builds each request's access-log fields whenever any logging configuration is
    given (ours is, for JSON lines), even with `gunicorn.access` below INFO, and logging then
    drops the line: a trivial GET at 1,000 a second cost an API process 0.75-0.79 ms of CPU
    with it, 0.69 ms without."""

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        if self.access_log.isEnabledFor(logging.INFO):
            super().access(resp, req, environ, request_time)


def gunicorn_options(settings: Settings) -> dict[str, Any]:
    return {
        "bind": f"{settings.host}:{settings.port}",
        "workers": settings.web_concurrency,
        # One request at a time per process, and the connection closed after each answer: sync
        # workers ignore keep-alive (a reverse proxy in front can keep it with clients).
        # Threaded workers (2 x 4 threads, on PostgreSQL) served a trivial post a third faster
        # over kept-alive connections and a comment about a tenth faster (docs/performance.md).
        "worker_class": "sync",
        "timeout": 30,
        "graceful_timeout": 10,
        "accesslog": None,
        "logger_class": QuietAccessLogger,
        "errorlog": "-",
        "loglevel": settings.log_level.lower(),
        "child_exit": _child_exit,
        "post_worker_init": _post_worker_init,
        "worker_exit": _worker_exit,
        # gunicorn's own lines in the same JSON shape as everything else.
        "logconfig_dict": {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"json": {"()": "services.logs.JsonFormatter"}},
            "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json",
                                    "stream": "ext://sys.stderr"}},
            "root": {"handlers": ["stderr"], "level": settings.log_level.upper()},
            "loggers": {
                "gunicorn.error": {"handlers": ["stderr"], "level": settings.log_level.upper(),
                                   "propagate": False},
                "gunicorn.access": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
            },
        },
    }


def _child_exit(_server: Any, worker: Any) -> None:
    from .metrics import mark_dead

    mark_dead(worker.pid)


def _post_worker_init(_worker: Any) -> None:
    # What the app holds from now on (Flask, SQLAlchemy, pydantic, about 100,000 objects) lives
    # as long as the process: out of the collector's sight, a full collection no longer walks
    # it (one took 170 ms of a request's time under load here).
    gc.freeze()


def _worker_exit(_server: Any, worker: Any) -> None:
    # Comments accepted in the last milliseconds go to the queue before the process ends (the
    # sweeper would find them, but only after SWEEP_GRACE).
    buffer = getattr(getattr(worker, "wsgi", None), "extensions", {}).get("triage.send_buffer")
    if buffer is not None:
        buffer.flush()


def serve(settings: Settings) -> None:
    """Run gunicorn in the foreground."""
    _Gunicorn(settings, gunicorn_options(settings)).run()
