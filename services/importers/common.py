"""What every import shares: posts as plain records, articles found or created, rows written
in committed chunks, idempotency by external id, and the summary.

A file is read once, as a stream (each reader clears what it has read), so memory stays flat
however large the file; only the file's threads (articles) are kept, never its posts. Replies
are linked to their parents after the pass, in SQL, so a reply may come before its parent."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

from sqlalchemy import Table, and_, bindparam, insert, select, update
from sqlalchemy.orm import aliased

from ..comments.models import Article, Comment, Decision, Status, new_id, utcnow
from ..comments.shapes import author_ref
from ..db import Database
from ..integrations.models import ImportedComment
from ..integrations.text import html_to_text

CHUNK = 500
_COMMENTS = cast(Table, Comment.__table__)
_DECISIONS = cast(Table, Decision.__table__)
_IMPORTED = cast(Table, ImportedComment.__table__)


class ImportError_(Exception):
    """The file cannot be read further (malformed XML); says where, and what was imported
    before it (`summary`)."""

    summary: Summary | None = None


@dataclass(frozen=True)
class Thread:
    """An article as the file knows it."""

    key: str  # the file's own id of the thread (Disqus dsq:id, WordPress post_id)
    identifier: str  # the site's id or slug for it, if any
    link: str
    title: str


@dataclass(frozen=True)
class Post:
    """One comment as the file has it; `skip` names why it is not imported."""

    external_id: str
    thread_key: str
    parent_external_id: str | None
    author: str
    email: str | None
    body: str  # as in the file (may be HTML)
    created_at: dt.datetime | None
    status: str = Status.APPROVED  # approved | held
    skip: str | None = None
    ip: str | None = None
    notes: tuple[str, ...] = ()


@dataclass
class Summary:
    imported: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)
    articles_created: list[str] = field(default_factory=list)
    held: int = 0
    started: dt.datetime = field(default_factory=utcnow)

    def lines(self) -> list[str]:
        out = [f"imported: {self.imported} ({self.held} held for a moderator)"]
        if not self.imported and self.skipped.get("already imported"):
            out[0] = "imported: 0 (everything in the file was imported before)"
        out.append(f"articles created: {len(self.articles_created)}")
        for reason, n in sorted(self.skipped.items(), key=lambda kv: (-kv[1], kv[0])):
            out.append(f"skipped, {reason}: {n}")
        for note, n in sorted(self.notes.items(), key=lambda kv: (-kv[1], kv[0])):
            out.append(f"note, {note}: {n}")
        return out


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:200]


def link_slug(link: str) -> str:
    path = urlsplit(link.strip()).path if link.strip() else ""
    parts = [p for p in path.split("/") if p]
    return slugify(parts[-1]) if parts else ""


def clean_email(raw: str | None) -> str | None:
    value = (raw or "").strip()
    return value[:320] if value and "@" in value else None


def clean_author(raw: str | None) -> str:
    value = " ".join((raw or "").split())
    return value[:80] or "Anonymous"


class Writer:
    """Writes posts in chunks of CHUNK, each chunk one transaction: comments, their import
    decisions and their external ids. A chunk's posts that were imported before are skipped."""

    def __init__(self, db: Database, source: str, salt: str, *,
                 progress: Callable[[], None] | None = None) -> None:
        self.db = db
        self.source = source
        self.salt = salt
        self.summary = Summary()
        self.threads: dict[str, Thread] = {}
        self._article_ids: dict[str, int] = {}
        self._buffer: list[Post] = []
        self.progress = progress
        self.started = self.summary.started

    def thread(self, t: Thread) -> None:
        self.threads[t.key] = t

    def post(self, p: Post) -> None:
        if p.skip is None:
            if not p.thread_key.strip():
                p = _with(p, skip="no thread id")
            elif p.thread_key not in self.threads:
                p = _with(p, skip="thread not in the file")
            elif p.created_at is None:
                p = _with(p, skip="no date")
        if p.skip is not None:
            self.summary.skipped[p.skip] += 1
            return
        self._buffer.append(p)
        if len(self._buffer) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        posts, self._buffer = self._buffer, []
        if not posts:
            return
        with self.db.writing() as conn:
            seen = set(conn.execute(select(ImportedComment.external_id).where(
                ImportedComment.source == self.source,
                ImportedComment.external_id.in_([p.external_id for p in posts]))).scalars())
            comments: list[dict[str, Any]] = []
            decisions: list[dict[str, Any]] = []
            mapping: list[dict[str, Any]] = []
            now = utcnow()
            for p in posts:
                if p.external_id in seen:
                    self.summary.skipped["already imported"] += 1
                    continue
                seen.add(p.external_id)  # the same id twice in one file
                body = html_to_text(p.body).strip()
                if not body:
                    self.summary.skipped["empty body"] += 1
                    continue
                for note in p.notes:
                    self.summary.notes[note] += 1
                if body != p.body.strip():
                    self.summary.notes["HTML converted to text"] += 1
                cid = new_id()
                article_id = self._article(conn, self.threads[p.thread_key])
                comments.append({
                    "id": cid, "article_id": article_id, "parent_id": None, "author": p.author,
                    "email": p.email, "body": body,
                    "published_body": body if p.status == Status.APPROVED else None,
                    "status": p.status, "priority": "normal", "rank": 1, "categories": [],
                    "findings": [], "scores": {}, "policy_version": None, "masked_body": None,
                    "author_ref": author_ref(self.salt, p.email, p.ip), "ip_hash": None,
                    "report_count": 0, "version": 2, "request_id": None,
                    "created_at": p.created_at, "decided_at": now})
                decisions.append({
                    "comment_id": cid, "comment_version": 1, "actor": f"import:{self.source}",
                    "action": "import", "from_status": Status.PENDING, "to_status": p.status,
                    "reason": f"imported from {self.source} ({p.external_id})",
                    "priority": "normal", "categories": [], "findings": [], "scores": {},
                    "policy_version": None, "created_at": now})
                mapping.append({"source": self.source, "external_id": p.external_id,
                                "external_parent_id": p.parent_external_id, "comment_id": cid,
                                "created_at": now})
                self.summary.imported += 1
                self.summary.held += p.status == Status.HELD
            if comments:
                conn.execute(insert(_COMMENTS), comments)
                conn.execute(insert(_DECISIONS), decisions)
                conn.execute(insert(_IMPORTED), mapping)

    def _article(self, conn: Any, t: Thread) -> int:
        """The article for a thread: one whose slug is the thread's identifier or its link's
        last segment, else a new one."""
        if t.key in self._article_ids:
            return self._article_ids[t.key]
        candidates = [s for s in (slugify(t.identifier), link_slug(t.link)) if s]
        found = None
        if candidates:
            found = conn.execute(select(Article.id, Article.slug).where(
                Article.slug.in_(candidates))).all()
        if found:
            by_slug = {row.slug: row.id for row in found}
            article_id = next(by_slug[s] for s in candidates if s in by_slug)
        else:
            slug = (link_slug(t.link) or slugify(t.identifier) or slugify(f"{self.source}-{t.key}"))
            title = " ".join(t.title.split())[:500] or slug
            link = t.link.strip() if t.link.strip().startswith(("http://", "https://")) else None
            article_id = conn.execute(insert(Article).values(
                slug=slug, title=title, url=link[:2000] if link else None,
                created_at=utcnow()).returning(Article.id)).scalar_one()
            self.summary.articles_created.append(slug)
        self._article_ids[t.key] = article_id
        return int(article_id)

    def finish(self) -> Summary:
        """Write what is left, then link replies to their parents (any order in the file),
        a page of replies at a time."""
        self.flush()
        child, parent = aliased(ImportedComment), aliased(ImportedComment)
        pc = aliased(Comment)
        orphans = elsewhere = 0
        after = 0
        while True:
            with self.db.writing() as conn:
                rows = conn.execute(
                    select(child.id, child.comment_id, parent.comment_id.label("parent"),
                           Comment.article_id, pc.article_id.label("parent_article"))
                    .join(Comment, Comment.id == child.comment_id)
                    .outerjoin(parent, and_(parent.source == child.source,
                                            parent.external_id == child.external_parent_id))
                    .outerjoin(pc, pc.id == parent.comment_id)
                    .where(child.source == self.source, child.id > after,
                           child.external_parent_id.is_not(None),
                           child.created_at >= self.started, Comment.parent_id.is_(None))
                    .order_by(child.id).limit(CHUNK * 4)).all()
                if not rows:
                    break
                after = rows[-1].id
                links = [{"_id": r.comment_id, "_parent": r.parent} for r in rows
                         if r.parent is not None and r.parent_article == r.article_id]
                away = sum(1 for r in rows if r.parent is not None and r.parent_article != r.article_id)
                elsewhere += away
                orphans += len(rows) - len(links) - away
                if links:
                    conn.execute(update(_COMMENTS).where(_COMMENTS.c.id == bindparam("_id"))
                                 .values(parent_id=bindparam("_parent")), links)
        if elsewhere:
            self.summary.notes["reply whose parent is on another article: kept at the top "
                               "of its own"] += elsewhere
        if orphans:
            self.summary.notes["reply to a post not imported (deleted, spam or missing): "
                               "kept at the top of its article"] += orphans
        return self.summary


def _with(p: Post, **changes: Any) -> Post:
    from dataclasses import replace

    return replace(p, **changes)


def parse_time(raw: str | None) -> dt.datetime | None:
    """ISO 8601 (Disqus: 2019-05-01T10:00:00Z) or WordPress's `YYYY-MM-DD HH:MM:SS`, as UTC."""
    value = (raw or "").strip()
    if not value or value.startswith("0000-00-00"):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def local(tag: str) -> str:
    """An element or attribute name without its namespace."""
    return tag.rsplit("}", 1)[-1]


def child_text(elem: Any, name: str) -> str:
    for c in elem:
        if local(c.tag) == name:
            return (c.text or "").strip() if name != "message" else (c.text or "")
    return ""


def attr(elem: Any, name: str) -> str:
    for k, v in elem.attrib.items():
        if local(k) == name:
            return str(v).strip()
    return ""



