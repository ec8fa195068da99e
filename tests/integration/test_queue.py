"""The whole path on real parts: HTTP → database → Redis → a real Celery worker process."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import DEMO, wait_for

URL = f"/v1/articles/{DEMO}/comments"
pytestmark = pytest.mark.integration


def post(client, author, body):  # type: ignore[no-untyped-def]
    resp = client.post(URL, data=json.dumps({"author": author, "body": body}),
                       content_type="application/json")
    assert resp.status_code == 202
    return resp.get_json()["id"]


def visible(client):  # type: ignore[no-untyped-def]
    return {i["id"]: i for i in client.get(f"{URL}?limit=100").get_json()["items"]}


def test_clean_comment_becomes_visible(live_client, worker_factory):
    worker_factory()
    cid = post(live_client, "Maya", "Thank you, this was a careful and hopeful article.")
    item = wait_for(lambda: visible(live_client).get(cid), timeout=60)
    assert item["body"] == "Thank you, this was a careful and hopeful article."
    status = live_client.get(f"/v1/comments/{cid}").get_json()
    assert status["status"] == "approved" and status["decided_at"]


def test_profanity_is_never_visible_uncensored(live_client, worker_factory):
    worker_factory()
    profane = post(live_client, "Luis", "The fucking price though, $750 a session.")
    clean = post(live_client, "Ana", "Posted after the profane one, so it is decided after it.")
    wait_for(lambda: live_client.get(f"/v1/comments/{clean}").get_json()["status"] != "pending"
             and live_client.get(f"/v1/comments/{profane}").get_json()["status"] != "pending", timeout=60)
    shown = visible(live_client).get(profane)
    if shown is not None:
        assert "fucking" not in shown["body"].lower()
        assert "price" in shown["body"]


def test_killed_worker_comments_are_finished_by_a_new_worker(live_client, live_service, worker_factory,
                                                            process_factory, queue_settings):
    from dataclasses import replace

    ids = [post(live_client, f"reader{i}", f"Comment number {i} about the esketamine spray.")
           for i in range(40)]
    # Beat's sweeper is part of the promise: it re-sends what a dying worker may have dropped.
    cfg = replace(queue_settings, sweep_interval=2, sweep_grace=15)
    process_factory(cfg, "beat")
    first = worker_factory(concurrency=1, settings=cfg)
    # Let it take some of the queue, then kill it hard, mid-stream.
    wait_for(lambda: sum(live_service.get(c)[0].status != "pending" for c in ids) >= 1, timeout=60,
             interval=0.02)
    first.kill()
    worker_factory(concurrency=2, settings=cfg)
    wait_for(lambda: all(live_service.get(c)[0].status != "pending" for c in ids), timeout=90)
    for cid in ids:
        comment, _, last = live_service.get(cid)
        assert last is not None and last.actor == "engine"
        # Decided exactly once: one decision, so the version moved from 1 to 2.
        assert comment.version == 2


def test_sweeper_resends_comments_whose_message_was_lost(live_client, live_service, worker_factory,
                                                         queue_settings):
    import redis

    ids = [post(live_client, "A", f"lost message {i}") for i in range(5)]
    redis.Redis.from_url(queue_settings.redis_url).delete(queue_settings.queue_name)  # messages lost
    time.sleep(0.05)
    assert live_service.redispatch(live_service.stale_pending(older_than_seconds=0)) == 5
    worker_factory()
    wait_for(lambda: all(live_service.get(c)[0].status != "pending" for c in ids), timeout=60)


def test_list_changes_reach_a_running_worker_without_restart(live_client, live_service, worker_factory):
    from services.comments.moderation import ModerationService

    mod = ModerationService(live_service)
    worker_factory()
    first = post(live_client, "Ana", "Has anyone tried the zebrafoam protocol for depression?")
    wait_for(lambda: live_service.get(first)[0].status != "pending", timeout=60)
    assert live_service.get(first)[0].status == "approved"
    mod.put_list("blocked_terms", ["zebrafoam"], actor="test")
    changed = time.monotonic()
    # Any comment posted 5 s after the change is judged with the new list.
    time.sleep(max(0.0, 5.5 - (time.monotonic() - changed)))
    second = post(live_client, "Ben", "The zebrafoam protocol cured me, try it.")
    wait_for(lambda: live_service.get(second)[0].status != "pending", timeout=60)
    comment, _, last = live_service.get(second)
    assert comment.status == "rejected"
    assert any(f["rule"] == "lists.blocked_term" for f in comment.findings)


def test_banned_author_is_held_with_reason_banned(live_client, live_service, worker_factory):
    from services.comments.moderation import ModerationService

    mod = ModerationService(live_service)
    worker_factory()
    resp = live_client.post(URL, json={"author": "Troll", "body": "First, harmless.", "email": "t@x.org"})
    cid = resp.get_json()["id"]
    wait_for(lambda: live_service.get(cid)[0].status != "pending", timeout=60)
    ref = live_service.get(cid)[0].author_ref
    mod.ban(ref, actor="Ana", until=None, reason="abuse")
    resp = live_client.post(URL, json={"author": "Troll", "body": "A perfectly polite remark.",
                                       "email": "t@x.org"})
    second = resp.get_json()["id"]
    wait_for(lambda: live_service.get(second)[0].status != "pending", timeout=60)
    comment, _, last = live_service.get(second)
    assert comment.status == "held" and last.reason == "banned" and "banned" in comment.categories


def test_waiting_comments_are_packed_into_shared_batches_and_each_decided_once(
        live_service, worker_factory, queue_settings):
    import base64

    import redis

    from services.comments.shapes import NewComment
    from services.queue.protocol import MAX_IDS, MODERATE_TASK, claimed_ttl

    r = redis.Redis.from_url(queue_settings.redis_url)
    ids = [live_service.submit(DEMO, NewComment(author=f"r{i}", body=f"Packed comment {i} on dosing."),
                               request_id=f"req-{i}")[0].id
           for i in range(2 * MAX_IDS + 50)]
    # No worker yet: the queue holds three protocol-2 messages, oldest (tail) first, each
    # naming a batch; the batches hold every id once, in order.
    raw = [json.loads(m) for m in reversed(r.lrange(queue_settings.queue_name, 0, -1))]
    assert [m["headers"]["task"] for m in raw] == [MODERATE_TASK] * 3
    batches = [json.loads(base64.b64decode(m["body"]))[1]["batch"] for m in raw]
    held = [[x.decode() for x in r.lrange(b, 0, -1)] for b in batches]
    assert [len(h) for h in held] == [MAX_IDS, MAX_IDS, 50]
    assert [c for h in held for c in h] == ids

    worker_factory(concurrency=2)
    wait_for(lambda: all(live_service.get(c)[0].status != "pending" for c in ids), timeout=90)
    for cid in ids:
        comment, _, last = live_service.get(cid)
        assert last is not None and last.actor == "engine" and comment.version == 2
    # Served batches are kept only long enough for a re-delivery, then expire; a comment sent
    # now opens a new batch and is decided alone.
    keep = claimed_ttl(queue_settings.visibility_timeout)
    assert all(0 < r.ttl(b) <= keep for b in batches)
    late = live_service.submit(DEMO, NewComment(author="late", body="A later comment, on its own."))[0].id
    wait_for(lambda: live_service.get(late)[0].status != "pending", timeout=30)


def test_a_batch_closes_when_a_worker_claims_it(live_service, queue_settings):
    import redis

    from services.comments.shapes import NewComment
    from services.queue.protocol import Scripts, open_batch_key

    r = redis.Redis.from_url(queue_settings.redis_url)
    first = live_service.submit(DEMO, NewComment(author="A", body="First of a batch."))[0].id
    batch = r.get(open_batch_key(queue_settings.queue_name)).decode()
    assert Scripts(r).claim(queue_settings.queue_name, batch, 60) == [first]
    assert 0 < r.ttl(batch) <= 60
    # Claimed: the next comment opens a new batch with a message of its own.
    second = live_service.submit(DEMO, NewComment(author="B", body="Second, after the claim."))[0].id
    assert r.llen(queue_settings.queue_name) == 2
    newer = r.get(open_batch_key(queue_settings.queue_name)).decode()
    assert newer != batch and [x.decode() for x in r.lrange(newer, 0, -1)] == [second]
    # A re-delivered message claims the same ids again, and keeps them as long again.
    r.expire(batch, 5)
    assert Scripts(r).claim(queue_settings.queue_name, batch, 60) == [first]
    assert r.ttl(batch) > 5


def test_after_a_purged_queue_new_comments_open_a_batch_of_their_own(
        live_service, queue_settings, monkeypatch):
    import redis

    import services.queue.protocol as q
    from services.comments.shapes import NewComment

    monkeypatch.setattr(q, "OPEN_SECONDS", 1)
    r = redis.Redis.from_url(queue_settings.redis_url)
    live_service.submit(DEMO, NewComment(author="A", body="Its message is about to be purged."))
    lost = r.get(q.open_batch_key(queue_settings.queue_name))
    r.delete(queue_settings.queue_name)  # an operator purges the queue: the message is gone
    time.sleep(1.2)
    cid = live_service.submit(DEMO, NewComment(author="B", body="After the purge."))[0].id
    # Not added to the batch nobody will run: a new batch, with a message in the queue.
    batch = r.get(q.open_batch_key(queue_settings.queue_name))
    assert batch != lost and r.llen(queue_settings.queue_name) == 1
    assert [x.decode() for x in r.lrange(batch, 0, -1)] == [cid]


def test_a_submitted_comment_is_queued_and_announced_in_one_script_call(live_service, queue_settings):
    import redis

    from services.comments.shapes import NewComment
    from services.events import CHANNEL, STREAM
    from services.queue.protocol import open_batch_key

    r = redis.Redis.from_url(queue_settings.redis_url)
    live = r.pubsub()
    live.subscribe(CHANNEL)
    wait_for(lambda: live.get_message(timeout=0.1), timeout=5)  # the subscribe confirmation
    # Redis forgets scripts on a restart: the call loads its script again and goes through.
    r.script_flush()
    cid = live_service.submit(DEMO, NewComment(author="A", body="Announced and queued."))[0].id
    batch = r.get(open_batch_key(queue_settings.queue_name)).decode()
    assert [x.decode() for x in r.lrange(batch, 0, -1)] == [cid]
    message = wait_for(lambda: live.get_message(timeout=0.1), timeout=5)
    event = json.loads(message["data"])
    assert event["type"] == "comment.submitted" and event["data"]["id"] == cid
    assert event["data"]["status"] == "pending" and "body" not in event["data"]
    [(_, fields)] = r.xrevrange(STREAM, count=1)
    assert json.loads(fields[b"event"]) == event
    live.close()


def test_many_ids_in_one_call_fill_the_open_batch_then_new_ones_in_order(live_service, queue_settings):
    import base64

    import redis

    from services.events import STREAM
    from services.queue.protocol import MAX_IDS, open_batch_key
    from services.queue.sender import TaskSender

    r = redis.Redis.from_url(queue_settings.redis_url)
    sender = TaskSender(queue_settings)
    sender.moderate("first")
    ids = [f"c{i}" for i in range(2 * MAX_IDS + 50)]
    events = [("comment.submitted", {"id": c}) for c in ids[:3]]
    sender.moderate_batch(ids, events)
    raw = [json.loads(m) for m in reversed(r.lrange(queue_settings.queue_name, 0, -1))]
    batches = [json.loads(base64.b64decode(m["body"]))[1]["batch"] for m in raw]
    held = [[x.decode() for x in r.lrange(b, 0, -1)] for b in batches]
    # The open batch takes what it has room for; the rest fill new batches, one message each.
    assert [len(h) for h in held] == [MAX_IDS, MAX_IDS, 51]
    assert [c for h in held for c in h] == ["first", *ids]
    assert r.get(open_batch_key(queue_settings.queue_name)).decode() == batches[-1]
    assert all(r.ttl(b) > 0 for b in batches)
    announced = [json.loads(f[b"event"])["data"]["id"] for _, f in r.xrevrange(STREAM, count=3)]
    assert announced == ids[:3][::-1]
    # A re-send (the sweeper's) never joins the open batch: its message may be the lost one.
    sender.moderate_many(["again"])
    assert r.llen(queue_settings.queue_name) == 4
    assert [x.decode() for x in r.lrange(batches[-1], 0, -1)][-1] == ids[-1]


def _queued_ids(r, queue: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Every comment id in the batches the queue's messages name."""
    import base64

    msgs = [json.loads(m) for m in r.lrange(queue, 0, -1)]
    batches = [json.loads(base64.b64decode(m["body"]))[1]["batch"] for m in msgs]
    return [x.decode() for b in batches for x in r.lrange(b, 0, -1)]


def _post_many(base: str, n: int, clients: int = 8) -> list[str]:
    import threading

    import requests

    ids: list[str] = []
    failures: list[int] = []

    def run(chunk: range) -> None:
        session = requests.Session()
        for i in chunk:
            r = session.post(base, json={"author": f"p{i % 13}", "body": f"Comment {i} about the nasal spray."},
                             timeout=10)
            if r.status_code == 202:
                ids.append(r.json()["id"])
            else:
                failures.append(r.status_code)

    threads = [threading.Thread(target=run, args=(range(j, n, clients),)) for j in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures and len(ids) == n
    return ids


def test_comments_accepted_by_a_real_api_are_queued_once_and_each_decided_once(
        queue_settings, service, api_factory, worker_factory):
    import redis

    from tests.integration.test_faults import decided_once

    _, base = api_factory(queue_settings, WEB_CONCURRENCY="2")
    ids = _post_many(f"{base}{URL}", 300)
    r = redis.Redis.from_url(queue_settings.redis_url)
    # No worker yet: every accepted id reaches a batch within moments, each once, and the
    # batches share messages.
    wait_for(lambda: len(_queued_ids(r, queue_settings.queue_name)) >= len(ids), timeout=10)
    assert sorted(_queued_ids(r, queue_settings.queue_name)) == sorted(ids)
    assert r.llen(queue_settings.queue_name) < len(ids)
    worker_factory(concurrency=2)
    wait_for(lambda: all(service.get(c)[0].status != "pending" for c in ids), timeout=90, interval=0.5)
    decided_once(service, ids)


def test_a_stopping_api_sends_what_it_buffered_before_it_exits(
        queue_settings, service, api_factory, worker_factory):
    import redis

    from services.queue.buffer import RATE_WINDOW

    # Busy as soon as it measures any rate, with a delay no test waits out: only the exit can
    # send the later ones (beat is not running).
    api, root = api_factory(queue_settings, WEB_CONCURRENCY="1", ENQUEUE_DELAY_MS="600000",
                            ENQUEUE_BUSY_PER_SECOND="0")
    base = f"{root}{URL}"
    ids = _post_many(base, 1, clients=1)
    r = redis.Redis.from_url(queue_settings.redis_url)
    wait_for(lambda: len(_queued_ids(r, queue_settings.queue_name)) == 1, timeout=5, interval=0.05)
    time.sleep(2 * RATE_WINDOW)  # past the first measure of its rate: busy from now on
    ids += _post_many(base, 19, clients=2)
    time.sleep(0.5)
    assert len(_queued_ids(r, queue_settings.queue_name)) == 1  # the rest wait their turn
    api.stop()
    assert sorted(_queued_ids(r, queue_settings.queue_name)) == sorted(ids)
    worker_factory()
    wait_for(lambda: all(service.get(c)[0].status != "pending" for c in ids), timeout=60, interval=0.5)


def test_recent_duplicates_count_other_comments_with_the_same_text(queue_settings):
    """A batch's duplicate counts come from one script call: the same text (whatever its case
    and spacing) counts every other comment that carried it, earlier batches and this one,
    and a comment seen again (a re-delivered batch) does not count itself twice. A Redis that
    forgot the script (a restart) gets it again. A short text counts only from the same author
    on the same article (many readers write "thank you"); a long one counts site-wide."""
    import redis

    from workers.runtime import DUPLICATE_WINDOW_SECONDS, Runtime, fingerprint

    rt = Runtime(queue_settings)
    text = "Ketamine clinic deals, message me today"
    assert rt.recent_duplicates_many([]) == {}
    got = rt.recent_duplicates_many([("a", text, "ref1", "art"), ("b", "Something else entirely.", "ref1", "art")])
    assert got == {"a": 0, "b": 0}
    redis.Redis.from_url(queue_settings.redis_url).script_flush()
    got = rt.recent_duplicates_many([("c", "  KETAMINE clinic deals,   message me TODAY ", "ref1", "art"),
                                     ("d", text, "ref1", "art"), ("a", text, "ref1", "art")])
    assert got == {"c": 1, "d": 2, "a": 2}
    # the same short text from another author, or on another article, is no duplicate
    got = rt.recent_duplicates_many([("e", text, "ref2", "art"), ("f", text, "ref1", "other")])
    assert got == {"e": 0, "f": 0}
    flood = "Visit our clinic for the best ketamine deals in town, call us today and ask for Sam"
    got = rt.recent_duplicates_many([(f"g{i}", flood, f"ref{i}", f"art{i}") for i in range(3)])
    assert got == {"g0": 0, "g1": 1, "g2": 2}  # each counts those before it
    ttl = redis.Redis.from_url(queue_settings.redis_url).ttl(f"triage:dup:{fingerprint(flood)}")
    assert 0 < ttl <= DUPLICATE_WINDOW_SECONDS
