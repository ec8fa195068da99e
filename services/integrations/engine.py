"""The moderation engine inside an API process, for answers that cannot wait for a worker.

The engine is pure (no Celery, no database); loading it takes seconds (the stored model, the
compiled filters), so it is loaded and refreshed on a thread of its own and a request only
ever takes the one already loaded."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from ..comments.moderation import ModerationService
from ..comments.service import CommentService
from ..config import Settings

log = logging.getLogger("triage.engine")

REFRESH_SECONDS = 5.0


class BackgroundEngine:
    """`get()` returns the loaded engine, or None while the first load is still running."""

    def __init__(self, settings: Settings, service: CommentService,
                 moderation: ModerationService) -> None:
        self.settings = settings
        self.service = service
        self.moderation = moderation
        self._engine: Any = None
        self._pid = 0
        self._lock = threading.Lock()
        self._loaded = threading.Event()

    def start(self) -> None:
        """Start loading (once per process; a forked child starts its own)."""
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._engine = None
            self._loaded.clear()
        threading.Thread(target=self._run, name="engine-loader", daemon=True).start()

    def get(self) -> Any:
        if self._pid != os.getpid():
            self.start()
        return self._engine

    def wait(self, timeout: float) -> bool:
        """For tests and warm-up: True once an engine is loaded."""
        self.get()
        return self._loaded.wait(timeout)

    def _run(self) -> None:
        from workers.runtime import EngineHolder

        holder = EngineHolder(self.settings, self.service, self.moderation)
        stop = threading.Event()
        while not stop.is_set():
            try:
                # The holder rebuilds only when a newer model or list version is stored.
                self._engine = holder.get()
                self._loaded.set()
            except Exception:  # noqa: BLE001 - keep serving the engine we have; try again
                log.warning("engine refresh failed", exc_info=True)
            stop.wait(REFRESH_SECONDS)
