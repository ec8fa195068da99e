"""What an attacker or a bad day can do at the API's edge: Redis keys, cursors, limits, ids."""

from __future__ import annotations

import base64
import json
import socket
import threading
import uuid
from dataclasses import replace

import pytest
import redis

from services import cache as cache_module
from services.api import create_app
from services.cache import ReadCache
from tests.conftest import DEMO, REDIS_URL
from tests.integration.test_api import assert_problem

URL = f"/v1/articles/{DEMO}/comments"


def _ip() -> str:
    """A client address no earlier run has counted against."""
    n = uuid.uuid4().int
    return f"10.{n % 250}.{(n >> 8) % 250}.{(n >> 16) % 250}"


def test_an_unknown_article_is_404_and_leaves_no_key_in_redis(client) -> None:
    r = redis.Redis.from_url(REDIS_URL)
    slug = "x" * 4000 + uuid.uuid4().hex
    resp = client.get(f"/v1/articles/{slug}/comments")
    assert_problem(resp, 404)
    assert r.exists(f"triage:gen:{slug}") == 0


def test_generation_keys_expire(client) -> None:
    r = redis.Redis.from_url(REDIS_URL)
    r.delete(f"triage:gen:{DEMO}")
    assert client.get(URL).status_code == 200
    ttl = r.ttl(f"triage:gen:{DEMO}")
    assert 0 < ttl <= cache_module.GENERATION_TTL
    # A replaced token expires too.
    ReadCache(REDIS_URL).invalidate(DEMO)
    assert 0 < r.ttl(f"triage:gen:{DEMO}") <= cache_module.GENERATION_TTL


def test_in_process_maps_are_bounded(monkeypatch, service) -> None:
    monkeypatch.setattr(cache_module, "MAX_KEPT", 5)
    reader = ReadCache(REDIS_URL, token_ttl=60, heard_token_ttl=60)
    for i in range(20):
        reader.generation(f"bounded-{uuid.uuid4().hex}-{i}")
        assert len(reader._tokens) <= 5
        reader.etag(uuid.uuid4().hex, 10, None)
        assert len(reader._etags) <= 5
    for i in range(10_010):
        service._article_ids[f"a{i}"] = i  # as if that many articles had been read
    service.add_article("one-more", "One more")
    service.article_id("one-more")
    assert len(service._article_ids) <= 10_000


def _cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize("value", [[1, "x"], [1, 2, "x"], ["2024-01-01T00:00:00Z", 5],
                                   ["2024-01-01T00:00:00Z", "a\u0000b"], [10**40, "2024-01-01", "x"],
                                   {"a": 1}, "x", None])
def test_a_crafted_cursor_is_400_on_the_public_list_and_the_queue(client, service, value) -> None:
    _row, key = client.application.extensions["triage.moderation"].create_key("ana", "moderator")
    cursor = _cursor(value)
    assert_problem(client.get(URL, query_string={"cursor": cursor}), 400)
    resp = client.get("/v1/moderation/queue", query_string={"cursor": cursor},
                      headers={"Authorization": f"Bearer {key}"})
    assert_problem(resp, 400)


class _HungRedis:
    """A TCP server that accepts connections and never answers: Redis on a very bad day."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        self.listener.close()
        for c in self.conns:
            c.close()


def test_rate_limits_fail_open_fast_when_redis_hangs(settings, service) -> None:
    hung = _HungRedis()
    try:
        limited = replace(settings, ratelimit_enabled=True,
                          ratelimit_storage_url=f"redis://127.0.0.1:{hung.port}/0")
        client = create_app(limited, service=service).test_client()
        done: list[int] = []

        def post() -> None:
            done.append(client.post(URL, json={"author": "Hung", "body": "still accepted"},
                                    environ_overrides={"REMOTE_ADDR": _ip()}).status_code)

        t = threading.Thread(target=post, daemon=True)
        t.start()
        # Before, the limiter waited 5 s on the hung Redis (10 s a POST with both limits' calls);
        # now it gives up after REDIS_REQUEST_TIMEOUT (0.25 s) and lets the comment in.
        t.join(timeout=3)
        assert done == [202]
    finally:
        hung.close()


def test_a_retry_with_the_same_idempotency_key_is_replayed_not_limited(settings, service) -> None:
    limited = replace(settings, ratelimit_enabled=True, ratelimit_post_ip="1 per minute",
                      ratelimit_post_author="1 per minute")
    client = create_app(limited, service=service).test_client()
    ip, key = _ip(), uuid.uuid4().hex
    body = {"author": f"R{uuid.uuid4().hex[:8]}", "body": "only once, please"}
    first = client.post(URL, json=body, headers={"Idempotency-Key": key},
                        environ_overrides={"REMOTE_ADDR": ip})
    assert first.status_code == 202
    again = client.post(URL, json=body, headers={"Idempotency-Key": key},
                        environ_overrides={"REMOTE_ADDR": ip})
    assert again.status_code == 202, again.get_data(as_text=True)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["id"] == first.get_json()["id"]
    # A new comment from the same client is still limited.
    other = client.post(URL, json={**body, "body": "another"}, headers={"Idempotency-Key": "k2"},
                        environ_overrides={"REMOTE_ADDR": ip})
    assert_problem(other, 429)


def test_metrics_answer_the_loopback_or_the_key_holder(settings, service) -> None:
    open_ = create_app(settings, service=service).test_client()
    assert open_.get("/metrics").status_code == 200  # the test client is 127.0.0.1
    assert_problem(open_.get("/metrics", environ_overrides={"REMOTE_ADDR": "203.0.113.7"}), 403)
    keyed = create_app(replace(settings, metrics_key="s3cret-metrics-key"), service=service).test_client()
    far = {"REMOTE_ADDR": "203.0.113.7"}
    assert_problem(keyed.get("/metrics", environ_overrides=far), 401)
    assert_problem(keyed.get("/metrics", headers={"Authorization": "Bearer nope"},
                             environ_overrides=far), 401)
    ok = keyed.get("/metrics", headers={"Authorization": "Bearer s3cret-metrics-key"},
                   environ_overrides=far)
    assert ok.status_code == 200 and "triage_http_requests_total" in ok.get_data(as_text=True)


@pytest.mark.parametrize("sent", ["x" * 65, "<script>alert(1)</script>", "a b", "\u00e9t\u00e9",
                                  "-leading-dash", "evil\u202eid"])
def test_a_client_request_id_is_kept_only_as_a_short_safe_token(client, sent) -> None:
    resp = client.get("/healthz", headers={"X-Request-ID": sent})
    rid = resp.headers["X-Request-ID"]
    assert rid != sent and len(rid) == 32 and int(rid, 16) >= 0


def test_a_safe_client_request_id_is_kept(client) -> None:
    resp = client.get("/healthz", headers={"X-Request-ID": "edge-7f3a.9:1"})
    assert resp.headers["X-Request-ID"] == "edge-7f3a.9:1"
