"""`triage streams` as a real uvicorn process on a real Redis: decisions reach open streams as
Server-Sent Events, a reconnect with Last-Event-ID gets what it missed, streams beat and end,
CORS answers allowed origins only, and nothing private goes out."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import pytest
import requests

from services.cache import InvalidatingPublisher, ReadCache
from services.comments.moderation import ModerationService
from services.comments.service import CommentService, NewComment
from services.db import Database
from services.events import RedisPublisher
from tests.conftest import DEMO, free_port, wait_for, wait_port

SITE = "https://news.example"


@dataclass
class Stream:
    """A Server-Sent Events reader in a thread: every event and comment line it got."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    events: list[dict[str, str]] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    ended: threading.Event = field(default_factory=threading.Event)
    response: requests.Response | None = None

    def start(self) -> Stream:
        self.response = requests.get(self.url, headers=self.headers, stream=True, timeout=(3, 30))
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        assert self.response is not None
        current: dict[str, str] = {}
        try:
            for raw in self.response.iter_lines(decode_unicode=True):
                if raw == "":
                    if "event" in current or "data" in current:
                        self.events.append(current)
                    current = {}
                elif raw.startswith(":"):
                    self.comments.append(raw[1:].strip())
                else:
                    name, _, value = raw.partition(":")
                    current[name] = value[1:] if value.startswith(" ") else value
        except (requests.RequestException, AttributeError, ValueError):
            pass
        finally:
            self.ended.set()

    def of(self, kind: str) -> list[dict[str, str]]:
        return [e for e in self.events if e.get("event") == kind]

    def close(self) -> None:
        if self.response is not None:
            self.response.close()


@pytest.fixture
def live(queue_settings, service, process_factory) -> Iterator[tuple[str, CommentService, ModerationService]]:  # type: ignore[no-untyped-def]
    port = free_port()
    settings = replace(queue_settings, allowed_origins=SITE)
    process_factory(settings, "streams", env={
        "STREAM_PORT": str(port), "STREAM_HEARTBEAT": "1", "STREAM_LIFETIME": "4",
        "ALLOWED_ORIGINS": SITE})
    wait_port(port)
    db = Database(settings.database_url)
    # Decisions publish as the API and workers do: to the Redis stream, with the read cache.
    svc = CommentService(db, salt=settings.author_salt, publisher=InvalidatingPublisher(
        RedisPublisher(settings.redis_url), ReadCache(settings.redis_url)))
    yield f"http://127.0.0.1:{port}", svc, ModerationService(svc)
    db.dispose()


def submit(svc: CommentService, body: str, **kw: str) -> str:
    accepted, _ = svc.submit(DEMO, NewComment(author=kw.get("author", "Reader"), body=body,
                                              email=kw.get("email"), parent_id=kw.get("parent")),
                             ip="203.0.113.9")
    return accepted.id


def open_streams(base: str) -> int:
    return int(requests.get(base + "/healthz", timeout=5).json()["open_streams"])


def test_a_decision_reaches_open_streams_and_nothing_private_goes_out(live):  # type: ignore[no-untyped-def]
    base, svc, mod = live
    url = f"{base}/v1/articles/{DEMO}/events"
    streams = [Stream(url).start() for _ in range(3)]
    other = Stream(f"{base}/v1/articles/another-article/events").start()
    wait_for(lambda: open_streams(base) == 4, timeout=10)
    cid = submit(svc, "Thank you for this careful piece.", author="Maya", email="maya@example.org")
    never = submit(svc, "held before anyone saw it")
    mod.decide(never, "hold", actor="Ana", version=None)
    mod.decide(cid, "approve", actor="Ana", version=None)
    for s in streams:
        wait_for(lambda s=s: s.of("published"), timeout=5)
        event = s.of("published")[0]
        assert json.loads(event["data"]) == {
            "id": cid, "author": "Maya", "body": "Thank you for this careful piece.",
            "created_at": json.loads(event["data"])["created_at"], "parent_id": None}
        assert event["id"]
    mod.decide(cid, "reject", actor="Ana", version=None, reason="spam")
    for s in streams:
        wait_for(lambda s=s: s.of("unpublished"), timeout=5)
        assert json.loads(s.of("unpublished")[0]["data"]) == {"id": cid}
        text = json.dumps(s.events)
        for secret in ("maya@example.org", "203.0.113.9", never, "held before", "author_ref",
                       "categories", "priority"):
            assert secret not in text
    assert other.events == []
    for s in (*streams, other):
        s.close()
    wait_for(lambda: open_streams(base) == 0, timeout=10)


def test_reconnect_with_last_event_id_gets_what_it_missed(live):  # type: ignore[no-untyped-def]
    base, svc, mod = live
    url = f"{base}/v1/articles/{DEMO}/events"
    first = Stream(url).start()
    wait_for(lambda: open_streams(base) == 1, timeout=10)
    a = submit(svc, "the first comment")
    mod.decide(a, "approve", actor="Ana", version=None)
    wait_for(lambda: first.of("published"), timeout=5)
    last_id = first.of("published")[-1]["id"]
    first.close()
    wait_for(lambda: open_streams(base) == 0, timeout=10)
    missed = [submit(svc, f"missed comment {i}") for i in range(3)]
    for cid in missed:
        mod.decide(cid, "approve", actor="Ana", version=None)
    mod.decide(missed[1], "reject", actor="Ana", version=None)
    again = Stream(url, {"Last-Event-ID": last_id}).start()
    wait_for(lambda: len(again.events) >= 3, timeout=5)
    kinds = [(e["event"], json.loads(e["data"])["id"]) for e in again.events]
    # missed[1] was rejected before the replay read it: its publication is not replayed, and
    # its unpublication is harmless to a page that never showed it.
    assert kinds == [("published", missed[0]), ("published", missed[2]), ("unpublished", missed[1])]
    # Live events keep coming after the replay, once each.
    b = submit(svc, "after the reconnect")
    mod.decide(b, "approve", actor="Ana", version=None)
    wait_for(lambda: any(json.loads(e["data"]).get("id") == b for e in again.of("published")), timeout=5)
    ids = [e["id"] for e in again.events]
    assert len(ids) == len(set(ids))
    again.close()
    # The same through the query string (a page that reconnects by itself), and a reset when
    # the stream no longer reaches back to the id asked for.
    q = Stream(f"{url}?last_event_id={last_id}").start()
    wait_for(lambda: len(q.of("published")) >= 2, timeout=5)
    q.close()
    old = Stream(url, {"Last-Event-ID": "1-0"}).start()
    wait_for(lambda: old.events, timeout=5)
    assert old.events[0]["event"] == "reset"
    old.close()
    bad = requests.get(url, headers={"Last-Event-ID": "<script>"}, timeout=5)
    assert bad.status_code == 422 and bad.headers["Content-Type"] == "application/problem+json"


def test_streams_beat_and_end_and_cors_is_for_allowed_origins(live):  # type: ignore[no-untyped-def]
    base, _svc, _mod = live
    url = f"{base}/v1/articles/{DEMO}/events"
    s = Stream(url).start()
    assert s.response is not None and s.response.headers["Content-Type"].startswith("text/event-stream")
    assert s.ended.wait(10), "the stream did not end within its lifetime"
    assert sum(1 for c in s.comments if c.startswith("ping")) >= 2
    ok = requests.get(url, headers={"Origin": SITE}, stream=True, timeout=5)
    assert ok.headers["Access-Control-Allow-Origin"] == SITE
    ok.close()
    refused = requests.get(url, headers={"Origin": "https://evil.example"}, stream=True, timeout=5)
    assert "Access-Control-Allow-Origin" not in refused.headers
    refused.close()
    pre = requests.options(url, headers={"Origin": SITE, "Access-Control-Request-Method": "GET",
                                         "Access-Control-Request-Headers": "last-event-id"}, timeout=5)
    assert pre.status_code == 200 and pre.headers["Access-Control-Allow-Origin"] == SITE
