"""The public API over the real database (SQLite, or PostgreSQL with TEST_DATABASE_URL)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import DEMO
from tests.verdicts import verdict

URL = f"/v1/articles/{DEMO}/comments"


def post(client, body, **kw):  # type: ignore[no-untyped-def]
    return client.post(URL, data=json.dumps(body), content_type="application/json", **kw)


def assert_problem(resp, status):  # type: ignore[no-untyped-def]
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
    doc = resp.get_json(force=True)
    assert doc["status"] == status
    for key in ("type", "title", "detail"):
        assert isinstance(doc[key], str) and doc[key]
    return doc


def test_post_is_accepted_committed_then_sent(client, service, dispatch):
    resp = post(client, {"author": "Ana", "body": "  Thank you for this article.  ", "email": "a@b.org"})
    assert resp.status_code == 202
    doc = resp.get_json()
    assert doc["status"] == "pending"
    assert resp.headers["Location"] == doc["links"]["self"] == f"/v1/comments/{doc['id']}"
    assert len(doc["id"]) >= 32
    assert dispatch.sent == [doc["id"]]
    comment, slug, _ = service.get(doc["id"])
    assert comment.status == "pending" and slug == DEMO
    assert comment.body == "Thank you for this article."


def test_a_new_comment_is_stored_as_the_orm_would_store_it(client, service):
    """The pending row is written by a statement compiled once and run on the driver's cursor;
    read back through the ORM, every column holds what the ORM itself would have written."""
    import datetime as dt

    from sqlalchemy import select

    from services.comments.models import Comment

    before = dt.datetime.now(dt.UTC)
    doc = post(client, {"author": "Ana", "body": "Zoë's «careful» piece 🙏", "email": "ana@example.org"}).get_json()
    with service.db.session() as s:
        c = s.get(Comment, doc["id"])
        assert (c.author, c.body, c.email, c.status, c.priority, c.rank) == (
            "Ana", "Zoë's «careful» piece 🙏", "ana@example.org", "pending", "normal", 1)
        assert (c.categories, c.findings, c.scores, c.version, c.report_count) == ([], [], {}, 1, 0)
        assert c.parent_id is None and c.decided_at is None and c.policy_version is None
        assert c.author_ref and c.ip_hash and c.author_ref != c.ip_hash
        created = c.created_at if c.created_at.tzinfo else c.created_at.replace(tzinfo=dt.UTC)
        assert before - dt.timedelta(seconds=1) <= created <= dt.datetime.now(dt.UTC)
        # Queries compare the stored JSON and timestamps as the ORM's own rows would be.
        assert s.scalars(select(Comment.id).where(Comment.created_at >= before - dt.timedelta(seconds=1),
                                                  Comment.status == "pending")).all() == [doc["id"]]


def test_a_failed_insert_raises_sqlalchemys_error_like_any_statement(client, service):
    # The API maps SQLAlchemy's errors (a database away: 503); the driver's own would be a 500.
    import pytest
    from sqlalchemy.exc import IntegrityError

    from services.comments.models import Comment

    doc = post(client, {"author": "Ana", "body": "First."}).get_json()
    with service.db.session() as s:
        row = {c.key: getattr(s.get(Comment, doc["id"]), c.key) for c in Comment.__table__.c}
    with pytest.raises(IntegrityError):
        with service.db.writing() as conn:
            service._insert_comment.run(conn, row)  # the same id again


def test_ids_are_random(client):
    ids = {post(client, {"author": "A", "body": f"hi {i}"}).get_json()["id"] for i in range(5)}
    assert len(ids) == 5


def test_status_endpoint_for_the_author(client):
    cid = post(client, {"author": "Ana", "body": "Hello"}).get_json()["id"]
    doc = client.get(f"/v1/comments/{cid}").get_json()
    assert doc["id"] == cid and doc["article"] == DEMO and doc["status"] == "pending"
    assert doc["created_at"].endswith("Z") and doc["decided_at"] is None
    assert "email" not in doc


def test_failed_send_keeps_the_comment_pending(client, service, dispatch):
    dispatch.fail = True
    resp = post(client, {"author": "Ana", "body": "Queue is down"})
    assert resp.status_code == 202
    comment, _, _ = service.get(resp.get_json()["id"])
    assert comment.status == "pending"
    assert resp.get_json()["id"] in service.stale_pending(older_than_seconds=-1)


def decide(service, cid, action="publish", body=None):  # type: ignore[no-untyped-def]
    return service.record_engine_decision(cid, verdict(action, published_body=body,
                                                       policy_version="test"))


def test_read_endpoint_shows_only_approved_oldest_first_and_paginates(client, service):
    ids = [post(client, {"author": f"A{i}", "body": f"comment {i}", "email": "x@y.org"}).get_json()["id"]
           for i in range(7)]
    for i, cid in enumerate(ids):
        decide(service, cid, "publish" if i % 3 != 1 else "hold", body=f"comment {i}" if i % 3 != 1 else None)
    approved = [cid for i, cid in enumerate(ids) if i % 3 != 1]
    seen, cursor = [], None
    while True:
        q = f"{URL}?limit=2" + (f"&cursor={cursor}" if cursor else "")
        doc = client.get(q).get_json()
        for item in doc["items"]:
            assert set(item) == {"id", "author", "body", "created_at", "parent_id"}
        seen += [i["id"] for i in doc["items"]]
        cursor = doc["next_cursor"]
        if not cursor:
            break
    assert seen == approved
    raw = client.get(URL).get_data(as_text=True)
    assert "x@y.org" not in raw


def test_engine_decision_is_recorded_once(service, client):
    cid = post(client, {"author": "A", "body": "hello"}).get_json()["id"]
    assert decide(service, cid) is True
    assert decide(service, cid, "block") is False
    comment, _, last = service.get(cid)
    assert comment.status == "approved" and last.actor == "engine" and last.to_status == "approved"


def test_reply_must_target_an_approved_comment_on_the_same_article(client, service):
    parent = post(client, {"author": "A", "body": "parent"}).get_json()["id"]
    doc = assert_problem(post(client, {"author": "B", "body": "reply", "parent_id": parent}), 422)
    assert doc["errors"][0]["field"] == "parent_id"
    decide(service, parent, body="parent")
    assert post(client, {"author": "B", "body": "reply", "parent_id": parent}).status_code == 202


def test_validation_names_each_field(client):
    doc = assert_problem(post(client, {"author": "", "body": " " * 10, "email": "nope"}), 422)
    fields = {e["field"] for e in doc["errors"]}
    assert {"author", "body", "email"} <= fields
    assert_problem(post(client, {"author": "x" * 81, "body": "ok"}), 422)
    assert_problem(post(client, {"author": "A", "body": "b" * 5001}), 422)
    assert post(client, {"author": "A", "body": "b" * 5000}).status_code == 202
    assert_problem(post(client, ["not", "an", "object"]), 422)
    assert_problem(post(client, {"author": "A", "body": "ok", "extra": 1}), 422)


def test_error_statuses_are_problem_json(client, app):
    assert_problem(client.post(URL, data="{not json", content_type="application/json"), 400)
    assert_problem(client.post(URL, data="author=a", content_type="application/x-www-form-urlencoded"), 415)
    assert_problem(client.post(URL, data=json.dumps({"author": "a", "body": "x" * 70000}),
                               content_type="application/json"), 413)
    assert_problem(post(client, {"author": "A", "body": "x"}).__class__ and
                   client.post("/v1/articles/no-such-article/comments", data='{"author":"a","body":"b"}',
                               content_type="application/json"), 404)
    assert_problem(client.get("/v1/comments/doesnotexist"), 404)
    assert_problem(client.get("/v1/nothing-here"), 404)
    resp = assert_problem(client.delete(URL), 405)
    assert_problem(client.get(f"{URL}?limit=0"), 422)
    assert_problem(client.get(f"{URL}?limit=101"), 422)
    assert_problem(client.get(f"{URL}?cursor=%%%"), 422)
    assert resp is not None


def test_unexpected_errors_are_500_without_a_stack_trace(app):
    def boom():  # type: ignore[no-untyped-def]
        raise RuntimeError("secret internals")

    app.add_url_rule("/v1/boom", view_func=boom)
    resp = app.test_client().get("/v1/boom")
    doc = assert_problem(resp, 500)
    assert "secret" not in json.dumps(doc) and "Traceback" not in resp.get_data(as_text=True)


def test_health_readiness_and_openapi(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["checks"] == {"database": "ok", "redis": "ok"}
    doc = client.get("/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1")
    assert "/v1/articles/{slug}/comments" in doc["paths"]
    assert "CommentIn" in doc["components"]["schemas"]


def test_readiness_fails_when_redis_is_unreachable(settings, service):
    from dataclasses import replace

    from services.api import create_app

    app = create_app(replace(settings, redis_url="redis://127.0.0.1:1/0"), service=service)
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 503 and resp.get_json()["checks"]["redis"].startswith("error")


def test_idempotency_key_replays_and_refuses_a_different_body(client, service, dispatch):
    h = {"Idempotency-Key": "abc-123"}
    first = client.post(URL, json={"author": "A", "body": "once"}, headers=h)
    again = client.post(URL, json={"author": "A", "body": "once"}, headers=h)
    assert first.status_code == again.status_code == 202
    assert first.get_json() == again.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert dispatch.sent == [first.get_json()["id"]]
    other = client.post(URL, json={"author": "A", "body": "twice"}, headers=h)
    assert_problem(other, 422)
    # Another client may use the same key for its own comment.
    elsewhere = client.post(URL, json={"author": "A", "body": "once"}, headers=h,
                            environ_overrides={"REMOTE_ADDR": "10.9.9.9"})
    assert elsewhere.get_json()["id"] != first.get_json()["id"]


@pytest.mark.parametrize("field,value", [
    ("author", "A\x00na"), ("author", "A\x07na"), ("body", "hello\x1b[31m there"),
    ("body", "nul\x00here"), ("email", "a\x00@example.org"), ("parent_id", "abc\x00"),
    ("author", "\u200b\u3164\u2800"), ("author", "\u200d\u00ad"),
])
def test_control_characters_and_invisible_names_are_refused_in_every_field(client, service, field, value):
    payload = {"author": "Ana", "body": "A fine comment", field: value}
    doc = assert_problem(post(client, payload), 422)
    assert [e["field"] for e in doc["errors"]] == [field]


def test_control_characters_in_paths_and_queries_are_422(client):
    assert_problem(client.get("/v1/articles/x%00y/comments"), 422)
    assert_problem(client.get(f"{URL}?cursor=a%00b"), 422)
    assert_problem(client.post("/v1/comments/ab%00c/reports", json={"reason": "spam"}), 422)


def test_bounds_controls_bidi_links_and_depth(client, service):
    resp = post(client, {"author": "Ana", "body": "hello\tthere\r\nand on"})
    comment, _, _ = service.get(resp.get_json()["id"])
    assert comment.author == "Ana" and comment.body == "hello\tthere\nand on"
    doc = assert_problem(post(client, {"author": "A", "body": "evil \u202egnp.exe"}), 422)
    assert "bidirectional" in doc["errors"][0]["message"]
    links = " ".join(f"https://x{i}.example" for i in range(11))
    assert_problem(post(client, {"author": "A", "body": links}), 422)
    deep = "[" * 30000 + "]" * 30000
    assert_problem(client.post(URL, data=deep, content_type="application/json"), 400)


def test_rate_limits_answer_429_problem_with_retry_after(settings, service):
    import uuid
    from dataclasses import replace

    from services.api import create_app

    who = f"{uuid.uuid4().hex}@example.org"
    unlimited = create_app(replace(settings, ratelimit_enabled=False, ratelimit_post_author="2 per minute"),
                           service=service).test_client()
    assert [unlimited.post(URL, json={"author": "A", "body": f"u{i}", "email": who}).status_code
            for i in range(3)] == [202, 202, 202]
    limited = replace(settings, ratelimit_enabled=True, ratelimit_post_author="2 per minute",
                      ratelimit_post_ip="1000 per minute", ratelimit_auth_failures="2 per minute")
    client = create_app(limited, service=service).test_client()
    codes = [client.post(URL, json={"author": "A", "body": f"n{i}", "email": who}).status_code
             for i in range(3)]
    assert codes == [202, 202, 429]
    resp = client.post(URL, json={"author": "A", "body": "again", "email": who})
    doc = assert_problem(resp, 429)
    assert int(resp.headers["Retry-After"]) > 0 and doc["type"].endswith("too-many-requests")
    # Failed sign-ins are limited per client; ip chosen fresh so earlier runs don't count.
    ip = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    codes = [client.get("/v1/moderation/queue", headers={"Authorization": "Bearer wrong"},
                        environ_overrides={"REMOTE_ADDR": ip}).status_code for _ in range(3)]
    assert codes == [401, 401, 429]


def test_failed_sign_ins_never_lock_out_a_valid_key_from_the_same_address(settings, service):
    import uuid
    from dataclasses import replace

    from services.api import create_app

    app = create_app(replace(settings, ratelimit_enabled=True, ratelimit_auth_failures="2 per minute"),
                     service=service)
    client = app.test_client()
    _, key = app.extensions["triage.moderation"].create_key("Ana", "moderator")
    ip = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    newsroom = {"environ_overrides": {"REMOTE_ADDR": ip}}
    good = {"Authorization": f"Bearer {key}"}
    # Successful requests count for nothing: a busy moderator is never throttled.
    assert {client.get("/v1/moderation/queue", headers=good, **newsroom).status_code
            for _ in range(5)} == {200}
    bad = [client.get("/v1/moderation/queue", headers={"Authorization": "Bearer wrong"},
                      **newsroom).status_code for _ in range(3)]
    assert bad == [401, 401, 429]
    assert client.get("/v1/moderation/queue", headers=good, **newsroom).status_code == 200


def test_rate_limit_counters_hold_no_raw_email_ip_or_name_and_names_are_normalised(settings, service):
    import uuid
    from dataclasses import replace

    import redis

    from services.api import create_app
    from tests.conftest import REDIS_URL

    client = create_app(replace(settings, ratelimit_enabled=True, ratelimit_post_author="1 per minute",
                                ratelimit_post_ip="1000 per minute"), service=service).test_client()
    name = f"Bob{uuid.uuid4().hex[:6]}"
    ip = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    env = {"REMOTE_ADDR": ip}
    assert client.post(URL, json={"author": name, "body": "one"}, environ_overrides=env).status_code == 202
    # The same name with a zero-width space, a Cyrillic о, full-width letters: one author.
    for alias in (name + "\u200b", name.replace("o", "\u043e"), "".join(
            chr(ord(c) + 0xFEE0) if c.isalnum() else c for c in name)):
        assert client.post(URL, json={"author": alias, "body": "again"},
                           environ_overrides=env).status_code == 429, alias
    keys = [k.decode() for k in redis.Redis.from_url(REDIS_URL).keys("*triage*")]
    assert keys and not any(name.lower() in k.lower() or ip in k for k in keys)


def test_read_endpoint_etag_304_and_a_decision_invalidates_the_cache(client, service):
    first = post(client, {"author": "A", "body": "first"}).get_json()["id"]
    decide(service, first, body="first")
    r1 = client.get(URL)
    etag = r1.headers["ETag"]
    assert [i["id"] for i in r1.get_json()["items"]] == [first]
    r2 = client.get(URL, headers={"If-None-Match": etag})
    assert r2.status_code == 304 and r2.headers["ETag"] == etag and not r2.get_data()
    second = post(client, {"author": "B", "body": "second"}).get_json()["id"]
    assert client.get(URL, headers={"If-None-Match": etag}).status_code == 304  # still pending
    decide(service, second, body="second")
    r3 = client.get(URL, headers={"If-None-Match": etag})
    assert r3.status_code == 200 and r3.headers["ETag"] != etag
    assert [i["id"] for i in r3.get_json()["items"]] == [first, second]


def test_metrics_are_prometheus_text(client):
    client.get("/healthz")
    resp = client.get("/metrics")
    assert resp.status_code == 200 and resp.mimetype == "text/plain"
    text = resp.get_data(as_text=True)
    assert 'triage_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert "triage_queue_depth" in text and "triage_http_request_seconds_bucket" in text


def test_a_comment_held_as_self_harm_offers_support_to_its_author(client, service, settings):
    cid = post(client, {"author": "Sam", "body": "I have my pills ready for tonight."}).get_json()["id"]
    assert "support" not in client.get(f"/v1/comments/{cid}").get_json()
    service.record_engine_decision(cid, verdict("hold", "urgent", ["self_harm"],
                                                policy_version="t"))
    doc = client.get(f"/v1/comments/{cid}").get_json()
    assert doc["status"] == "held"
    assert doc["support"]["message"] == settings.support_message
    assert {"label", "url"} <= set(doc["support"]["resources"][0])
