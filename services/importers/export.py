"""`triage export`: every comment (or one article's) with its decisions, for audits and for
leaving. Read in keyset pages, written as it goes: memory does not grow with the database."""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections import defaultdict
from typing import Any, TextIO

from sqlalchemy import and_, or_, select

from ..comments.models import Article, Comment, Decision
from ..comments.service import CommentService

PAGE = 500
COLUMNS = ("id", "article", "status", "parent_id", "author", "created_at", "decided_at", "body",
           "published_body", "priority", "categories", "policy_version", "decisions", "history")


def utc(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def rows(service: CommentService, article: str | None = None):  # type: ignore[no-untyped-def]
    """Each comment as a dict, by article, then oldest first."""
    article_id = service.article_id(article) if article else None
    after: tuple[int, dt.datetime, str] | None = None
    while True:
        with service.db.session() as s:
            q = select(Comment, Article.slug).join(Article, Article.id == Comment.article_id)
            if article_id is not None:
                q = q.where(Comment.article_id == article_id)
            if after is not None:
                a, t, i = after
                q = q.where(or_(Comment.article_id > a,
                                and_(Comment.article_id == a, Comment.created_at > t),
                                and_(Comment.article_id == a, Comment.created_at == t, Comment.id > i)))
            page = s.execute(q.order_by(Comment.article_id, Comment.created_at, Comment.id)
                             .limit(PAGE)).all()
            if not page:
                return
            history: dict[str, list[Decision]] = defaultdict(list)
            for d in s.scalars(select(Decision).where(Decision.comment_id.in_([c.id for c, _ in page]))
                               .order_by(Decision.comment_id, Decision.comment_version)):
                history[d.comment_id].append(d)
            for c, slug in page:
                yield _row(c, slug, history[c.id])
            last = page[-1][0]
            after = (last.article_id, last.created_at, last.id)


def _row(c: Comment, slug: str, decisions: list[Decision]) -> dict[str, Any]:
    return {
        "id": c.id, "article": slug, "status": c.status, "parent_id": c.parent_id,
        "author": c.author, "created_at": utc(c.created_at), "decided_at": utc(c.decided_at),
        "body": c.body, "published_body": c.published_body, "priority": c.priority,
        "categories": list(c.categories or []), "policy_version": c.policy_version,
        "decisions": [{
            "version": d.comment_version, "actor": d.actor, "action": d.action,
            "from": d.from_status, "to": d.to_status, "reason": d.reason,
            "priority": d.priority, "categories": list(d.categories or []),
            "findings": list(d.findings or []), "scores": dict(d.scores or {}),
            "policy_version": d.policy_version, "at": utc(d.created_at)} for d in decisions],
        "history": [f"{utc(d.created_at)} {d.actor}: {d.from_status} → {d.to_status}"
                    for d in decisions],
    }


def export(service: CommentService, out: TextIO, fmt: str, article: str | None = None) -> int:
    """Write comments as JSON lines or CSV (lists as JSON in their cell); returns how many."""
    if article is not None:
        service.article_id(article)  # NotFound before any header is written
    n = 0
    writer = csv.DictWriter(out, fieldnames=COLUMNS) if fmt == "csv" else None
    if writer is not None:
        writer.writeheader()
    for row in rows(service, article):
        if writer is not None:
            writer.writerow({k: json.dumps(v, ensure_ascii=False)
                             if isinstance(v, (list, dict)) else v for k, v in row.items()})
        else:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
        n += 1
    return n
