"""Moderators' API over the real database: keys, queue order, decisions, history, reports, lists."""

from __future__ import annotations

import json

import pytest

from tests.conftest import DEMO
from tests.verdicts import verdict

URL = f"/v1/articles/{DEMO}/comments"


@pytest.fixture
def mod(app):  # type: ignore[no-untyped-def]
    return app.extensions["triage.moderation"]


@pytest.fixture
def keys(mod):  # type: ignore[no-untyped-def]
    _, moderator = mod.create_key("Ana", "moderator")
    _, admin = mod.create_key("Root", "admin")
    return {"moderator": moderator, "admin": admin}


def auth(key):  # type: ignore[no-untyped-def]
    return {"Authorization": f"Bearer {key}"}


def post(client, body, author="Reader", email=None):  # type: ignore[no-untyped-def]
    payload = {"author": author, "body": body}
    if email:
        payload["email"] = email
    resp = client.post(URL, data=json.dumps(payload), content_type="application/json")
    assert resp.status_code == 202
    return resp.get_json()["id"]


def engine(service, cid, action, priority="normal", categories=(), masked=None):  # type: ignore[no-untyped-def]
    published = masked if action == "publish" else None
    assert service.record_engine_decision(cid, verdict(
        action, priority, categories,
        findings=[{"category": c, "score": 0.9, "rule": "t", "spans": [[0, 4]], "detail": ""}
                  for c in categories],
        scores={c: 0.9 for c in categories}, published_body=published, masked_body=masked))


def test_routes_refuse_missing_wrong_and_revoked_keys(client, mod, keys):
    routes = [("get", "/v1/moderation/queue"), ("get", "/v1/moderation/comments/x"),
              ("post", "/v1/moderation/comments/x/decision"), ("post", "/v1/moderation/decisions"),
              ("post", "/v1/moderation/authors/x/ban"), ("post", "/v1/moderation/authors/x/unban"),
              ("get", "/v1/admin/lists/blocked_terms"), ("put", "/v1/admin/lists/blocked_terms")]
    row, revoked = mod.create_key("Gone", "admin")
    mod.revoke_key(row.id)
    for method, path in routes:
        for headers in ({}, auth("nope"), auth(revoked), {"Authorization": "Basic abc"}):
            resp = getattr(client, method)(path, headers=headers)
            assert resp.status_code == 401, (method, path, headers)
            assert resp.mimetype == "application/problem+json"
    for method, path in routes:
        if "/admin/" in path:
            resp = getattr(client, method)(path, headers=auth(keys["moderator"]))
            assert resp.status_code == 403 and resp.mimetype == "application/problem+json"


def test_queue_puts_urgent_first_then_oldest(client, service, keys):
    a = post(client, "spammy one")
    b = post(client, "crisis one")
    c = post(client, "medical one")
    engine(service, a, "hold", categories=["spam"])
    engine(service, b, "hold", priority="urgent", categories=["self_harm"])
    engine(service, c, "hold", categories=["unsafe_medical"])
    resp = client.get("/v1/moderation/queue", headers=auth(keys["moderator"]))
    items = resp.get_json()["items"]
    assert [i["id"] for i in items] == [b, a, c]
    first = items[0]
    for key in ("id", "article", "author", "email", "body", "status", "categories", "scores",
                "findings", "policy_version", "report_count", "version"):
        assert key in first
    assert first["findings"][0]["spans"] == [[0, 4]]
    only = client.get("/v1/moderation/queue?category=unsafe_medical", headers=auth(keys["moderator"]))
    assert [i["id"] for i in only.get_json()["items"]] == [c]
    page = client.get("/v1/moderation/queue?limit=2", headers=auth(keys["moderator"])).get_json()
    rest = client.get(f"/v1/moderation/queue?limit=2&cursor={page['next_cursor']}",
                      headers=auth(keys["moderator"])).get_json()
    assert [i["id"] for i in page["items"] + rest["items"]] == [b, a, c]


def test_decision_needs_current_version_and_is_in_history(client, service, keys):
    cid = post(client, "What the fuck, this is great", email="p@x.org")
    engine(service, cid, "hold", categories=["profanity"], masked="What the ****, this is great")
    h = auth(keys["moderator"])
    detail = client.get(f"/v1/moderation/comments/{cid}", headers=h).get_json()
    version = detail["version"]
    no_match = client.post(f"/v1/moderation/comments/{cid}/decision", json={"action": "approve"}, headers=h)
    assert no_match.status_code == 428
    stale = client.post(f"/v1/moderation/comments/{cid}/decision", json={"action": "approve"},
                        headers={**h, "If-Match": f'"{version - 1}"'})
    assert stale.status_code == 409 and stale.mimetype == "application/problem+json"
    ok = client.post(f"/v1/moderation/comments/{cid}/decision",
                     json={"action": "approve", "reason": "fine once masked"},
                     headers={**h, "If-Match": f'"{version}"'})
    assert ok.status_code == 200 and ok.get_json()["status"] == "approved"
    public = client.get(URL).get_json()["items"]
    assert [i["body"] for i in public if i["id"] == cid] == ["What the ****, this is great"]
    again = client.post(f"/v1/moderation/comments/{cid}/decision", json={"action": "reject"},
                        headers={**h, "If-Match": f'"{version}"'})
    assert again.status_code == 409
    reject = client.post(f"/v1/moderation/comments/{cid}/decision", json={"action": "reject", "reason": "spam"},
                         headers={**h, "If-Match": f'"{version + 1}"'})
    assert reject.status_code == 200
    assert cid not in {i["id"] for i in client.get(URL).get_json()["items"]}
    history = client.get(f"/v1/moderation/comments/{cid}", headers=h).get_json()["history"]
    assert [(e["actor"], e["from"], e["to"]) for e in history] == [
        ("engine", "pending", "held"), ("Ana", "held", "approved"), ("Ana", "approved", "rejected")]
    assert history[1]["reason"] == "fine once masked"
    # Decisions teach the learned model (approve → ok, reject → the reason's label).
    labels = [label for body, _, label in service.training_examples() if body == "What the fuck, this is great"]
    assert labels == ["ok", "spam"]


def test_bulk_decisions_report_one_result_per_id(client, service, keys):
    ids = [post(client, f"held {i}") for i in range(3)]
    for cid in ids:
        engine(service, cid, "hold", categories=["spam"])
    resp = client.post("/v1/moderation/decisions", headers=auth(keys["moderator"]), json={"decisions": [
        {"id": ids[0], "action": "reject", "version": 2},
        {"id": ids[1], "action": "approve", "version": 1},
        {"id": "missing", "action": "approve", "version": 1},
        {"id": ids[2], "action": "approve", "version": 2},
    ]})
    assert resp.status_code == 200
    assert [r["status"] for r in resp.get_json()["results"]] == [200, 409, 404, 200]
    too_many = client.post("/v1/moderation/decisions", headers=auth(keys["moderator"]),
                           json={"decisions": [{"id": "x", "action": "approve"}] * 101})
    assert too_many.status_code == 422


def test_bulk_decisions_require_the_version_and_refuse_a_stale_one(client, service, keys, mod):
    cid = post(client, "held then decided as a crisis by someone else")
    engine(service, cid, "hold", categories=["spam"])
    h = auth(keys["moderator"])
    missing = client.post("/v1/moderation/decisions", headers=h,
                          json={"decisions": [{"id": cid, "action": "approve"}]})
    assert missing.status_code == 422 and missing.mimetype == "application/problem+json"
    assert any(e["field"].endswith("version") for e in missing.get_json()["errors"])
    # Another moderator holds it as a crisis (version 2 → 3); a bulk approve of version 2 is stale.
    other = client.post(f"/v1/moderation/comments/{cid}/decision", json={"action": "hold"},
                        headers={**h, "If-Match": '"2"'})
    assert other.status_code == 200
    stale = client.post("/v1/moderation/decisions", headers=h,
                        json={"decisions": [{"id": cid, "action": "approve", "version": 2}]})
    assert stale.get_json()["results"][0]["status"] == 409
    assert client.get(f"/v1/comments/{cid}").get_json()["status"] == "held"
    with pytest.raises(Exception, match="version"):
        raise_first(mod.bulk_decide([{"id": cid, "action": "approve"}], "Ana"))


def raise_first(results):  # type: ignore[no-untyped-def]
    if results[0]["status"] == 422:
        raise ValueError(results[0]["detail"])
    return results


def test_reports_take_a_comment_off_the_public_endpoint_at_the_threshold(app, service, keys):
    client = app.test_client()
    cid = post(client, "A published comment")
    engine(service, cid, "publish", masked="A published comment")
    for i, ip in enumerate(["10.0.0.1", "10.0.0.2"]):
        r = client.post(f"/v1/comments/{cid}/reports", json={"reason": "abuse"},
                        environ_overrides={"REMOTE_ADDR": ip})
        assert r.status_code == 202 and r.get_json()["reports"] == i + 1
    dup = client.post(f"/v1/comments/{cid}/reports", json={"reason": "abuse"},
                      environ_overrides={"REMOTE_ADDR": "10.0.0.2"})
    assert dup.status_code == 409
    assert cid in {i["id"] for i in client.get(URL).get_json()["items"]}
    client.post(f"/v1/comments/{cid}/reports", json={"reason": "spam"}, environ_overrides={"REMOTE_ADDR": "10.0.0.3"})
    assert cid not in {i["id"] for i in client.get(URL).get_json()["items"]}
    queue = client.get("/v1/moderation/queue?status=reported", headers=auth(keys["moderator"])).get_json()
    assert [i["id"] for i in queue["items"]] == [cid] and queue["items"][0]["report_count"] == 3
    history = client.get(f"/v1/moderation/comments/{cid}", headers=auth(keys["moderator"])).get_json()["history"]
    assert history[-1]["actor"] == "community" and history[-1]["to"] == "reported"
    assert client.get(f"/v1/comments/{cid}").get_json()["status"] == "held"


def test_one_self_harm_report_alerts_moderators_at_once_but_does_not_unpublish(client, service, keys, events):
    cid = post(client, "A published comment that worries a reader")
    engine(service, cid, "publish", masked="A published comment that worries a reader")
    crisis = post(client, "the engine's own crisis")
    engine(service, crisis, "hold", priority="urgent", categories=["self_harm"])
    h = auth(keys["moderator"])
    r = client.post(f"/v1/comments/{cid}/reports", json={"reason": "self_harm"},
                    environ_overrides={"REMOTE_ADDR": "10.0.0.1"})
    assert r.status_code == 202
    assert cid in {i["id"] for i in client.get(URL).get_json()["items"]}, "one voice unpublishes nothing"
    assert ("comment.urgent", cid) in [(k, p["id"]) for k, p in events.events]
    # In the default queue at once, urgent, and told apart from the engine's crisis.
    held = client.get("/v1/moderation/queue", headers=h).get_json()["items"]
    by_id = {i["id"]: i for i in held}
    assert by_id[cid]["priority"] == "urgent" and by_id[cid]["raised_by"] == "reports"
    assert by_id[cid]["status"] == "approved"
    assert by_id[crisis]["raised_by"] == "engine"
    reported = client.get("/v1/moderation/queue?status=reported", headers=h).get_json()["items"]
    assert [i["id"] for i in reported] == [cid]
    # A second distinct reporter reaches the floor of two: now it leaves the public page.
    client.post(f"/v1/comments/{cid}/reports", json={"reason": "self_harm"},
                environ_overrides={"REMOTE_ADDR": "10.0.0.2"})
    assert cid in {i["id"] for i in client.get(URL).get_json()["items"]}
    client.post(f"/v1/comments/{cid}/reports", json={"reason": "self_harm"},
                environ_overrides={"REMOTE_ADDR": "10.0.0.3"})
    assert cid not in {i["id"] for i in client.get(URL).get_json()["items"]}


def test_a_moderator_answers_a_report_alert_and_it_leaves_the_queue(client, service, keys):
    cid = post(client, "A published comment a reader flagged")
    engine(service, cid, "publish", masked="A published comment a reader flagged")
    client.post(f"/v1/comments/{cid}/reports", json={"reason": "self_harm"})
    h = auth(keys["moderator"])
    item = client.get("/v1/moderation/queue", headers=h).get_json()["items"][0]
    ok = client.post(f"/v1/moderation/comments/{cid}/decision", json={"action": "approve"},
                     headers={**h, "If-Match": f'"{item["version"]}"'})
    assert ok.status_code == 200 and ok.get_json()["priority"] == "normal"
    assert client.get("/v1/moderation/queue", headers=h).get_json()["items"] == []
    assert cid in {i["id"] for i in client.get(URL).get_json()["items"]}


def test_report_thresholds_never_unpublish_on_one_voice(client, service, mod):
    from dataclasses import replace

    mod.rules = replace(mod.rules, report_threshold=1, report_threshold_self_harm=1)
    cid = post(client, "Published")
    engine(service, cid, "publish", masked="Published")
    client.post(f"/v1/comments/{cid}/reports", json={"reason": "abuse"})
    assert cid in {i["id"] for i in client.get(URL).get_json()["items"]}


def test_only_published_comments_can_be_reported(client, service):
    cid = post(client, "still pending")
    assert client.post(f"/v1/comments/{cid}/reports", json={"reason": "spam"}).status_code == 404
    assert client.post(f"/v1/comments/{cid}/reports", json={"reason": "bogus"}).status_code == 422


def test_bans_and_trust(client, service, mod, keys):
    cid = post(client, "hello", email="Banned@Example.org")
    ref = client.get(f"/v1/moderation/comments/{cid}", headers=auth(keys["moderator"])).get_json()["author_ref"]
    assert ref and "banned@example.org" not in ref
    assert not mod.is_banned(ref)
    assert client.post(f"/v1/moderation/authors/{ref}/ban", json={"reason": "spammer"},
                       headers=auth(keys["moderator"])).status_code == 200
    assert mod.is_banned(ref)
    client.post(f"/v1/moderation/authors/{ref}/unban", headers=auth(keys["moderator"]))
    assert not mod.is_banned(ref)
    client.post(f"/v1/moderation/authors/{ref}/ban", json={"until": "2000-01-01T00:00:00Z"},
                headers=auth(keys["moderator"]))
    assert not mod.is_banned(ref), "an expired ban no longer applies"
    trusted = [post(client, f"good {i}", email="good@example.org") for i in range(3)]
    good_ref = client.get(f"/v1/moderation/comments/{trusted[0]}",
                          headers=auth(keys["moderator"])).get_json()["author_ref"]
    assert not mod.is_trusted(good_ref)
    for t in trusted:
        engine(service, t, "publish", masked="x")
    assert mod.is_trusted(good_ref)


def test_standing_of_many_authors_is_read_at_once(client, service, mod):
    from services.comments.shapes import author_ref

    def author(name, approved, rejected=0, held=0):  # type: ignore[no-untyped-def]
        email = f"{name}@example.org"
        for i in range(approved + rejected + held):
            cid = post(client, f"{name} {i}", email=email)
            action = "publish" if i < approved else ("block" if i < approved + rejected else "hold")
            engine(service, cid, action, categories=() if action == "publish" else ("spam",), masked="x")
        return author_ref(service.salt, email, "127.0.0.1")  # the test client's address

    steady = author("steady", approved=3)
    prolific = author("prolific", approved=7, held=2)
    once_rejected = author("rejected", approved=6, rejected=1)
    newcomer = author("newcomer", approved=2, held=3)
    unknown = "0" * 64
    assert mod.trusted_among({steady, prolific, once_rejected, newcomer, unknown}) == {steady, prolific}
    # More authors than one statement reads: the rest are read by the next.
    many = {author(f"once{i}", approved=1) for i in range(20)} | {author("late", approved=3)}
    assert mod.trusted_among(many | {once_rejected}) == {author_ref(service.salt, "late@example.org", "127.0.0.1")}
    assert mod.trusted_among(set()) == set()
    assert mod.is_trusted(prolific) and not mod.is_trusted(once_rejected) and not mod.is_trusted(None)


def test_lists_are_admin_only_and_keep_a_history(client, keys):
    h = auth(keys["admin"])
    assert client.get("/v1/admin/lists/nope", headers=h).status_code == 404
    r = client.put("/v1/admin/lists/blocked_domains", json={"items": ["Cheap-K.example", " x.test "]}, headers=h)
    assert r.status_code == 200 and r.get_json()["items"] == ["cheap-k.example", "x.test"]
    doc = client.get("/v1/admin/lists/blocked_domains", headers=h).get_json()
    assert doc["history"][0]["actor"] == "Root" and doc["history"][0]["after"] == ["cheap-k.example", "x.test"]


def test_public_json_never_leaks_private_fields(client, service, keys):
    cid = post(client, "Private details stay private", email="secret@example.org")
    engine(service, cid, "publish", masked="Private details stay private")
    with service.db.session() as s:
        from services.comments.models import Comment

        row = s.get(Comment, cid)
        secrets_ = [row.email, row.author_ref, row.ip_hash, "127.0.0.1"]
    # Walk every public GET route the app serves (moderation and admin routes need a key).
    public = [r for r in client.application.url_map.iter_rules()
              if "GET" in r.methods and not r.rule.startswith(("/v1/moderation", "/v1/admin", "/static"))]
    assert len(public) >= 4
    for rule in public:
        path = rule.rule.replace("<slug>", DEMO).replace("<comment_id>", cid)
        resp = client.get(path)
        text = resp.get_data(as_text=True)
        for secret in secrets_:
            assert secret and secret not in text, (path, secret)
        assert '"author_ref"' not in text or path == "/openapi.json"


def test_engine_batch_skips_a_comment_a_moderator_decided_after_it_was_read(client, service, mod):
    ids = [post(client, f"batch comment {i}") for i in range(3)]
    loaded = service.pending_batch(ids)
    assert len(loaded) == 3
    # A moderator decides the middle one between the engine's read and its write.
    mod.decide(ids[1], "reject", actor="Ana", version=1, reason="spam")
    v = verdict("publish")
    decided = service.record_engine_decisions({cid: v for cid in ids}, loaded)
    assert sorted(decided) == sorted([ids[0], ids[2]])
    statuses = {cid: service.get(cid)[0].status for cid in ids}
    assert statuses == {ids[0]: "approved", ids[1]: "rejected", ids[2]: "approved"}
    # The moderator's decision stands and is the last word on it; one decision each.
    comment, _, last = service.get(ids[1])
    assert last.actor == "Ana" and comment.version == 2


def test_engine_batch_write_counts_the_rows_it_matched(client, service):
    """The batch's UPDATE (one statement for all rows on PostgreSQL, one per row on SQLite)
    reports how many rows still matched: a row changed behind the engine's back without a
    decision of its own (so no conflicting decision refuses the batch) sends the batch
    through one by one, and that comment is left as it was found."""
    from sqlalchemy import update

    from services.comments.models import Comment

    ids = [post(client, f"batch write {i}") for i in range(3)]
    loaded = service.pending_batch(ids)
    with service.db.writing() as conn:
        # As every change does, it moves the version on (see plan_transition).
        conn.execute(update(Comment).where(Comment.id == ids[1])
                     .values(status="held", version=Comment.version + 1))
    v = verdict("publish", categories=["none"], findings=[
        {"category": "spam", "score": 0.1, "spans": [[0, 5]]}], scores={"spam": 0.1},
        masked_body="batch")
    decided = service.record_engine_decisions({cid: v for cid in ids}, loaded)
    assert sorted(decided) == sorted([ids[0], ids[2]])
    held, _, last = service.get(ids[1])
    assert held.status == "held" and held.version == 2 and last is None
    for cid in (ids[0], ids[2]):
        comment, _, last = service.get(cid)
        assert (comment.status, comment.version, last.actor) == ("approved", 2, "engine")
        # JSON values land as JSON, not as strings of JSON, and the time keeps its zone.
        assert comment.findings == [f.to_json() for f in v.findings] == [
            {"category": "spam", "score": 0.1, "rule": "", "spans": [[0, 5]], "detail": ""}]
        assert comment.scores == {"spam": 0.1}
        assert comment.categories == ["none"] and comment.policy_version == "policy@test"
        assert comment.decided_at is not None
        # The decision (one INSERT for the batch on PostgreSQL) holds the same, as JSON.
        assert (last.comment_version, last.from_status, last.to_status) == (1, "pending", "approved")
        assert last.findings == comment.findings and last.scores == {"spam": 0.1}
        assert last.categories == ["none"] and last.policy_version == "policy@test"
        assert last.created_at == comment.decided_at


def test_a_small_batch_reads_and_writes_a_few_rows_on_a_table_without_statistics(client, service, mod):
    """PostgreSQL plans the worker's set-based statements (rows and authors passed as JSON
    arrays) without knowing how many rows the arrays hold. On a table it has no statistics
    for (a new database; this machine runs without autovacuum), a batch of one must still
    look its comment and its author up in their indexes, not read every pending or rejected
    comment, which made each lone comment cost the server 7-9 ms of CPU."""
    from sqlalchemy import text

    from services.comments.models import utcnow
    from services.comments.repository import engine_update as _engine_update

    if service.db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's plans; SQLite's are checked by the test below")
    cid = post(client, "The one comment this batch decides.", email="one@example.org")
    with service.db.writing() as conn:
        # Thousands of pending and rejected comments by other authors, and no ANALYZE.
        conn.execute(text(
            "INSERT INTO comments (id, article_id, author, body, status, priority, rank, "
            "categories, findings, scores, version, report_count, created_at, author_ref) "
            "SELECT 'bulk' || g, article_id, 'Bulk', repeat('A comment of a usual length. ', 10), "
            "CASE WHEN g % 3 = 0 THEN 'rejected' ELSE 'pending' END, 'normal', 1, '[]', '[]', "
            "'{}', 1, 0, now(), 'ref' || (g % 500) "
            "FROM generate_series(1, 30000) AS g, (SELECT article_id FROM comments WHERE id = :id) a"),
            {"id": cid})
    row = service.pending_batch([cid])[0][0]
    with service.db.writing() as conn:
        assert _engine_update(conn, [{
            "_id": cid, "_version": row.version, "findings": [], "scores": {}, "policy_version": "p",
            "masked_body": None, "published_body": None, "status": "approved", "priority": "normal",
            "rank": 1, "categories": [], "decided_at": utcnow(), "version": row.version + 1}]) == 1
        assert mod.trusted_among({row.author_ref}, conn) == set()
        seq, fetched = conn.execute(text(
            "SELECT seq_tup_read, idx_tup_fetch FROM pg_stat_xact_user_tables "
            "WHERE relname = 'comments'")).one()
    assert seq == 0 and fetched < 50, (seq, fetched)
    # A full batch: its rows by their ids, not by a walk of every pending comment.
    batch = [f"bulk{g}" for g in range(1, 400) if g % 3][:200]
    with service.db.writing() as conn:
        assert _engine_update(conn, [{
            "_id": bid, "_version": 1, "findings": [], "scores": {}, "policy_version": "p",
            "masked_body": None, "published_body": None, "status": "approved",
            "priority": "normal", "rank": 1, "categories": [], "decided_at": utcnow(),
            "version": 2} for bid in batch]) == 200
        seq, fetched = conn.execute(text(
            "SELECT seq_tup_read, idx_tup_fetch FROM pg_stat_xact_user_tables "
            "WHERE relname = 'comments'")).one()
    assert seq == 0 and fetched < 3 * 200, (seq, fetched)


def test_no_read_of_comments_scans_the_table(client, service, mod, keys):
    """Every query the service makes on comments finds its rows through an index, the partial
    ones (decided comments only) included: SQLite uses those only when the query repeats
    their condition, and a query that forgot it would quietly read the whole table."""
    import re

    from sqlalchemy import event

    if service.db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's query plans; PostgreSQL's depend on its statistics")
    seen: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if "comments" in statement and not statement.lstrip().upper().startswith(("INSERT", "PRAGMA")):
            seen.append((statement, parameters))

    event.listen(service.db.engine, "before_cursor_execute", capture)
    try:
        ids = [post(client, f"Comment {i} on the nasal spray.", author=f"R{i}", email=f"r{i}@example.org")
               for i in range(6)]
        engine(service, ids[0], "publish")
        engine(service, ids[1], "publish")
        engine(service, ids[2], "hold", priority="urgent", categories=["self_harm"])
        engine(service, ids[3], "hold", categories=["medical"])
        engine(service, ids[4], "block", categories=["spam"])
        page = client.get(f"{URL}?limit=1").get_json()
        assert client.get(f"{URL}?limit=1&cursor={page['next_cursor']}").status_code == 200
        queue = client.get("/v1/moderation/queue?limit=1", headers=auth(keys["moderator"])).get_json()
        assert queue["items"][0]["id"] == ids[2]
        assert client.get(f"/v1/moderation/queue?limit=1&cursor={queue['next_cursor']}",
                          headers=auth(keys["moderator"])).status_code == 200
        assert client.get("/v1/moderation/queue?status=reported",
                          headers=auth(keys["moderator"])).status_code == 200
        # The worker's batch: of six ids, the one still pending.
        assert [c.id for c, _ in service.pending_batch(ids)] == [ids[5]]
        mod.trusted_among({service.get(c)[0].author_ref for c in ids})
        service.stale_pending(0)
        client.post(f"/v1/comments/{ids[0]}/reports", json={"reason": "spam"})
    finally:
        event.remove(service.db.engine, "before_cursor_execute", capture)
    # The reads that serve decided comments, each through its partial index; the worker's
    # batch by its ids, whatever else is pending.
    expected = {"comments.id IN (": "sqlite_autoindex_comments_1 (id=?)",
                "comments.article_id = ?": "ix_comments_public",
                "ORDER BY comments.rank": "ix_comments_queue",
                "comments.author_ref = r.value": "ix_comments_author_status"}
    found = {marker: 0 for marker in expected}
    wrong = []
    with service.db.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        for statement, parameters in seen:
            plan = [row[3] for row in raw.execute(f"EXPLAIN QUERY PLAN {statement}", parameters or ())]
            if any(re.search(r"\bSCAN comments\b(?! USING (COVERING )?INDEX)", p) for p in plan):
                wrong.append((statement, plan))
            for marker, index in expected.items():
                if marker in statement:
                    found[marker] += 1
                    if not any(index in p for p in plan):
                        wrong.append((statement, plan))
    assert all(found.values()), found
    assert wrong == []


def test_the_bootstrap_admin_key_is_made_once_never_restored_and_must_be_strong(settings, service):
    import secrets
    from dataclasses import replace

    from services.api import create_app
    from services.comments.errors import Invalid
    from services.comments.models import ApiKey

    for weak in ("changeme", "x" * 64, "dev-" + secrets.token_urlsafe(18), "abcdef0123" * 3):
        with pytest.raises(Invalid):
            create_app(replace(settings, bootstrap_token=weak), service=service)
    token = secrets.token_urlsafe(32)
    app = create_app(replace(settings, bootstrap_token=token), service=service)
    mod = app.extensions["triage.moderation"]
    (row,) = [k for k in mod.list_keys() if k.role == "admin"]
    assert row.prefix == "" and token[:4] not in row.prefix
    assert mod.authenticate(token) is not None
    mod.revoke_key(row.id)
    create_app(replace(settings, bootstrap_token=token), service=service)  # a restart
    assert mod.authenticate(token) is None, "a revoked bootstrap key stays revoked"
    # A new token while an admin key lives is ignored.
    _, admin = mod.create_key("Root", "admin")
    other = secrets.token_hex(32)
    create_app(replace(settings, bootstrap_token=other), service=service)
    assert mod.authenticate(other) is None
    with service.db.session() as s:
        assert s.query(ApiKey).count() == 2


def test_an_unverified_email_neither_lends_trust_nor_gets_its_owner_banned(client, service, mod, keys):
    def post_from(ip, body):  # type: ignore[no-untyped-def]
        r = client.post(URL, json={"author": "Vic", "body": body, "email": "vic@example.org"},
                        environ_overrides={"REMOTE_ADDR": ip})
        assert r.status_code == 202
        return r.get_json()["id"]

    h = auth(keys["moderator"])
    own = [post_from("10.1.1.1", f"good {i}") for i in range(3)]
    for cid in own:
        engine(service, cid, "publish", masked="x")
    victim = service.get(own[0])[0].author_ref
    assert mod.is_trusted(victim)
    borrowed = service.get(post_from("10.6.6.6", "I am Vic, trust me"))[0].author_ref
    assert borrowed != victim and not mod.is_trusted(borrowed)
    assert client.post(f"/v1/moderation/authors/{borrowed}/ban", json={}, headers=h).status_code == 200
    assert not mod.is_banned(victim) and mod.is_banned(borrowed)


def test_a_self_harm_report_alerts_even_on_a_comment_a_moderator_approved_after_an_urgent_hold(
        client, service, keys, events):
    cid = post(client, "An engine crisis a moderator then approved")
    engine(service, cid, "hold", priority="urgent", categories=["self_harm"])
    h = auth(keys["moderator"])
    assert client.post(f"/v1/moderation/comments/{cid}/decision", json={"action": "approve"},
                       headers={**h, "If-Match": '"2"'}).status_code == 200
    client.post(f"/v1/comments/{cid}/reports", json={"reason": "self_harm"})
    held = client.get("/v1/moderation/queue", headers=h).get_json()["items"]
    assert [(i["id"], i["raised_by"]) for i in held] == [(cid, "reports")]
