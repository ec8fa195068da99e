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
import uuid
from typing import Any

import redis

from .events import Publisher, publish_many

log = logging.getLogger("triage.cache")

# Events after which readers of the article may see something different.
VISIBILITY_EVENTS = {"comment.published", "comment.rejected", "comment.reported", "comment.held"}
PAGE_TTL = 300


class ReadCache:
    def __init__(self, redis_url: str) -> None:
        self.client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)

    def _gen_key(self, slug: str) -> str:
        return f"triage:gen:{slug}"

    def generation(self, slug: str) -> str:
        """The article's current token (created if Redis has none)."""
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
        return self.client.get(self._page_key(slug, token, limit, cursor))  # type: ignore[return-value]

    def put_page(self, slug: str, token: str, limit: int, cursor: str | None, body: bytes) -> None:
        self.client.set(self._page_key(slug, token, limit, cursor), body, ex=PAGE_TTL)

    @staticmethod
    def _page_key(slug: str, token: str, limit: int, cursor: str | None) -> str:
        return f"triage:page:{slug}:{token}:{limit}:{cursor or ''}"

    def invalidate(self, slug: str) -> None:
        self.client.set(self._gen_key(slug), uuid.uuid4().hex)


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
