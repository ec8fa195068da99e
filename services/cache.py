"""The public read cache: pages of approved comments in Redis, dropped when a decision changes
what readers of an article may see.

Each article has a random "generation" token in Redis. Pages are cached under it and ETags are
derived from it, so a conditional GET is answered from one Redis read. Any event that changes
the approved set replaces the token: old pages and ETags become unreachable at once, on every
API process. A token lost with a Redis restart is simply replaced by a new one.

An API process keeps the tokens it read. A replaced token is announced on a Redis channel, and
a thread in each API process that reads drops its copy when it hears of it; while that thread
is not subscribed (starting, Redis away), a kept token is trusted for 10 ms only.

A replacement that fails (Redis blinked while a decision was published) is not forgotten: the
process drops its own copies of the article, and replaces the token before it serves that
article again or with its next publish; until then it reads the database. Pages kept in
memory live LOCAL_PAGE_TTL seconds, so no process serves one for long after a change.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import redis

from .events import (
    CHANNEL,
    LUA_PUBLISH_EVENTS,
    MAXLEN,
    STREAM,
    Event,
    Publisher,
    RedisPublisher,
    encode_events,
    publish_many,
)
from .scripts import LuaScripts

log = logging.getLogger("triage.cache")

# Events after which readers of the article may see something different.
VISIBILITY_EVENTS = {"comment.published", "comment.rejected", "comment.reported", "comment.held"}
PAGE_TTL = 300
# A process not (yet) hearing of replaced tokens trusts the one it last read for this long. A
# Redis round trip costs more than serving a cached page; 10 ms of possible staleness after a
# decision is invisible to readers and keeps the cost to at most 100 token reads a second per
# process and article.
TOKEN_TTL = 0.010
# How long a kept token is trusted while this process hears of replacements: only a lost
# announcement (a dropped connection, before the thread notices) could leave it stale.
HEARD_TOKEN_TTL = 1.0
# How long this process serves a page from its own memory before asking Redis again: bounds
# how long a page can outlive a token replacement this process did not hear of.
LOCAL_PAGE_TTL = 5.0
CHANGED_CHANNEL = "triage:gen:changed"

# New read tokens, announced, then events published, in one call. KEYS: the event stream.
# ARGV: the stream's length, the event channel, the token channel, the number n of articles,
# n (token key, new token, slug) triples, then the events (JSON). Tokens first: a widget told
# of an event then reads the new page. As one script, a worker's batch of 250 costs it about
# 1 ms of CPU where pipelined commands (two per event) cost about 4.
REPLACE = LUA_PUBLISH_EVENTS + """
local n = tonumber(ARGV[4])
for i = 0, n - 1 do
  local b = 5 + 3 * i
  redis.call('SET', ARGV[b], ARGV[b + 1])
  redis.call('PUBLISH', ARGV[3], ARGV[b + 2])
end
publish_events(KEYS[1], ARGV[1], ARGV[2], 5 + 3 * n)
return n
"""


_LISTENER_START = threading.Lock()


class ReadCache:
    def __init__(self, redis_url: str, token_ttl: float = TOKEN_TTL,
                 heard_token_ttl: float = HEARD_TOKEN_TTL) -> None:
        self.redis_url = redis_url
        self.client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
        self.token_ttl = token_ttl
        self.heard_token_ttl = heard_token_ttl
        self._tokens: dict[str, tuple[str, float]] = {}
        # Bumped for every announcement heard: a token read while one arrived is not kept.
        self._heard = 0
        self._listening = False
        self._listener_pid = 0
        self._pages: dict[tuple[str, str, int, str | None], tuple[bytes, float]] = {}
        # Articles whose token replacement failed (Redis blinked during a decision): their
        # token is replaced before this process serves them again, or it serves them uncached.
        self._dirty: set[str] = set()
        self._etags: dict[tuple[str, int, str | None], str] = {}
        self._scripts = LuaScripts(self.client, {"replace": REPLACE})

    def _gen_key(self, slug: str) -> str:
        return f"triage:gen:{slug}"

    def generation(self, slug: str) -> str:
        """The article's current token (created if Redis has none)."""
        if self._listener_pid != os.getpid():
            self._start_listener()
        if slug in self._dirty:
            self.invalidate_many([slug])  # raises while Redis is away: the caller reads the database
        now = time.monotonic()
        known = self._tokens.get(slug)
        if known is not None and known[1] > now:
            return known[0]
        heard, listening = self._heard, self._listening
        token = self._read_generation(slug)
        if self._heard == heard:  # no replacement announced meanwhile
            self._tokens[slug] = (token, now + (self.heard_token_ttl if listening else self.token_ttl))
            # The listener may have run between the check and the store: announced since the
            # read, the token may be stale, and the listener's own drop came too early.
            if self._heard != heard:
                self._tokens.pop(slug, None)
        return token

    def _read_generation(self, slug: str) -> str:
        key = self._gen_key(slug)
        token = self.client.get(key)
        if token is None:
            self.client.set(key, uuid.uuid4().hex, nx=True)
            token = self.client.get(key)
        return token.decode() if isinstance(token, bytes) else str(token)

    def etag(self, token: str, limit: int, cursor: str | None) -> str:
        known = self._etags.get((token, limit, cursor))
        if known is not None:
            return known
        digest = hashlib.sha1(f"{token}|{limit}|{cursor or ''}".encode()).hexdigest()[:20]
        if len(self._etags) > 1000:  # bounded, as the pages are
            self._etags.clear()
        tag = self._etags[(token, limit, cursor)] = f'W/"{digest}"'
        return tag

    def get_page(self, slug: str, token: str, limit: int, cursor: str | None) -> bytes | None:
        # Pages under a token never change, so a copy in this process is as good as Redis's.
        local = self._pages.get((slug, token, limit, cursor))
        if local is not None and local[1] > time.monotonic():
            return local[0]
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
        self._pages[(slug, token, limit, cursor)] = (body, time.monotonic() + LOCAL_PAGE_TTL)

    def _forget(self, slugs: Iterable[str]) -> None:
        """Drop this process's tokens and pages of these articles."""
        slugs = set(slugs)
        for slug in slugs:
            self._tokens.pop(slug, None)
        for key in [k for k in self._pages if k[0] in slugs]:
            self._pages.pop(key, None)

    @staticmethod
    def _page_key(slug: str, token: str, limit: int, cursor: str | None) -> str:
        return f"triage:page:{slug}:{token}:{limit}:{cursor or ''}"

    def invalidate(self, slug: str) -> None:
        self.invalidate_many([slug])

    def invalidate_many(self, slugs: Iterable[str], events: Sequence[Event] = (),
                        maxlen: int = MAXLEN) -> None:
        """New tokens for these articles, announced, then `events` published to the event
        stream and channel (see RedisPublisher), all in one round trip."""
        # Replacements that failed earlier are retried with this one.
        slugs = sorted(set(slugs) | self._dirty)
        if not slugs and not events:
            return
        args: list[Any] = [maxlen, CHANNEL, CHANGED_CHANNEL, len(slugs)]
        for slug in slugs:
            args += [self._gen_key(slug), uuid.uuid4().hex, slug]
        args += encode_events(events)
        try:
            self._scripts.call("replace", 1, STREAM, *args)
        except Exception:
            # The decision is committed but the old token lives on in Redis: never serve these
            # articles from a kept copy until a replacement gets through.
            self._dirty.update(slugs)
            self._forget(slugs)
            raise
        self._dirty.difference_update(slugs)
        self._forget(slugs)

    def _start_listener(self) -> None:
        pid = os.getpid()
        with _LISTENER_START:
            if self._listener_pid == pid:
                return
            # A forked child inherits no thread, and its parent's tokens may be stale to it.
            self._tokens.clear()
            self._listening = False
            threading.Thread(target=self._listen, name="triage-read-cache", daemon=True).start()
            self._listener_pid = pid

    def _listen(self) -> None:
        """Drop kept tokens as their replacements are announced; reconnect when Redis is away."""
        client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=2,
                                      health_check_interval=30)
        delay = 0.1
        while True:
            pubsub = client.pubsub()
            try:
                pubsub.subscribe(CHANGED_CHANNEL)
                while True:
                    message = pubsub.get_message(timeout=5.0)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        # Anything announced before now was missed: start afresh.
                        self._heard += 1
                        self._tokens.clear()
                        self._listening = True
                        delay = 0.1
                    elif message["type"] == "message":
                        data = message["data"]
                        slug = data.decode() if isinstance(data, bytes) else str(data)
                        self._heard += 1
                        self._tokens.pop(slug, None)
            except Exception as exc:  # noqa: BLE001 - a listener must outlive Redis restarts
                was = self._listening
                self._listening = False
                self._heard += 1
                self._tokens.clear()
                if was:
                    log.warning("read cache stopped hearing token changes; kept tokens live 10 ms "
                                "until it hears again", extra={"error": str(exc)})
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                try:
                    pubsub.close()
                except Exception:  # noqa: BLE001 - already broken
                    pass


class InvalidatingPublisher:
    """Passes events on and drops an article's cached pages when its visible set changes."""

    def __init__(self, inner: Publisher | None, cache: ReadCache) -> None:
        self.inner = inner
        self.cache = cache

    def publish(self, kind: str, payload: dict[str, Any]) -> None:
        self.publish_many([(kind, payload)])

    def publish_many(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        slugs = {str(p["article"]) for k, p in events if k in VISIBILITY_EVENTS and p.get("article")}
        inner = self.inner
        if isinstance(inner, RedisPublisher) and inner.redis_url == self.cache.redis_url:
            # New tokens and the events in one round trip (a worker publishes after every
            # batch, and the round trip is most of what publishing costs for a lone comment).
            self.cache.invalidate_many(slugs, events, inner.maxlen)
            return
        self.cache.invalidate_many(slugs)  # also retries replacements that failed before
        if inner is not None:
            publish_many(inner, events)
