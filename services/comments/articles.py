"""Articles as sites manage them: title, public URL, open or closed for comments."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import select

from ..db import Database
from .errors import Conflict, NotFound
from .models import Article, utcnow

# A process trusts what it read about an article being open for this long: closing an
# article reaches every API process within it, without a read on every post.
OPEN_TTL = 5.0


@dataclass(frozen=True, slots=True)
class ArticleUpdate:
    title: str
    url: str | None = None
    open: bool = True


@dataclass(frozen=True, slots=True)
class ArticleView:
    slug: str
    title: str
    url: str | None
    open: bool


class Articles:
    def __init__(self, db: Database, open_ttl: float = OPEN_TTL) -> None:
        self.db = db
        self.open_ttl = open_ttl
        self._open: dict[str, tuple[bool, float]] = {}

    def put(self, slug: str, update: ArticleUpdate) -> tuple[ArticleView, bool]:
        """Create or update an article; returns it and whether it was created."""
        with self.db.session() as s:
            art = s.scalars(select(Article).where(Article.slug == slug)).first()
            created = art is None
            if art is None:
                art = Article(slug=slug, title=update.title)
                s.add(art)
            art.title = update.title
            art.url = update.url
            if update.open:
                art.closed_at = None
            elif art.closed_at is None:
                art.closed_at = utcnow()
            s.flush()
            view = ArticleView(art.slug, art.title, art.url, art.closed_at is None)
        self._open[slug] = (view.open, time.monotonic() + self.open_ttl)
        return view, created

    def get(self, slug: str) -> ArticleView:
        with self.db.session() as s:
            art = s.scalars(select(Article).where(Article.slug == slug)).first()
            if art is None:
                raise NotFound(f"No article with slug '{slug}'.")
            return ArticleView(art.slug, art.title, art.url, art.closed_at is None)

    def ensure_open(self, slug: str) -> None:
        """Raise Conflict when the article takes no more comments (unknown slugs pass: the
        post itself answers 404 for them)."""
        now = time.monotonic()
        known = self._open.get(slug)
        if known is None or known[1] <= now:
            with self.db.reading() as conn:
                closed = conn.execute(select(Article.closed_at).where(Article.slug == slug)).first()
            is_open = closed is None or closed[0] is None
            if len(self._open) > 10000:
                self._open.clear()
            self._open[slug] = known = (is_open, now + self.open_ttl)
        if not known[0]:
            raise Conflict("Comments are closed on this article.",
                           errors=[{"field": "slug", "message": "closed for comments"}])
