"""What a worker process holds: database, domain service, engine. Built lazily after fork."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from typing import Any

import redis

from services.comments.moderation import ModerationService
from services.comments.service import CommentService
from services.config import Settings
from services.queue import protocol
from services.scripts import LuaScripts
from services.wiring import build

from .engine.policy import PolicySettings

log = logging.getLogger("triage.worker")

from .learning import MODEL_NAME  # noqa: E402 - one name for the stored model

MODEL_CHECK_SECONDS = 5.0
DUPLICATE_WINDOW_SECONDS = 3600
DUPLICATE_SITE_WIDE_WORDS = 12  # shorter texts count as duplicates only per author and article
# KEYS: a set per text. ARGV: seconds a set lives, then the comment id for each key. Adds each
# id to its set and returns each set's size after. One call for a batch: as three pipelined
# commands a comment, packing and parsing 750 commands cost the worker 3.0 ms of CPU for a
# batch of 250 (a batch takes about 100 ms); the script call costs 0.8 ms.
DUPLICATES = """
local out = {}
for i, key in ipairs(KEYS) do
  redis.call('SADD', key, ARGV[i + 1])
  out[i] = redis.call('SCARD', key)
  redis.call('EXPIRE', key, ARGV[1])
end
return out
"""


def policy_settings(settings: Settings) -> PolicySettings:
    """The engine's policy settings, from the process settings."""
    return PolicySettings(profanity_mode=settings.profanity_mode,
                          banned_action=settings.banned_action)


class EngineHolder:
    """The engine with the newest learned model and site lists; looks for newer ones every
    few seconds, so `triage train` and list edits reach every worker without a restart."""

    def __init__(self, settings: Settings, service: CommentService, moderation: ModerationService) -> None:
        self.settings = settings
        self.service = service
        self.moderation = moderation
        self._engine: Any = None
        self._model_id: int | None = None
        self._lists_version: int | None = None
        self._checked = 0.0

    def get(self) -> Any:
        now = time.monotonic()
        if self._engine is not None and now - self._checked < MODEL_CHECK_SECONDS:
            return self._engine
        self._checked = now
        latest = self.service.latest_model_id(MODEL_NAME)
        lists_version, lists = self.moderation.lists_snapshot()
        if self._engine is None or latest != self._model_id:
            self._engine = build_engine(self.settings, self.service, lists)
        elif lists_version != self._lists_version:
            self._engine = with_lists(self._engine, lists)
            log.info("site lists reloaded", extra={"lists_version": lists_version})
        self._model_id = latest
        self._lists_version = lists_version
        return self._engine


def build_engine(
    settings: Settings, service: CommentService | None, lists: dict[str, list[str]] | None = None
) -> Any:
    """Engine with the newest stored model, else the shipped one; its weights loaded now."""
    from .engine import model as model_mod
    from .engine.pipeline import Engine

    if service is not None:
        # A database that no `triage seed` prepared: store the shipped model once, so every
        # process loads the same one.
        stored_id = store_seed_model(service)
        if stored_id is not None:
            log.info("engine stored the shipped model", extra={"model_id": stored_id})
    stored = service.latest_model(MODEL_NAME) if service is not None else None
    if stored is not None:
        mdl = model_mod.load(stored[1])
        log.info("engine loaded stored model", extra={"model_id": stored[0]})
    else:  # no database (`triage classify` on its own): the shipped model
        mdl = model_mod.default_model()
    if mdl.encoder is not None:
        mdl.encoder.load()  # before the first comment, not on it
    engine = Engine(settings=policy_settings(settings), model=mdl)
    return with_lists(engine, lists or {})


def store_seed_model(service: CommentService) -> int | None:
    """Store the shipped model unless one is stored already; returns the new model's id.
    `triage seed` runs this before any worker starts, so every process loads one stored model."""
    from .engine import model as model_mod

    if service.latest_model_id(MODEL_NAME) is not None:
        return None
    return service.save_model(MODEL_NAME, model_mod.default_blob(), 0)


def with_lists(engine: Any, lists: dict[str, list[str]]) -> Any:
    """The same engine (model, policy) with the site's lists applied to its filters."""
    from .engine.filters.lists import AllowedDomains, ListsFilter
    from .engine.pipeline import Engine

    # Reuse the engine's compiled filters (building them costs seconds); only the list-driven
    # parts are replaced.
    filters: list[Any] = []
    for f in engine.filters:
        if isinstance(f, ListsFilter):
            continue
        if isinstance(f, AllowedDomains):
            f = f.inner
        filters.append(AllowedDomains(f, lists.get("allowed_domains", [])) if f.name == "spam" else f)
    filters.append(ListsFilter(lists))
    return Engine(settings=engine.settings, model=engine.model, filters=filters)


def fingerprint(body: str) -> str:
    """Same text posted again, whatever the case and spacing."""
    folded = re.sub(r"\W+", " ", body.casefold()).strip()
    return hashlib.sha1(folded.encode()).hexdigest()


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pid = os.getpid()
        services = build(settings, "worker")
        assert services.sender is not None  # a worker's services always have a queue
        self.db = services.db
        self.sender = services.sender
        self.service = services.comments
        self.moderation = services.moderation
        self.redis = redis.Redis.from_url(settings.redis_url)
        # The worker's own handle on the queue's scripts (the sender's connection and timeouts).
        self.queue_scripts = protocol.Scripts(self.sender.client)
        self.scripts = LuaScripts(self.redis, {"duplicates": DUPLICATES})
        self.engine = EngineHolder(settings, self.service, self.moderation)

    def claim(self, batch: str) -> list[str]:
        """Claim `batch` for this worker (see services.queue.protocol); returns its ids."""
        return protocol.claim(self.queue_scripts, self.settings.queue_name, batch,
                              self.settings.visibility_timeout)

    def recent_duplicates_many(self, items: list[tuple[str, str, str | None, str]]) -> dict[str, int]:
        """For each (comment id, body, author ref, article): other comments with the same text in
        the last hour. A long text counts site-wide (a flood pasted under many names); a short
        one only from the same author on the same article, since many people write "thank you".
        A set per text, so a re-delivered task does not count twice."""
        if not items:
            return {}
        keys = [f"triage:dup:{fingerprint(body)}" if len(body.split()) >= DUPLICATE_SITE_WIDE_WORDS
                else f"triage:dup:{fingerprint(body)}:{hashlib.sha1(f'{ref}|{slug}'.encode()).hexdigest()[:16]}"
                for _, body, ref, slug in items]
        counts = self.scripts.call("duplicates", len(keys), *keys, DUPLICATE_WINDOW_SECONDS,
                                   *(cid for cid, *_ in items))
        return {cid: max(0, int(n) - 1) for (cid, *_), n in zip(items, counts)}
