"""One place builds what a process needs: `build(settings, role) -> Services`.

The API (`create_app`), the worker runtime and the CLI all call it, so a setting reaches every
process the same way. Clients are created here, never at import time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .cache import InvalidatingPublisher, ReadCache
from .comments.moderation import ModerationRules, ModerationService
from .comments.service import CommentService
from .config import Settings
from .db import Database
from .events import RedisPublisher
from .queue.buffer import SendBuffer
from .queue.sender import TaskSender

Role = Literal["api", "worker", "cli", "streams"]


@dataclass
class Services:
    """The services of one process. The CLI's have no queue and no read cache."""

    settings: Settings
    db: Database
    comments: CommentService
    moderation: ModerationService
    sender: TaskSender | None = None
    send_buffer: SendBuffer | None = None
    read_cache: ReadCache | None = None


def moderation_rules(settings: Settings) -> ModerationRules:
    """The moderation rules, every one of them from settings."""
    return ModerationRules(
        report_threshold=settings.report_threshold,
        report_threshold_self_harm=settings.report_threshold_self_harm,
        trust_min_approved=settings.trust_min_approved,
    )


def build(settings: Settings, role: Role, *, comments: CommentService | None = None) -> Services:
    """The services `role` needs. Tests may pass their own `comments` service (API only)."""
    if role in ("cli", "streams"):  # live updates only read, as the CLI does
        db = Database(settings.database_url)
        svc = CommentService(db, salt=settings.author_salt)
        return Services(settings, db, svc, ModerationService(svc, moderation_rules(settings)))
    settings.check()
    cache = ReadCache(settings.redis_url)
    sender: TaskSender | None = None
    buffer: SendBuffer | None = None
    if comments is None:
        db = Database(settings.database_url)
        sender = TaskSender(settings)
        dispatch = sender.moderate
        if role == "api" and settings.enqueue_delay_ms > 0:
            # Comments accepted together go to the queue in one call (services/queue/buffer.py).
            buffer = SendBuffer(sender.moderate_batch, settings.enqueue_delay_ms / 1000,
                                busy_per_second=settings.enqueue_busy_per_second)
            dispatch = buffer.add
        # Re-sends (the sweeper's) go into fresh batches of their own.
        comments = CommentService(
            db, dispatch=dispatch, redispatch_many=sender.moderate_many, salt=settings.author_salt,
            publisher=InvalidatingPublisher(RedisPublisher(settings.redis_url), cache))
    else:
        db = comments.db
        if not isinstance(comments.publisher, InvalidatingPublisher):
            # A service passed in must still have its decisions reach the read cache.
            comments.publisher = InvalidatingPublisher(comments.publisher, cache)
    moderation = ModerationService(comments, moderation_rules(settings))
    return Services(settings, db, comments, moderation, sender, buffer, cache)
