"""An import from start to summary, and the optional engine pass over what it imported."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select

from ..comments.models import Comment, Status
from ..comments.moderation import ModerationService
from ..comments.service import CommentService, transition
from ..config import Settings
from ..integrations.models import ImportedComment
from . import readers
from .common import ImportError_, Post, Summary, Thread, Writer

log = logging.getLogger("triage.import")

READERS = {"disqus": readers.disqus, "wordpress": readers.wordpress}


class _Counting:
    """A binary file that counts what it has handed out (for the progress bar)."""

    def __init__(self, raw: IO[bytes], seen: Callable[[int], None]) -> None:
        self.raw, self.seen = raw, seen

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.seen(len(data))
        return data


def import_file(service: CommentService, kind: str, path: Path,
                progress: Callable[[int], None] | None = None) -> Summary:
    """Read `path` as a `kind` export and write its comments; raises ImportError_ (with the
    line) on malformed XML after committing what came before it: run again once the file is
    fixed, and what was imported is skipped."""
    writer = Writer(service.db, kind, service.salt)
    with path.open("rb") as raw:
        stream: Any = _Counting(raw, progress) if progress else raw
        try:
            for item in READERS[kind](stream):
                if isinstance(item, Thread):
                    writer.thread(item)
                elif isinstance(item, Post):
                    writer.post(item)
        except ImportError_ as exc:
            exc.summary = writer.finish()
            raise
    return writer.finish()


def moderate(settings: Settings, service: CommentService, summary: Summary) -> dict[str, int]:
    """Run the engine over imported comments: an approved one it would not publish is held
    (or rejected when it would block it); every one gets the engine's findings."""
    from workers.engine.filters.base import Context
    from workers.runtime import build_engine

    mod = ModerationService(service)
    _, lists = mod.lists_snapshot()
    engine = build_engine(settings, service, lists)
    counts = {"checked": 0, "held": 0, "rejected": 0}
    after = 0
    while True:  # what this run imported, 200 at a time (never all ids in memory)
        with service.db.session() as s:
            chunk = s.execute(select(ImportedComment.id, ImportedComment.comment_id).where(
                ImportedComment.id > after, ImportedComment.created_at >= summary.started,
            ).order_by(ImportedComment.id).limit(200)).all()
            if not chunk:
                return counts
            after = chunk[-1].id
            for c in s.scalars(select(Comment).where(Comment.id.in_([r.comment_id for r in chunk]))):
                verdict = engine.classify(c.body, author=c.author, context=Context(author=c.author))
                counts["checked"] += 1
                c.findings = [f.to_json() for f in verdict.findings]
                c.scores = dict(verdict.scores)
                c.policy_version = verdict.decision.policy_version
                if c.status != Status.APPROVED or verdict.action == "publish":
                    continue
                to = Status.REJECTED if verdict.action == "block" else Status.HELD
                transition(s, c, actor="engine", action=verdict.action, to_status=to,
                           reason="review of imported comments: " + ", ".join(verdict.decision.categories),
                           priority=verdict.priority, categories=list(verdict.decision.categories),
                           policy_version=verdict.decision.policy_version)
                counts["held" if to == Status.HELD else "rejected"] += 1
