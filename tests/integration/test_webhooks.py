"""Outbound webhooks: admin routes, signing, SSRF checks, and deliveries by a real Celery worker
(`triage webhooks-worker`, its own queue) and real beat to a real receiver on loopback that
checks the signature and the timestamp."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis
import urllib3

from services.db import Database
from services.events import RedisPublisher
from services.webhooks import pump as stream
from services.webhooks import signing, ssrf
from services.webhooks.service import Policy, WebhookService
from tests.conftest import DEMO, wait_for

SECRET = "whsec_test_0123456789abcdef"


# -- a receiver, as a site would write one ----------------------------------------------------


@dataclass
class Receiver:
    """An HTTP server on loopback that verifies each request as README tells receivers to."""

    secret: str
    statuses: list[int] = field(default_factory=list)  # answers to give, then 200
    received: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                header = self.headers.get("Triage-Signature", "")
                parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
                fresh = abs(time.time() - int(parts.get("t", "0"))) < 300
                if not (fresh and signing.verify(receiver.secret, header, body)):
                    receiver.rejected.append(header)
                    self.send_response(401)
                    self.end_headers()
                    return
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                if status == 200:
                    receiver.received.append({"headers": dict(self.headers), "body": json.loads(body)})
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(SECRET).start()
    yield r
    r.stop()


# -- signing and SSRF -------------------------------------------------------------------------


def test_signature_covers_timestamp_and_body_and_old_ones_are_refused():
    body = b'{"event":"comment.held"}'
    now = int(time.time())
    header = signing.signature(SECRET, now, body)
    assert signing.verify(SECRET, header, body)
    assert not signing.verify("whsec_other_secret_000000", header, body)
    assert not signing.verify(SECRET, header, body + b" ")
    # The same signature replayed ten minutes later is refused.
    assert not signing.verify(SECRET, header, body, now=now + 600)
    # A timestamp changed to look fresh no longer matches the signature.
    forged = header.replace(f"t={now}", f"t={now + 600}")
    assert not signing.verify(SECRET, forged, body, now=now + 600)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/x", "http://localhost:8080/", "http://10.1.2.3/", "http://192.168.0.1/",
    "http://172.16.5.4/", "http://169.254.169.254/latest/meta-data/", "http://[::1]/",
    "http://[fe80::1]/", "http://0x7f000001/", "http://0.0.0.0/", "http://[::ffff:127.0.0.1]/",
    "ftp://93.184.216.34/", "file:///etc/passwd", "http://user:pw@93.184.216.34/",
    "http://no-such-host.invalid/",
])
def test_private_and_odd_urls_are_refused(url):
    with pytest.raises(ssrf.Forbidden):
        ssrf.check_url(url, allow_private=False)


def test_public_addresses_pass_and_the_setting_allows_loopback():
    ssrf.check_url("https://93.184.216.34/hooks", allow_private=False)
    ssrf.check_url("http://127.0.0.1:9/hooks", allow_private=True)


def test_the_address_is_checked_again_when_connecting(receiver):
    # As if the name had resolved to a public address at registration and to loopback now
    # (DNS rebinding): the connection is refused before a byte is sent.
    manager = ssrf.pool_manager(allow_private=False, timeout=2)
    with pytest.raises(urllib3.exceptions.HTTPError):
        manager.request("POST", receiver.url, body=b"{}", retries=False)
    assert receiver.received == [] and receiver.rejected == []
    allowed = ssrf.pool_manager(allow_private=True, timeout=2)
    assert allowed.request("POST", receiver.url, body=b"{}", retries=False).status == 401


# -- admin routes ------------------------------------------------------------------------------


@pytest.fixture
def admin(app) -> dict[str, str]:  # type: ignore[no-untyped-def]
    _, key = app.extensions["triage.moderation"].create_key("Root", "admin")
    return {"Authorization": f"Bearer {key}"}


def test_admins_register_list_update_and_delete_endpoints(client, app, admin):
    hooks = "/v1/admin/webhooks"
    body = {"url": "https://93.184.216.34/hooks", "events": ["comment.held", "comment.urgent"]}
    assert client.post(hooks, json=body).status_code == 401
    _, mod_key = app.extensions["triage.moderation"].create_key("Ana", "moderator")
    assert client.post(hooks, json=body, headers={"Authorization": f"Bearer {mod_key}"}).status_code == 403
    created = client.post(hooks, json=body, headers=admin)
    assert created.status_code == 201
    made = created.get_json()
    assert made["secret"].startswith("whsec_") and made["enabled"] is True
    assert created.headers["Location"] == f"{hooks}/{made['id']}"
    listed = client.get(hooks, headers=admin).get_json()["items"]
    assert [e["id"] for e in listed] == [made["id"]] and "secret" not in listed[0]
    own = client.post(hooks, json={**body, "secret": SECRET}, headers=admin).get_json()
    assert "secret" not in own and own["secret_hint"] == SECRET[:4] + "…"
    patched = client.patch(f"{hooks}/{made['id']}", json={"events": ["comment.published"]}, headers=admin)
    assert patched.get_json()["events"] == ["comment.published"]
    off = client.patch(f"{hooks}/{made['id']}", json={"enabled": False}, headers=admin).get_json()
    assert off["enabled"] is False and off["disabled_reason"] == "disabled by an admin"
    assert client.delete(f"{hooks}/{made['id']}", headers=admin).status_code == 204
    assert client.get(f"{hooks}/{made['id']}", headers=admin).status_code == 404


@pytest.mark.parametrize("body, field_name", [
    ({"url": "http://127.0.0.1:9/hooks", "events": ["comment.held"]}, "url"),
    ({"url": "http://169.254.169.254/", "events": ["comment.held"]}, "url"),
    ({"url": "https://93.184.216.34/", "events": ["comment.exploded"]}, "events"),
    ({"url": "https://93.184.216.34/", "events": []}, "events"),
    ({"url": "https://93.184.216.34/", "events": ["comment.held"], "secret": "short"}, "secret"),
    ({"url": "https://93.184.216.34/", "events": ["comment.held"], "extra": 1}, "extra"),
])
def test_bad_endpoints_are_422_naming_the_field(client, admin, body, field_name):
    resp = client.post("/v1/admin/webhooks", json=body, headers=admin)
    assert resp.status_code == 422 and resp.mimetype == "application/problem+json"
    assert any(e["field"] == field_name for e in resp.get_json()["errors"])


# -- deliveries through real processes -------------------------------------------------------


@pytest.fixture
def hook_settings(queue_settings):  # type: ignore[no-untyped-def]
    s = replace(queue_settings, webhook_queue=f"webhooks-test-{uuid.uuid4().hex[:8]}",
                webhook_allow_private_addresses=True, webhook_backoff=0.3,
                webhook_max_attempts=3, webhook_disable_after=2, webhook_timeout=3.0,
                webhook_pump_interval=0.3)
    client = redis.Redis.from_url(s.redis_url)
    stream.ensure_group(client)  # events from now on reach the endpoints
    yield s
    client.delete(s.webhook_queue)


def hook_env(s) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"WEBHOOK_QUEUE": s.webhook_queue, "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",
            "WEBHOOK_BACKOFF": str(s.webhook_backoff), "WEBHOOK_MAX_ATTEMPTS": str(s.webhook_max_attempts),
            "WEBHOOK_DISABLE_AFTER": str(s.webhook_disable_after),
            "WEBHOOK_TIMEOUT": str(s.webhook_timeout), "WEBHOOK_PUMP_INTERVAL": str(s.webhook_pump_interval)}


@pytest.fixture
def hooks(hook_settings, process_factory):  # type: ignore[no-untyped-def]
    """A webhooks worker and beat (the pump), as `make run` starts them."""
    env = hook_env(hook_settings)
    process_factory(hook_settings, "webhooks-worker", "-c", "4", env=env)
    process_factory(hook_settings, "beat", env=env)
    db = Database(hook_settings.database_url)
    yield WebhookService(db, Policy.from_settings(hook_settings))
    db.dispose()


def publish(settings, kind: str, payload: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    RedisPublisher(settings.redis_url).publish(kind, payload)


def test_a_held_comment_reaches_the_receiver_signed_with_its_stable_id(
        hooks, hook_settings, receiver, worker_factory, live_client):
    view, _ = hooks.create(receiver.url, ["comment.submitted", "comment.held", "comment.urgent"], SECRET)
    worker_factory()
    resp = live_client.post(f"/v1/articles/{DEMO}/comments", json={
        "author": "Sam", "body": "I can't do this anymore, I am going to end my life tonight."})
    cid = resp.get_json()["id"]
    # The worker loads the engine (model and sentence encoder) first: give it time on a busy machine.
    wait_for(lambda: len(receiver.received) >= 3, timeout=240)
    events = {r["body"]["event"]: r for r in receiver.received}
    assert set(events) == {"comment.submitted", "comment.held", "comment.urgent"}
    for kind, r in events.items():
        assert r["body"]["data"]["id"] == cid and r["body"]["data"]["article"] == DEMO
        assert r["headers"]["Triage-Event"] == kind
        assert "Sam" not in json.dumps(r["body"])  # events never carry the author or the body
    assert events["comment.urgent"]["body"]["data"]["priority"] == "urgent"
    assert receiver.rejected == []
    # the delivery is recorded once the receiver has answered, a moment after it saw the event
    wait_for(lambda: {d["status"] for d in hooks.deliveries(view["id"])} == {"delivered"}, timeout=20)
    log = hooks.deliveries(view["id"])
    assert {d["status"] for d in log} == {"delivered"} and len(log) == 3


def test_failures_are_retried_with_backoff_then_delivered(hooks, hook_settings, receiver):
    view, _ = hooks.create(receiver.url, ["comment.published"], SECRET)
    receiver.statuses = [500, 503]
    publish(hook_settings, "comment.published", {"id": "c-retry", "article": DEMO})
    wait_for(lambda: receiver.received, timeout=60)
    wait_for(lambda: hooks.deliveries(view["id"])[0]["status"] == "delivered", timeout=20)
    d = hooks.deliveries(view["id"])[0]
    assert d["attempts"] == 3 and d["last_status_code"] == 200 and d["last_error"] is None


def test_an_endpoint_that_keeps_failing_is_disabled_with_a_reason_and_can_be_re_enabled(
        hooks, hook_settings, receiver):
    view, _ = hooks.create(receiver.url, ["comment.rejected"], SECRET)
    receiver.statuses = [500] * 6  # two deliveries of three attempts each
    for i in range(2):
        publish(hook_settings, "comment.rejected", {"id": f"c-fail-{i}", "article": DEMO})
    wait_for(lambda: not hooks.get(view["id"])["enabled"], timeout=60)
    e = hooks.get(view["id"])
    assert "2 failed deliveries in a row" in e["disabled_reason"] and "HTTP 500" in e["disabled_reason"]
    assert [d["status"] for d in hooks.deliveries(view["id"])] == ["failed", "failed"]
    # Disabled: new events make no deliveries.
    publish(hook_settings, "comment.rejected", {"id": "c-while-off", "article": DEMO})
    time.sleep(2)
    assert len(hooks.deliveries(view["id"])) == 2
    again = hooks.update(view["id"], enabled=True)
    assert again["enabled"] and again["consecutive_failures"] == 0 and again["disabled_reason"] is None
    publish(hook_settings, "comment.rejected", {"id": "c-back", "article": DEMO})
    wait_for(lambda: [r for r in receiver.received if r["body"]["data"]["id"] == "c-back"], timeout=30)


def test_a_failed_delivery_is_redelivered_from_the_admin_route(hooks, hook_settings, receiver, tmp_path):
    from services.api import create_app
    from services.comments.service import CommentService

    view, _ = hooks.create(receiver.url, ["comment.reported"], SECRET)
    receiver.statuses = [500] * 3
    publish(hook_settings, "comment.reported", {"id": "c-again", "article": DEMO})
    wait_for(lambda: hooks.deliveries(view["id"], status="failed"), timeout=60)
    failed = hooks.deliveries(view["id"])[0]
    app = create_app(hook_settings, service=CommentService(Database(hook_settings.database_url)))
    _, key = app.extensions["triage.moderation"].create_key("Root", "admin")
    h = {"Authorization": f"Bearer {key}"}
    client = app.test_client()
    resp = client.post(f"/v1/admin/webhooks/{view['id']}/deliveries/{failed['id']}/redeliver", headers=h)
    assert resp.status_code == 202
    wait_for(lambda: [r for r in receiver.received if r["body"]["data"]["id"] == "c-again"], timeout=30)
    log = client.get(f"/v1/admin/webhooks/{view['id']}/deliveries", headers=h).get_json()["items"]
    assert [d["status"] for d in log] == ["delivered", "failed"]
    assert log[0]["payload"] == log[1]["payload"] and log[0]["event_id"] != log[1]["event_id"]
    assert client.post(f"/v1/admin/webhooks/{view['id']}/deliveries/nope/redeliver",
                       headers=h).status_code == 404


def test_deliveries_have_their_own_queue(hook_settings):
    from workers.celery_app import make_celery

    app = make_celery(hook_settings)
    routes = app.conf.task_routes
    assert routes["webhooks.*"]["queue"] == hook_settings.webhook_queue != hook_settings.queue_name


def test_the_readme_receiver_snippet_verifies_our_signature():
    from services.config import ROOT

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    snippet = text.split("```python\n", 1)[1].split("```", 1)[0]
    scope: dict[str, Any] = {}
    exec(snippet, scope)  # noqa: S102 - the README's own code, run as a receiver would
    body = b'{"event":"comment.held","data":{"id":"c1"}}'
    header = signing.signature(SECRET, int(time.time()), body)
    assert scope["verify"](SECRET, header, body)
    assert not scope["verify"](SECRET, header, body.replace(b"c1", b"c2"))
    assert not scope["verify"](SECRET, signing.signature(SECRET, int(time.time()) - 3600, body), body)
