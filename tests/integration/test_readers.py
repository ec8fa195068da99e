"""The readers' API over the real database: threads, order, counts, the Atom feed, articles,
CORS for allowed origins only, and nothing private in any of it."""

from __future__ import annotations

import json
from dataclasses import replace

import feedparser
import pytest

from services.comments.readers import THREAD_DEPTH
from tests.conftest import DEMO

URL = f"/v1/articles/{DEMO}/comments"
SITE = "https://news.example"


@pytest.fixture
def mod(app):  # type: ignore[no-untyped-def]
    return app.extensions["triage.moderation"]


def post(client, body, author="Reader", parent=None, email=None, origin=None):  # type: ignore[no-untyped-def]
    payload = {"author": author, "body": body, "parent_id": parent, "email": email}
    headers = {"Origin": origin} if origin else {}
    resp = client.post(URL, data=json.dumps(payload), content_type="application/json", headers=headers)
    assert resp.status_code == 202, resp.get_data(as_text=True)
    return resp.get_json()["id"]


def approve(mod, cid):  # type: ignore[no-untyped-def]
    mod.decide(cid, "approve", actor="Ana", version=None)


def published(client, mod, body, author="Reader", parent=None, email=None):  # type: ignore[no-untyped-def]
    cid = post(client, body, author, parent, email)
    approve(mod, cid)
    return cid


def test_thread_nests_replies_and_lifts_a_reply_whose_parent_was_unpublished(client, mod):
    a = published(client, mod, "first thread")
    b = published(client, mod, "second thread")
    a1 = published(client, mod, "reply to first", parent=a)
    a11 = published(client, mod, "reply to the reply", parent=a1)
    b1 = published(client, mod, "reply to second", parent=b)
    # b is taken down after its reply was published: the reply moves to the top level.
    mod.decide(b, "reject", actor="Ana", version=None, reason="spam")
    doc = client.get(URL + "?view=thread").get_json()
    ids = [i["id"] for i in doc["items"]]
    assert ids == [a, b1]
    first = doc["items"][0]
    assert [r["id"] for r in first["replies"]] == [a1]
    assert first["replies"][0]["replies"][0]["id"] == a11
    lifted = doc["items"][1]
    assert lifted["parent_id"] is None and lifted["replies"] == []
    assert b not in json.dumps(doc)  # no trace of the rejected comment, not even its id
    # The flat view says the same about parents.
    flat = {i["id"]: i for i in client.get(URL).get_json()["items"]}
    assert b not in flat and flat[b1]["parent_id"] is None and flat[a11]["parent_id"] == a1


def test_thread_depth_is_limited_and_deeper_replies_follow_as_siblings(client, mod):
    chain = [published(client, mod, "root")]
    for depth in range(1, THREAD_DEPTH + 2):
        chain.append(published(client, mod, f"depth {depth}", parent=chain[-1]))
    node = client.get(URL + "?view=thread").get_json()["items"][0]
    for expected in chain[1:THREAD_DEPTH - 1]:
        assert len(node["replies"]) == 1
        node = node["replies"][0]
        assert node["id"] == expected
    deepest = [r["id"] for r in node["replies"]]
    assert deepest == chain[THREAD_DEPTH - 1:]
    assert all(r["replies"] == [] for r in node["replies"])
    # Each still names the comment it answers.
    assert [r["parent_id"] for r in node["replies"]] == chain[THREAD_DEPTH - 2:-1]


@pytest.mark.parametrize("view", ["flat", "thread"])
def test_order_and_an_opaque_stable_cursor(client, mod, view):
    ids = [published(client, mod, f"comment {i}") for i in range(5)]
    for order, expected in (("oldest", ids), ("newest", ids[::-1])):
        seen, cursor = [], None
        while True:
            q = f"?view={view}&order={order}&limit=2" + (f"&cursor={cursor}" if cursor else "")
            doc = client.get(URL + q).get_json()
            seen += [i["id"] for i in doc["items"]]
            cursor = doc["next_cursor"]
            if cursor is None:
                break
            if len(seen) == 2:
                # A comment published meanwhile neither repeats nor skips anything.
                published(client, mod, "late comment")
        assert [i for i in seen if i in ids] == expected
        assert len(set(seen)) == len(seen)
    bad = client.get(URL + "?order=sideways")
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["field"] == "order"


def test_list_is_cdn_cacheable_and_each_view_has_its_own_etag(client, mod):
    published(client, mod, "hello")
    flat = client.get(URL)
    thread = client.get(URL + "?view=thread")
    assert "stale-while-revalidate" in flat.headers["Cache-Control"]
    assert "max-age=" in flat.headers["Cache-Control"]
    assert flat.headers["ETag"] != thread.headers["ETag"]
    again = client.get(URL + "?view=thread", headers={"If-None-Match": thread.headers["ETag"]})
    assert again.status_code == 304
    assert "replies" in thread.get_json()["items"][0] and "replies" not in flat.get_json()["items"][0]


def test_counts_one_and_many(client, mod, service):
    service.add_article("other-article", "Another")
    published(client, mod, "one")
    published(client, mod, "two")
    post(client, "pending, not counted")
    assert client.get(URL + "/count").get_json() == {"article": DEMO, "count": 2}
    # Counts are cached under the article's read token: a decision refreshes them at once.
    third = published(client, mod, "three")
    assert client.get(URL + "/count").get_json()["count"] == 3
    mod.decide(third, "reject", actor="Ana", version=None)
    assert client.get(f"/v1/counts?articles={DEMO}").get_json()["counts"][DEMO] == 2
    assert client.get("/v1/articles/nope/comments/count").status_code == 404
    doc = client.get(f"/v1/counts?articles={DEMO},other-article,unknown").get_json()
    assert doc == {"counts": {DEMO: 2, "other-article": 0, "unknown": 0}}
    assert client.get("/v1/counts?articles=a%00b").status_code == 422  # no control characters
    many = ",".join(f"a{i}" for i in range(101))
    resp = client.get(f"/v1/counts?articles={many}")
    assert resp.status_code == 422 and resp.mimetype == "application/problem+json"
    assert client.get("/v1/counts").get_json() == {"counts": {}}


def test_atom_feed_is_valid_and_holds_only_approved_text(client, mod):
    published(client, mod, "An <b>approved</b> comment & more", author="Maya", email="maya@example.org")
    held = post(client, "a held secret comment")
    mod.decide(held, "hold", actor="Ana", version=None)
    resp = client.get(URL + ".atom")
    assert resp.status_code == 200 and resp.mimetype == "application/atom+xml"
    feed = feedparser.parse(resp.data)
    assert not feed.bozo, feed.bozo_exception
    assert feed.version == "atom10"
    assert "Ketamine" in feed.feed.title
    assert len(feed.entries) == 1
    entry = feed.entries[0]
    assert entry.author == "Maya"
    assert entry.content[0].value == "An <b>approved</b> comment & more"
    assert entry.content[0].type == "text/plain"
    text = resp.get_data(as_text=True)
    assert "maya@example.org" not in text and "held secret" not in text
    assert client.get("/v1/articles/nope/comments.atom").status_code == 404


def test_admin_puts_articles_and_a_closed_article_takes_no_comments(client, mod):
    _, admin = mod.create_key("Root", "admin")
    _, moderator = mod.create_key("Ana", "moderator")
    h = {"Authorization": f"Bearer {admin}"}
    body = {"title": "New piece", "url": "https://news.example/new-piece", "open": True}
    resp = client.put("/v1/admin/articles/new-piece", json=body, headers=h)
    assert resp.status_code == 201 and resp.get_json()["open"] is True
    assert client.put("/v1/admin/articles/new-piece", json=body,
                      headers={"Authorization": f"Bearer {moderator}"}).status_code == 403
    assert client.put("/v1/admin/articles/new-piece", json=body).status_code == 401
    assert client.put("/v1/admin/articles/new-piece", json={"title": ""}, headers=h).status_code == 422
    assert client.put("/v1/admin/articles/new-piece", json={**body, "url": "javascript:alert(1)"},
                      headers=h).status_code == 422
    ok = client.post("/v1/articles/new-piece/comments", json={"author": "A", "body": "open"})
    assert ok.status_code == 202
    resp = client.put("/v1/admin/articles/new-piece", json={**body, "open": False}, headers=h)
    assert resp.status_code == 200 and resp.get_json()["open"] is False
    closed = client.post("/v1/articles/new-piece/comments", json={"author": "A", "body": "closed"})
    assert closed.status_code == 409 and closed.mimetype == "application/problem+json"
    # The feed links to the article's own page.
    feed = feedparser.parse(client.get("/v1/articles/new-piece/comments.atom").data)
    assert feed.feed.link == "https://news.example/new-piece"


@pytest.fixture
def cors_client(settings, service):  # type: ignore[no-untyped-def]
    from services.api import create_app

    app = create_app(replace(settings, allowed_origins=f"{SITE}, http://127.0.0.1:8000"), service=service)
    return app.test_client()


def test_cors_answers_allowed_origins_and_says_nothing_to_others(cors_client, client):
    ok = cors_client.get(URL, headers={"Origin": SITE})
    assert ok.headers["Access-Control-Allow-Origin"] == SITE
    assert "ETag" in ok.headers.get("Access-Control-Expose-Headers", "")
    assert "Origin" in ok.headers.get("Vary", "")
    pre = cors_client.options(URL, headers={
        "Origin": SITE, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,idempotency-key"})
    assert pre.status_code in (200, 204)
    assert pre.headers["Access-Control-Allow-Origin"] == SITE
    assert "POST" in pre.headers["Access-Control-Allow-Methods"]
    assert "idempotency-key" in pre.headers["Access-Control-Allow-Headers"].lower()
    for path in (URL, URL + "/count", f"/v1/counts?articles={DEMO}", URL + ".atom"):
        assert cors_client.get(path, headers={"Origin": SITE}).headers.get(
            "Access-Control-Allow-Origin") == SITE, path
    for origin in ("https://evil.example", "null", SITE + ".evil.example", "http://news.example"):
        for resp in (cors_client.get(URL, headers={"Origin": origin}),
                     cors_client.options(URL, headers={"Origin": origin,
                                                       "Access-Control-Request-Method": "POST"})):
            assert not any(k.lower().startswith("access-control-") for k in resp.headers.keys()), origin
    # Moderators' routes are never open to other origins.
    resp = cors_client.get("/v1/moderation/queue", headers={"Origin": SITE})
    assert "Access-Control-Allow-Origin" not in resp.headers
    # Without ALLOWED_ORIGINS (the default) no origin is allowed, and never `*`.
    resp = client.get(URL, headers={"Origin": SITE})
    assert "Access-Control-Allow-Origin" not in resp.headers


def test_widget_script_and_demo_page(client):
    js = client.get("/widget.js", headers={"Accept-Encoding": "gzip"})
    assert js.status_code == 200 and js.mimetype == "application/javascript"
    assert js.headers["Content-Encoding"] == "gzip" and len(js.data) < 15 * 1024
    assert client.get("/widget.js", headers={"If-None-Match": js.headers["ETag"]}).status_code == 304
    plain = client.get("/widget.js").get_data(as_text=True)
    assert "__TRIAGE_EVENTS__" not in plain and "innerHTML" not in plain
    page = client.get("/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Ketamine a new hope" in html
    assert f'<div data-triage-article="{DEMO}"></div>' in html
    assert 'src="http://localhost/widget.js" async' in html
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
