"""Coral Talk's external moderation phase, with requests built and signed as Coral builds them:
`JSON.stringify(request, null, 2)` and `sha256=<hex HMAC>` per active secret, comma-joined
(coralproject/talk, services/fetch/fetch.ts and models/settings/signingSecret/helpers.ts).
Where Node.js is installed, Node itself serialises and signs each request."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import func, select

from services.comments.service import CommentService
from services.config import Settings
from services.db import Database
from services.events import InMemoryPublisher
from services.integrations.coral import CoralPhase
from services.integrations.models import CoralDecision
from tests.conftest import REDIS_URL, fresh_database_url, wait_for

OLD = "ems_old0123456789abcdef0123456789abcdef"
NEW = "ems_new0123456789abcdef0123456789abcdef"
URL = "/v1/integrations/coral"

# Made by Node.js from the request below with Coral's own two lines (JSON.stringify with an
# indent of 2; crypto.createHmac("sha256", secret).update(body).digest().toString("hex")),
# signed with OLD then NEW: a rotation in progress.
VECTOR_BODY = (
    '{\n  "action": "NEW",\n  "comment": {\n    "body": "Merci, très utile — 谢谢 🙏 «ketamine»",\n'
    '    "parentID": null\n  },\n  "author": {\n    "id": "u-1",\n    "role": "COMMENTER"\n  },\n'
    '  "story": {\n    "id": "s-1",\n    "url": "https://news.example/s-1"\n  },\n  "site": {\n'
    '    "id": "site-1"\n  },\n  "tenantID": "t-1",\n  "tenantDomain": "news.example"\n}'
).encode()
VECTOR_SIGNATURE = (
    "sha256=dab3fc9cf86cf6801e0f4b04c349c29be4c06e12c4a828069c1b89969d56b6b8,"
    "sha256=f31e38abc80fa59484c77e9616144fa597dfc923200deac3150e2ef5643d5198"
)

NODE_SIGNER = """
const crypto = require("crypto");
const [data, secrets] = JSON.parse(require("fs").readFileSync(0, "utf8"));
const body = JSON.stringify(data, null, 2);
const signature = secrets
  .map((s) => crypto.createHmac("sha256", s).update(body).digest().toString("hex"))
  .map((h) => `sha256=${h}`).join(",");
process.stdout.write(JSON.stringify({ body, signature }));
"""

TEXTS = {
    "ok": "Thank you for such a careful article. My sister had ketamine treatment and it helped.",
    "spam": "Вuу kеtаminе оnlinе, nо рrеsсriрtiоn: kеtа-shор.example",
    "medical": "Stop taking your antidepressants and just microdose ketamine instead, doctors lie about it.",
    "harassment": "You are a worthless idiot and everyone here hates you, go away.",
    "self_harm": "I can't do this anymore, I am going to end my life tonight.",
    "profanity": "Holy sh1t, this helped",
}


def coral_request(body: str, *, action: str = "NEW", author: str = "u-1", story: str = "s-1",
                  parent: str | None = None) -> dict[str, Any]:
    """The request object in the order Coral's external.ts builds it."""
    return {
        "action": action,
        "comment": {"body": body, "parentID": parent},
        "author": {"id": author, "role": "COMMENTER"},
        "story": {"id": story, "url": f"https://news.example/{story}"},
        "site": {"id": "site-1"},
        "tenantID": "t-1",
        "tenantDomain": "news.example",
    }


def coral_sign(data: dict[str, Any], secrets: list[str]) -> tuple[bytes, str]:
    """(body bytes, X-Coral-Signature) as Coral sends them; by Node.js where it is installed."""
    node = shutil.which("node")
    if node:
        out = subprocess.run([node, "-e", NODE_SIGNER], input=json.dumps([data, secrets]),
                             capture_output=True, text=True, encoding="utf-8", check=True)
        made = json.loads(out.stdout)
        return made["body"].encode("utf-8"), made["signature"]
    body = json.dumps(data, indent=2, ensure_ascii=False).encode("utf-8")
    return body, ",".join(
        "sha256=" + hmac.new(s.encode(), body, hashlib.sha256).hexdigest() for s in secrets)


@pytest.fixture(scope="module")
def coral_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One app for the module: the engine takes seconds to load, once."""
    url = fresh_database_url(tmp_path_factory.mktemp("coral"))
    settings = Settings(database_url=url, redis_url=REDIS_URL, log_level="WARNING", metrics_dir="",
                        ratelimit_enabled=False, author_salt="test-salt",
                        coral_signing_secrets=f"{OLD}, {NEW}",
                        # Generous: these tests are about answers, not speed (see the bench).
                        coral_budget_ms=30000)
    db = Database(url)
    events = InMemoryPublisher()
    svc = CommentService(db, publisher=events, salt=settings.author_salt)
    from services.api import create_app

    app = create_app(settings, service=svc)
    app.extensions["test.events"] = events
    assert app.extensions["triage.coral_engine"].wait(120), "engine did not load"
    yield app
    db.dispose()


@pytest.fixture
def client(coral_app: Any) -> Any:
    coral_app.extensions["test.events"].events.clear()
    return coral_app.test_client()


def send(client: Any, body: bytes, signature: str | None) -> Any:
    headers = {"Content-Type": "application/json", "User-Agent": "Coral Moderation/9.0.0"}
    if signature is not None:
        headers["X-Coral-Signature"] = signature
    return client.post(URL, data=body, headers=headers)


def decide(client: Any, text: str, secrets: list[str] | None = None, **kw: Any) -> Any:
    body, sig = coral_sign(coral_request(text, **kw), secrets or [NEW])
    return send(client, body, sig)


def recorded(app: Any) -> int:
    with app.extensions["triage.service"].db.session() as s:
        return int(s.scalar(select(func.count()).select_from(CoralDecision)) or 0)


def last_decision(app: Any) -> CoralDecision:
    with app.extensions["triage.service"].db.session() as s:
        row = s.scalars(select(CoralDecision).order_by(CoralDecision.created_at.desc(),
                                                       CoralDecision.id.desc()).limit(1)).first()
        assert row is not None
        return row


def test_the_node_made_vector_with_a_non_ascii_body_and_two_signatures_is_accepted(client, coral_app):
    resp = send(client, VECTOR_BODY, VECTOR_SIGNATURE)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json() == {"status": "APPROVED", "actions": []}
    row = last_decision(coral_app)
    assert row.body == "Merci, très utile — 谢谢 🙏 «ketamine»"
    assert (row.action, row.story_id, row.author_id, row.tenant_id) == ("NEW", "s-1", "u-1", "t-1")


def test_our_serialisation_matches_coral_byte_for_byte():
    data = json.loads(VECTOR_BODY)
    assert json.dumps(data, indent=2, ensure_ascii=False).encode() == VECTOR_BODY
    if shutil.which("node"):
        assert coral_sign(data, [OLD, NEW]) == (VECTOR_BODY, VECTOR_SIGNATURE)


@pytest.mark.parametrize("secrets", [[OLD], [NEW], [OLD, NEW], [NEW, OLD]])
def test_either_secret_of_a_rotation_is_accepted(client, secrets):
    resp = decide(client, TEXTS["ok"], secrets)
    assert resp.status_code == 200 and resp.get_json()["status"] == "APPROVED"


@pytest.mark.parametrize("case", ["wrong", "missing", "empty", "tampered", "reserialised",
                                  "other-secret", "no-prefix"])
def test_a_bad_signature_is_401_and_nothing_is_recorded(client, coral_app, case):
    data = coral_request("Merci, très utile — 谢谢")
    body, sig = coral_sign(data, [NEW])
    good = sig.split("=", 1)[1]
    if case == "wrong":
        sig = "sha256=" + "0" * 64
    elif case == "missing":
        sig = None
    elif case == "empty":
        sig = ""
    elif case == "tampered":
        body = body.replace(b"Merci", b"Mercy")
    elif case == "reserialised":
        # The same JSON, other bytes (ASCII escapes, no indent): the signature is over bytes.
        body = json.dumps(json.loads(body)).encode()
    elif case == "other-secret":
        body, sig = coral_sign(data, ["ems_not_ours_0123456789abcdef0123456789"])
    elif case == "no-prefix":
        sig = good
    before = recorded(coral_app)
    resp = send(client, body, sig)
    assert resp.status_code == 401
    assert resp.mimetype == "application/problem+json"
    assert recorded(coral_app) == before


@pytest.mark.parametrize("kind, status, flags, code", [
    ("ok", "APPROVED", [], None),
    ("spam", "REJECTED", ["COMMENT_DETECTED_SPAM"], "SPAM"),
    ("medical", "PREMOD", ["COMMENT_DETECTED_TOXIC"], "MISINFORMATION"),
    ("harassment", "PREMOD", ["COMMENT_DETECTED_TOXIC"], "HARASSMENT_BULLYING"),
    ("profanity", "APPROVED", ["COMMENT_DETECTED_TOXIC"], None),
])
def test_each_decision_maps_to_coral_status_flag_and_reason(client, coral_app, kind, status, flags, code):
    resp = decide(client, TEXTS[kind])
    assert resp.status_code == 200
    out = resp.get_json()
    assert out["status"] == status
    assert out["actions"] == [{"actionType": "FLAG", "reason": f} for f in flags]
    if code is None:
        assert "moderationAction" not in out
    else:
        assert out["moderationAction"]["status"] == status
        assert out["moderationAction"]["rejectionReason"]["code"] == code
    row = last_decision(coral_app)
    assert (row.status, row.reason_code, row.flags) == (status, code, flags)
    assert coral_app.extensions["test.events"].events == []


def test_self_harm_is_withheld_for_a_moderator_never_rejected_and_raises_the_urgent_alert(client, coral_app):
    resp = decide(client, TEXTS["self_harm"], author="u-crisis", story="s-crisis")
    out = resp.get_json()
    assert out["status"] == "SYSTEM_WITHHELD"
    assert "REJECTED" not in json.dumps(out)
    row = last_decision(coral_app)
    assert row.priority == "urgent" and "self_harm" in row.categories
    kinds = coral_app.extensions["test.events"].events
    assert [k for k, _ in kinds] == ["comment.urgent"]
    payload = kinds[0][1]
    assert payload["id"] == row.id and payload["source"] == "coral"
    assert payload["coral"] == {"tenant_id": "t-1", "story_id": "s-crisis", "author_id": "u-crisis",
                                "action": "NEW"}


def test_an_html_body_is_read_as_text_and_recorded_as_sent(client, coral_app):
    html = '<p>Great <b>piece</b>, see <a href="https://www.nimh.nih.gov/">the NIMH page</a> &amp; more</p>'
    assert decide(client, html).get_json()["status"] == "APPROVED"
    assert last_decision(coral_app).body == html


def test_an_edit_is_linked_to_the_same_authors_decision_on_the_same_story(client, coral_app):
    decide(client, "First version of my thought on dosing.", author="u-ed", story="s-ed")
    first = last_decision(coral_app)
    decide(client, "Second version of my thought on dosing.", action="EDIT", author="u-ed", story="s-ed")
    edit = last_decision(coral_app)
    assert edit.action == "EDIT" and edit.previous_id == first.id
    decide(client, "Third version.", action="EDIT", author="u-ed", story="s-ed")
    assert last_decision(coral_app).previous_id == edit.id
    # Another author, another story, or another parent is another comment.
    decide(client, "An edit of something else.", action="EDIT", author="u-other", story="s-ed")
    assert last_decision(coral_app).previous_id is None
    decide(client, "An edit elsewhere.", action="EDIT", author="u-ed", story="s-elsewhere")
    assert last_decision(coral_app).previous_id is None
    decide(client, "A reply's edit.", action="EDIT", author="u-ed", story="s-ed", parent="c-9")
    assert last_decision(coral_app).previous_id is None


def test_when_the_engine_cannot_answer_in_time_coral_gets_204_and_the_verdict_is_kept(client, coral_app):
    phase: CoralPhase = coral_app.extensions["triage.coral"]
    # A budget of nothing: no verdict can be ready, so the answer is "no opinion".
    coral_app.extensions["triage.coral"] = CoralPhase(
        phase.secrets, phase.engine, phase.decisions, phase.emit, budget_ms=0)
    try:
        before = recorded(coral_app)
        long_crisis = (TEXTS["self_harm"] + " ") + "I keep writing because nobody listens. " * 300
        resp = decide(client, long_crisis, author="u-late", story="s-late")
        assert resp.status_code == 204 and resp.get_data() == b""
        # The engine finishes on its own thread: recorded as NONE (Coral was told nothing),
        # and the crisis still reaches the moderators.
        wait_for(lambda: recorded(coral_app) == before + 1, timeout=30)
        row = last_decision(coral_app)
        assert (row.status, row.engine_action, row.priority) == ("NONE", "hold", "urgent")
        wait_for(lambda: coral_app.extensions["test.events"].events, timeout=10)
        assert coral_app.extensions["test.events"].events[0][0] == "comment.urgent"
    finally:
        coral_app.extensions["triage.coral"] = phase


def test_while_the_engine_is_still_loading_coral_gets_204(client, coral_app):
    phase: CoralPhase = coral_app.extensions["triage.coral"]
    coral_app.extensions["triage.coral"] = CoralPhase(
        phase.secrets, lambda: None, phase.decisions, phase.emit, budget_ms=150)
    try:
        resp = decide(client, TEXTS["ok"], author="u-early")
        assert resp.status_code == 204
        row = last_decision(coral_app)
        assert (row.author_id, row.status, row.engine_action) == ("u-early", "NONE", "timeout")
    finally:
        coral_app.extensions["triage.coral"] = phase


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"action": "DELETE"}',
                                  json.dumps({**coral_request("x"), "tenantID": ""}).encode()])
def test_a_signed_request_that_is_not_coral_is_422(client, body):
    sig = "sha256=" + hmac.new(NEW.encode(), body, hashlib.sha256).hexdigest()
    resp = send(client, body, sig)
    assert resp.status_code == 422 and resp.mimetype == "application/problem+json"


def test_the_route_is_404_without_secrets(settings, service):
    from services.api import create_app

    app = create_app(replace(settings, coral_signing_secrets=""), service=service)
    body, sig = coral_sign(coral_request("hello"), [NEW])
    assert send(app.test_client(), body, sig).status_code == 404


def test_moderators_find_coral_decisions_by_story_and_author(client, coral_app):
    decide(client, TEXTS["medical"], author="u-find", story="s-find")
    _, key = coral_app.extensions["triage.moderation"].create_key("Ana", "moderator")
    h = {"Authorization": f"Bearer {key}"}
    assert client.get("/v1/moderation/coral/decisions").status_code == 401
    items = client.get("/v1/moderation/coral/decisions?story=s-find&author=u-find", headers=h).get_json()["items"]
    assert len(items) == 1 and items[0]["status"] == "PREMOD" and items[0]["categories"] == ["unsafe_medical"]
    one = client.get(f"/v1/moderation/coral/decisions/{items[0]['id']}", headers=h).get_json()
    assert one["body"] == TEXTS["medical"] and one["findings"]
    premod = client.get("/v1/moderation/coral/decisions?status=PREMOD", headers=h).get_json()["items"]
    assert all(i["status"] == "PREMOD" for i in premod)
    assert client.get("/v1/moderation/coral/decisions?status=nope", headers=h).status_code == 422

