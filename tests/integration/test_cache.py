"""The public read cache's tokens: kept by each API process, dropped when a change is heard."""

from __future__ import annotations

import signal
import uuid

import pytest

from services.cache import ReadCache
from tests.conftest import REDIS_URL, free_port, wait_for
from tests.integration.test_faults import _redis_server

pytestmark = pytest.mark.integration


def test_a_replaced_token_is_heard_by_a_reading_process_at_once() -> None:
    slug = f"cache-{uuid.uuid4().hex[:8]}"
    # Kept tokens trusted for a minute: only the announcement can make the reader look again.
    reader = ReadCache(REDIS_URL, heard_token_ttl=60)
    writer = ReadCache(REDIS_URL)  # the worker, recording a decision
    first = reader.generation(slug)
    wait_for(lambda: reader._listening, timeout=5, interval=0.01)
    kept = reader.generation(slug)
    assert kept == first  # nothing changed it
    writer.invalidate(slug)
    replaced = wait_for(lambda: (t := reader.generation(slug)) != kept and t, timeout=2, interval=0.01)
    assert replaced == writer.generation(slug)


def test_after_a_redis_restart_the_reader_hears_changes_again() -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = _redis_server(port)
    try:
        slug = "cache-restart"
        reader = ReadCache(url, heard_token_ttl=60)
        before = reader.generation(slug)
        wait_for(lambda: reader._listening, timeout=5, interval=0.01)
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        server = _redis_server(port)  # back, and empty
        writer = ReadCache(url)
        # The reader reconnects, forgets what it kept, and follows the new tokens.
        wait_for(lambda: reader._listening and reader.generation(slug) != before, timeout=20,
                 interval=0.05)
        current = reader.generation(slug)
        writer.invalidate(slug)
        wait_for(lambda: reader.generation(slug) != current, timeout=2, interval=0.01)
    finally:
        server.kill()
        server.wait(10)


def test_a_decision_replaces_the_token_and_publishes_its_events_in_one_round_trip() -> None:
    import json

    import redis

    from services.cache import InvalidatingPublisher
    from services.events import CHANNEL, STREAM, RedisPublisher

    slug = f"cache-{uuid.uuid4().hex[:8]}"
    r = redis.Redis.from_url(REDIS_URL)
    cache = ReadCache(REDIS_URL)
    before = cache.generation(slug)
    live = r.pubsub()
    live.subscribe(CHANNEL)
    wait_for(lambda: live.get_message(timeout=0.1) is not None, timeout=5)
    inner = RedisPublisher(REDIS_URL)
    r.script_flush()  # a Redis that forgot the script (a restart) is given it again
    publisher = InvalidatingPublisher(inner, cache)
    for forgotten in (True, False):
        before = cache.generation(slug)
        calls: list[str] = []  # round trips: commands sent alone, and pipelines
        for client in (cache.client, inner.client):
            real_pipe, real_cmd = client.pipeline, client.execute_command
            client.pipeline = (  # type: ignore[method-assign]
                lambda *a, _real=real_pipe, _calls=calls, **k: _calls.append("pipeline") or _real(*a, **k))
            client.execute_command = (  # type: ignore[method-assign]
                lambda *a, _real=real_cmd, _calls=calls, **k: _calls.append(str(a[0])) or _real(*a, **k))
        last = r.xrevrange(STREAM, count=1)
        publisher.publish_many(
            [("comment.published", {"id": "c1", "article": slug}), ("comment.note", {"id": "c1"})])
        for client in (cache.client, inner.client):
            del client.pipeline, client.execute_command
        # One round trip; after SCRIPT FLUSH, the refused call, the load and the call again.
        assert calls == (["EVALSHA", "SCRIPT LOAD", "EVALSHA"] if forgotten else ["EVALSHA"])
        assert cache.generation(slug) != before
        newest = r.xrevrange(STREAM, count=2)
        assert [json.loads(e[b"event"])["type"] for _, e in reversed(newest)] == [
            "comment.published", "comment.note"] and newest != last
        heard = wait_for(lambda: live.get_message(timeout=0.1), timeout=5)
        assert json.loads(heard["data"])["type"] == "comment.published"
        assert json.loads(wait_for(lambda: live.get_message(timeout=0.1), timeout=5)["data"])[
            "type"] == "comment.note"


def test_a_token_announced_as_replaced_while_being_kept_is_not_kept() -> None:
    import os

    slug = f"cache-{uuid.uuid4().hex[:8]}"
    cache = ReadCache(REDIS_URL, heard_token_ttl=60)
    cache._listener_pid = os.getpid()  # no listener thread: the test plays it

    class ListenerRunsJustBeforeTheStore(dict):
        def __setitem__(self, key, value):  # type: ignore[no-untyped-def]
            cache._heard += 1  # a replacement is heard...
            self.pop(key, None)  # ...and the listener drops a token not yet stored
            super().__setitem__(key, value)

    cache._tokens = ListenerRunsJustBeforeTheStore()
    cache.generation(slug)
    assert slug not in cache._tokens


def test_a_removed_comment_leaves_the_public_page_even_when_the_invalidation_call_fails(app, service) -> None:
    """One failed Redis call during a decision must not leave the old page cached: the process
    forgets its copies and replaces the token before it serves the article again."""
    import json

    from redis.exceptions import ConnectionError as RedisConnectionError

    from tests.conftest import DEMO
    from tests.verdicts import verdict

    url = f"/v1/articles/{DEMO}/comments"
    client = app.test_client()
    mod = app.extensions["triage.moderation"]
    cache = app.extensions["triage.read_cache"]
    cid = client.post(url, data=json.dumps({"author": "A", "body": "to be removed"}),
                      content_type="application/json").get_json()["id"]
    assert service.record_engine_decision(cid, verdict("publish", "normal", [], published_body="to be removed"))
    assert cid in {i["id"] for i in client.get(url).get_json()["items"]}  # cached now
    real = cache._scripts.call
    calls = {"n": 0}

    def fail_once(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise RedisConnectionError("connection reset")
        return real(*args, **kwargs)

    cache._scripts.call = fail_once
    version = mod.detail(cid)["version"]
    mod.decide(cid, "reject", "Ana", version, "spam")
    assert calls["n"] == 1
    assert cid not in {i["id"] for i in client.get(url).get_json()["items"]}
    # Another process reading the same Redis sees the new token too, not the old page.
    other = ReadCache(REDIS_URL)
    assert other.generation(DEMO) == cache.generation(DEMO)
