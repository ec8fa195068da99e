"""The public read cache: pages of approved comments in Redis, dropped when a decision changes
what readers of an article may see.

Each article has a random "generation" token in Redis. Pages are cached under it and ETags are
derived from it, so a conditional GET is answered from one Redis read. Any event that changes
the approved set replaces the token: old pages and ETags become unreachable at once, on every
API process. A token lost with a Redis restart is simply replaced by a new one.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from typing import Any

import redis

from .events import Publisher, publish_many

log = logging.getLogger("triage.cache")

# Events after which readers of the article may see something different.
VISIBILITY_EVENTS = {"comment.published", "comment.rejected", "comment.reported", "comment.held"}
PAGE_TTL = 300
# A process trusts the token it last read for this long. A Redis round trip costs more than
# serving a cached page; 10 ms of possible staleness after a decision is invisible to readers
# and keeps the cost to at most 100 token reads a second per process and article.
TOKEN_TTL = 0.010


class ReadCache:
    def __init__(self, redis_url: str, token_ttl: float = TOKEN_TTL) -> None:
        self.client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
        self.token_ttl = token_ttl
        self._tokens: dict[str, tuple[str, float]] = {}
        self._pages: dict[tuple[str, str, int, str | None], bytes] = {}

    def _gen_key(self, slug: str) -> str:
        return f"triage:gen:{slug}"

    def generation(self, slug: str) -> str:
        """The article's current token (created if Redis has none)."""
        now = time.monotonic()
        known = self._tokens.get(slug)
        if known is not None and known[1] > now:
            return known[0]
        token = self._read_generation(slug)
        self._tokens[slug] = (token, now + self.token_ttl)
        return token

    def _read_generation(self, slug: str) -> str:
        key = self._gen_key(slug)
        token = self.client.get(key)
        if token is None:
            self.client.set(key, uuid.uuid4().hex, nx=True)
            token = self.client.get(key)
        return token.decode() if isinstance(token, bytes) else str(token)

    @staticmethod
    def etag(token: str, limit: int, cursor: str | None) -> str:
        digest = hashlib.sha1(f"{token}|{limit}|{cursor or ''}".encode()).hexdigest()[:20]
        return f'W/"{digest}"'

    def get_page(self, slug: str, token: str, limit: int, cursor: str | None) -> bytes | None:
        # Pages under a token never change, so a copy in this process is as good as Redis's.
        local = self._pages.get((slug, token, limit, cursor))
        if local is not None:
            return local
        body = self.client.get(self._page_key(slug, token, limit, cursor))
        if body is not None:
            self._remember(slug, token, limit, cursor, body)  # type: ignore[arg-type]
        return body  # type: ignore[return-value]

    def put_page(self, slug: str, token: str, limit: int, cursor: str | None, body: bytes) -> None:
        self.client.set(self._page_key(slug, token, limit, cursor), body, ex=PAGE_TTL)
        self._remember(slug, token, limit, cursor, body)

    def _remember(self, slug: str, token: str, limit: int, cursor: str | None, body: bytes) -> None:
        if len(self._pages) > 1000:  # bounded: old tokens' pages are unreachable anyway
            self._pages.clear()
        self._pages[(slug, token, limit, cursor)] = body

    @staticmethod
    def _page_key(slug: str, token: str, limit: int, cursor: str | None) -> str:
        return f"triage:page:{slug}:{token}:{limit}:{cursor or ''}"

    def invalidate(self, slug: str) -> None:
        self.client.set(self._gen_key(slug), uuid.uuid4().hex)
        self._tokens.pop(slug, None)


class InvalidatingPublisher:
    """Passes events on and drops an article's cached pages when its visible set changes."""

    def __init__(self, inner: Publisher | None, cache: ReadCache) -> None:
        self.inner = inner
        self.cache = cache

    def publish(self, kind: str, payload: dict[str, Any]) -> None:
        self.publish_many([(kind, payload)])

    def publish_many(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        for slug in {str(p["article"]) for k, p in events if k in VISIBILITY_EVENTS and p.get("article")}:
            self.cache.invalidate(slug)
        if self.inner is not None:
            publish_many(self.inner, events)
