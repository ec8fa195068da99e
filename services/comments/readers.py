"""What site widgets read: pages (flat or threaded, oldest or newest first), counts, the feed,
and the public view of comments a live stream announces. Reads only; never anything private."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, and_, func, or_, select

from .errors import Invalid
from .models import Article, Comment, Decision, Status, decided
from .repository import PUBLIC_COLUMNS
from .service import CommentService
from .shapes import decode_cursor, encode_cursor, public_view

Order = Literal["oldest", "newest"]
View = Literal["flat", "thread"]

# Replies nest at most this deep (a top-level comment is depth 0); deeper replies are shown at
# the deepest level, still naming the comment they answer in `parent_id`.
THREAD_DEPTH = 3
# How many slugs one counts request may name (a listing page's worth).
MAX_COUNT_SLUGS = 100
# Guards the walk up a chain of parents against a corrupt (cyclic) chain.
_MAX_CHAIN = 1000


@dataclass(frozen=True, slots=True)
class PageQuery:
    limit: int = 50
    cursor: str | None = None
    order: Order = "oldest"
    view: View = "flat"


@dataclass(frozen=True, slots=True)
class ArticleInfo:
    slug: str
    title: str
    url: str | None
    open: bool


class Readers:
    """The read side for readers and site widgets, over the comments service's database."""

    def __init__(self, service: CommentService) -> None:
        self.service = service
        self.db = service.db
        # Slugs known to be articles (they are never deleted), so counts skip unknown ones cheaply.
        self._known: set[str] = set()

    # -- pages --------------------------------------------------------------------------------
    def page(self, slug: str, q: PageQuery) -> tuple[list[dict[str, Any]], str | None]:
        """One page of approved comments: flat, or top-level comments with their replies.

        In both views a comment's `parent_id` is its nearest *public* ancestor (or null): a
        reply whose parent is held, rejected or reported is shown under that parent's nearest
        approved ancestor, or at the top level when it has none."""
        if q.view == "flat" and q.order == "oldest":
            items, cursor = self.service.approved(slug, q.limit, q.cursor)
            return self._public_parents(slug, items), cursor
        after = decode_cursor(q.cursor) if q.cursor else None
        article_id = self.service.article_id(slug)
        if q.view == "flat":
            with self.db.reading() as conn:
                rows = _approved_desc(conn, article_id, q.limit + 1, after)
            more = len(rows) > q.limit
            rows = rows[:q.limit]
            items = self._public_parents(slug, [public_view(r) for r in rows])
            return items, (encode_cursor(rows[-1]) if more and rows else None)
        return self._thread_page(article_id, q, after)

    def _thread_page(self, article_id: int, q: PageQuery,
                     after: tuple[dt.datetime, str] | None) -> tuple[list[dict[str, Any]], str | None]:
        # Threads are built from the article's whole shape (ids, parents, statuses) in two
        # queries; the API caches the pages under the article's read token.
        with self.db.reading() as conn:
            shape = conn.execute(select(Comment.id, Comment.parent_id, Comment.status)
                                 .where(Comment.article_id == article_id)).all()
            public_rows = conn.execute(select(*PUBLIC_COLUMNS).where(
                Comment.article_id == article_id, Comment.status == Status.APPROVED,
                decided())).all()
        parents = {r.id: r.parent_id for r in shape}
        public: dict[str, Any] = {r.id: r for r in public_rows}
        shown_parent = {cid: _public_ancestor(parents.get(cid), parents, public) for cid in public}
        children: dict[str, list[str]] = {}
        roots: list[Any] = []
        for cid, parent in shown_parent.items():
            if parent is None:
                roots.append(public[cid])
            else:
                children.setdefault(parent, []).append(cid)
        newest = q.order == "newest"
        roots.sort(key=_key, reverse=newest)
        if after is not None:
            roots = [r for r in roots if (_key(r) < after if newest else _key(r) > after)]
        page = roots[:q.limit]
        more = len(roots) > q.limit

        def subtree(cid: str, depth: int) -> list[dict[str, Any]]:
            view = public_view(public[cid])
            view["parent_id"] = shown_parent[cid]
            view["replies"] = []
            # Replies read as a conversation, oldest first, whatever the order of the threads.
            kids = sorted(children.get(cid, ()), key=lambda c: _key(public[c]))
            if depth < THREAD_DEPTH - 1:
                for kid in kids:
                    view["replies"].extend(subtree(kid, depth + 1))
                return [view]
            out = [view]  # at the deepest level, replies follow as siblings
            for kid in kids:
                out.extend(subtree(kid, depth))
            return out

        items = [subtree(r.id, 0)[0] for r in page]
        return items, (encode_cursor(page[-1]) if more and page else None)

    def _public_parents(self, slug: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Replace each parent that is not public by its nearest public ancestor (or null)."""
        pending = {i["parent_id"] for i in items if i.get("parent_id")}
        if not pending:
            return items
        article_id = self.service.article_id(slug)
        with self.db.reading() as conn:
            shape = conn.execute(select(Comment.id, Comment.parent_id, Comment.status)
                                 .where(Comment.article_id == article_id,
                                        Comment.parent_id.is_not(None))).all()
            listed = conn.execute(select(Comment.id, Comment.parent_id, Comment.status)
                                  .where(Comment.id.in_(pending))).all()
        parents = {r.id: r.parent_id for r in (*shape, *listed)}
        public = {r.id for r in (*shape, *listed) if r.status == Status.APPROVED}
        for item in items:
            if item.get("parent_id"):
                item["parent_id"] = _public_ancestor(item["parent_id"], parents, public)
        return items

    # -- counts -------------------------------------------------------------------------------
    def known(self, slugs: Sequence[str]) -> list[str]:
        """Which of these slugs are articles, in one query for those not seen before."""
        # Only what could be a slug is looked up (PostgreSQL refuses a NUL in any string).
        unseen = [s for s in slugs if s not in self._known and 0 < len(s) <= 200 and "\x00" not in s]
        if unseen:
            with self.db.reading() as conn:
                found = conn.execute(select(Article.slug).where(Article.slug.in_(unseen))).scalars()
                if len(self._known) > 100_000:
                    self._known.clear()
                self._known.update(found)
        return [s for s in slugs if s in self._known]

    def count(self, slug: str) -> int:
        """Approved comments of one article (404 for an unknown article)."""
        article_id = self.service.article_id(slug)
        with self.db.reading() as conn:
            return int(conn.execute(select(func.count()).select_from(Comment).where(
                Comment.article_id == article_id, Comment.status == Status.APPROVED,
                decided())).scalar_one())

    def counts(self, slugs: Sequence[str]) -> dict[str, int]:
        """Approved comments per article, in one query; an unknown slug counts 0."""
        wanted = list(dict.fromkeys(s for s in slugs if s))
        if not wanted:
            return {}
        if len(wanted) > MAX_COUNT_SLUGS:
            raise Invalid(f"At most {MAX_COUNT_SLUGS} articles per request.",
                          errors=[{"field": "articles", "message": f"more than {MAX_COUNT_SLUGS}"}])
        out = dict.fromkeys(wanted, 0)
        with self.db.reading() as conn:
            rows = conn.execute(
                select(Article.slug, func.count(Comment.id))
                .join(Comment, and_(Comment.article_id == Article.id,
                                    Comment.status == Status.APPROVED, decided()))
                .where(Article.slug.in_(wanted)).group_by(Article.slug)).all()
        for slug, n in rows:
            out[slug] = int(n)
        return out

    # -- the feed and the live stream ---------------------------------------------------------
    def article(self, slug: str) -> ArticleInfo:
        """The article's public facts (404 for an unknown one)."""
        article_id = self.service.article_id(slug)
        with self.db.reading() as conn:
            row = conn.execute(select(Article).where(Article.id == article_id)).one()
        return ArticleInfo(row.slug, row.title, row.url, row.closed_at is None)

    def newest(self, slug: str, limit: int = 50) -> list[dict[str, Any]]:
        """The newest approved comments, for the feed."""
        article_id = self.service.article_id(slug)
        with self.db.reading() as conn:
            rows = _approved_desc(conn, article_id, limit, None)
        return self._public_parents(slug, [public_view(r) for r in rows])

    def visibility(self, ids: Iterable[str]) -> dict[str, tuple[str, dict[str, Any] | None, bool]]:
        """For each known id: its article's slug, its public view if it is approved now, and
        whether it was ever public (an unpublished comment is announced only if it was)."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        with self.db.reading() as conn:
            rows: Sequence[Any] = conn.execute(
                select(*PUBLIC_COLUMNS, Comment.status, Article.slug)
                .join(Article, Article.id == Comment.article_id)
                .where(Comment.id.in_(wanted))).all()
            was_public = set(conn.execute(
                select(Decision.comment_id).where(Decision.comment_id.in_(wanted),
                                                  Decision.from_status == Status.APPROVED)
                .distinct()).scalars())
            parents = {r.parent_id for r in rows if r.parent_id}
            public_parents = set(conn.execute(
                select(Comment.id).where(Comment.id.in_(parents),
                                         Comment.status == Status.APPROVED)).scalars()) if parents else set()
        out: dict[str, tuple[str, dict[str, Any] | None, bool]] = {}
        for r in rows:
            approved = r.status == Status.APPROVED
            view = public_view(r) if approved else None
            if view is not None and view["parent_id"] not in public_parents:
                view["parent_id"] = None  # its parent is not public: shown at the top level
            out[r.id] = (r.slug, view, approved or r.id in was_public)
        return out


def _key(row: Any) -> tuple[dt.datetime, str]:
    at = row.created_at
    if at.tzinfo is None:  # SQLite's naive datetimes were stored as UTC
        at = at.replace(tzinfo=dt.UTC)
    return at, row.id


def _public_ancestor(parent: str | None, parents: dict[str, str | None],
                     public: Any) -> str | None:
    seen = 0
    while parent is not None and parent not in public and seen < _MAX_CHAIN:
        parent = parents.get(parent)
        seen += 1
    return parent if parent in public else None


def _approved_desc(conn: Connection, article_id: int, limit: int,
                   before: tuple[dt.datetime, str] | None) -> Sequence[Any]:
    q = select(*PUBLIC_COLUMNS).where(Comment.article_id == article_id,
                                      Comment.status == Status.APPROVED, decided())
    if before is not None:
        at, cid = before
        q = q.where(or_(Comment.created_at < at, and_(Comment.created_at == at, Comment.id < cid)))
    return conn.execute(q.order_by(Comment.created_at.desc(), Comment.id.desc()).limit(limit)).all()
