"""Coral Talk's external moderation phase: verify, decide within Coral's budget, record.

Coral (v9, `services/comments/pipeline/phases/external.ts`) POSTs each new or edited comment
before saving it, serialised with `JSON.stringify(request, null, 2)`, and signs those bytes:
`X-Coral-Signature: sha256=<hex>[,sha256=<hex>…]`, an HMAC-SHA256 with each active secret.
It waits `phase.timeout` (200 ms by default), never retries, and takes a 204, an empty body
or `{}` as "no opinion". Its response schema keeps `status`, `actions` (FLAG with
COMMENT_DETECTED_TOXIC or COMMENT_DETECTED_SPAM) and `tags`, and drops unknown keys.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import hashlib
import hmac
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import insert, select

from ..comments.errors import Invalid, NotFound, Unauthorized
from ..comments.models import new_id, utcnow
from ..db import Database
from ..events import Event
from .models import CoralDecision
from .text import html_to_text

log = logging.getLogger("triage.coral")

SIGNATURE_HEADER = "X-Coral-Signature"


# -- the request ----------------------------------------------------------------------------


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CoralComment(_In):
    body: str
    parentID: str | None = Field(default=None, max_length=200)


class CoralAuthor(_In):
    id: str = Field(min_length=1, max_length=200)
    role: str = Field(default="", max_length=32)


class CoralStory(_In):
    id: str = Field(min_length=1, max_length=200)
    url: str = Field(default="", max_length=4000)


class CoralSite(_In):
    id: str = Field(default="", max_length=200)


class CoralRequest(_In):
    """What Coral sends: no comment id and no timestamp (the comment is not saved yet)."""

    action: Literal["NEW", "EDIT"]
    comment: CoralComment
    author: CoralAuthor
    story: CoralStory
    site: CoralSite = CoralSite()
    tenantID: str = Field(min_length=1, max_length=200)
    tenantDomain: str = Field(default="", max_length=300)


def parse_secrets(raw: str) -> list[str]:
    """CORAL_SIGNING_SECRETS: comma-separated; several while Coral rotates its secret."""
    return [s.strip() for s in raw.split(",") if s.strip()]


def sign(secret: str, raw: bytes) -> str:
    """One signature as Coral writes it: `sha256=` and the hex HMAC-SHA256 of the bytes."""
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def verify(raw: bytes, header: str | None, secrets: Sequence[str]) -> bool:
    """True if any signature in the header is the HMAC of these exact bytes under any secret.

    The raw bytes, never a re-serialisation: Coral's two-space JSON with non-ASCII text would
    not survive a round trip through a parser byte for byte."""
    if not header or not secrets:
        return False
    given = [part.strip() for part in header.split(",") if part.strip()]
    expected = [sign(secret, raw) for secret in secrets]
    ok = False
    for candidate in given[:10]:  # a rotation lists two or three; more is not Coral
        for want in expected:
            # Every pair compared, in constant time each: the answer's timing says nothing.
            ok |= hmac.compare_digest(candidate.encode(), want.encode())
    return ok


# -- the answer -----------------------------------------------------------------------------

# Flags Coral accepts from an external phase.
TOXIC = "COMMENT_DETECTED_TOXIC"
SPAM = "COMMENT_DETECTED_SPAM"
# Per category: Coral's flag reason and its (DSA) rejection reason code. Order: which category
# speaks for a comment caught by several.
CATEGORY_REASONS: dict[str, tuple[str, str]] = {
    "spam": (SPAM, "SPAM"),
    "harassment": (TOXIC, "HARASSMENT_BULLYING"),
    "unsafe_medical": (TOXIC, "MISINFORMATION"),
    "profanity": (TOXIC, "OFFENSIVE"),
}
EXPLANATIONS = {
    "spam": "Triage found spam.",
    "harassment": "Triage found possible harassment.",
    "unsafe_medical": "Triage found a possibly unsafe medical claim.",
    "profanity": "Triage found profanity.",
    "self_harm": "Triage found possible self-harm: a moderator should see it now.",
}


@dataclass(frozen=True)
class Answer:
    """What Coral is told, and what is recorded of it."""

    status: str  # NONE | APPROVED | REJECTED | PREMOD | SYSTEM_WITHHELD
    reason_code: str | None = None
    flags: tuple[str, ...] = ()
    explanation: str | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "status": self.status,
            "actions": [{"actionType": "FLAG", "reason": f} for f in self.flags],
        }
        if self.reason_code is not None:
            reason: dict[str, Any] = {"code": self.reason_code}
            if self.explanation:
                reason["detailedExplanation"] = self.explanation
            body["moderationAction"] = {"status": self.status, "rejectionReason": reason}
        return body


def _categories(verdict: Any) -> list[str]:
    return list(verdict.decision.categories)


def answer_for(verdict: Any) -> Answer:
    """Our decision in Coral's words: publish → APPROVED; blatant spam → REJECTED (SPAM);
    held → PREMOD with the matching flag and reason; self-harm → SYSTEM_WITHHELD (a person
    looks at it at once, and it is never rejected)."""
    categories = _categories(verdict)
    if "self_harm" in categories or verdict.priority == "urgent":
        return Answer("SYSTEM_WITHHELD", explanation=EXPLANATIONS["self_harm"])
    main = next((c for c in CATEGORY_REASONS if c in categories), None)
    if verdict.action == "publish":
        # Coral cannot publish our masked text: profanity publishes, flagged for a look.
        return Answer("APPROVED", flags=(TOXIC,) if "profanity" in categories else ())
    if main is None:  # held for no category of its own: uncertainty
        return Answer("PREMOD", "OTHER", (TOXIC,), "Triage was not sure; a moderator decides.")
    flag, code = CATEGORY_REASONS[main]
    status = "REJECTED" if verdict.action == "block" else "PREMOD"
    return Answer(status, code, (flag,), EXPLANATIONS[main])


# -- recording ------------------------------------------------------------------------------


class CoralDecisions:
    """The record of what Coral was told; an EDIT is linked to the decision it follows."""

    def __init__(self, db: Database, edit_window: int) -> None:
        self.db = db
        self.edit_window = edit_window

    def record(self, req: CoralRequest, answer: Answer, verdict: Any | None, elapsed_ms: float,
               decision_id: str | None = None) -> str:
        now = utcnow()
        values: dict[str, Any] = {
            "id": decision_id or new_id(), "action": req.action, "tenant_id": req.tenantID,
            "tenant_domain": req.tenantDomain, "site_id": req.site.id, "story_id": req.story.id,
            "story_url": req.story.url, "author_id": req.author.id, "author_role": req.author.role,
            "parent_id": req.comment.parentID, "body": req.comment.body, "status": answer.status,
            "reason_code": answer.reason_code, "flags": list(answer.flags),
            "engine_action": verdict.action if verdict is not None else "timeout",
            "priority": verdict.priority if verdict is not None else "normal",
            "categories": _categories(verdict) if verdict is not None else [],
            "findings": [f.to_json() for f in verdict.findings] if verdict is not None else [],
            "scores": dict(verdict.scores) if verdict is not None else {},
            "policy_version": verdict.decision.policy_version if verdict is not None else None,
            "previous_id": None, "elapsed_ms": round(elapsed_ms, 3), "created_at": now,
        }
        with self.db.writing() as conn:
            if req.action == "EDIT":
                values["previous_id"] = self._previous(conn, req, now)
            conn.execute(insert(CoralDecision), [values])
        return str(values["id"])

    def _previous(self, conn: Any, req: CoralRequest, now: dt.datetime) -> str | None:
        # Coral sends no comment id: an edit is the same author, story and parent, within the
        # window Coral lets authors edit in (its default is 30 s; ours is wider).
        parent = (CoralDecision.parent_id.is_(None) if req.comment.parentID is None
                  else CoralDecision.parent_id == req.comment.parentID)
        q = (select(CoralDecision.id)
             .where(CoralDecision.tenant_id == req.tenantID,
                    CoralDecision.story_id == req.story.id,
                    CoralDecision.author_id == req.author.id, parent,
                    CoralDecision.created_at >= now - dt.timedelta(seconds=self.edit_window))
             .order_by(CoralDecision.created_at.desc(), CoralDecision.id.desc()).limit(1))
        found = conn.execute(q).scalar()
        return str(found) if found is not None else None

    def find(self, *, story: str | None = None, author: str | None = None,
             status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Newest first, for moderators."""
        q = select(CoralDecision).order_by(CoralDecision.created_at.desc()).limit(limit)
        if story:
            q = q.where(CoralDecision.story_id == story)
        if author:
            q = q.where(CoralDecision.author_id == author)
        if status:
            q = q.where(CoralDecision.status == status)
        with self.db.session() as s:
            return [decision_view(d) for d in s.scalars(q)]

    def get(self, decision_id: str) -> dict[str, Any]:
        with self.db.session() as s:
            d = s.get(CoralDecision, decision_id)
            if d is None:
                raise NotFound(f"No Coral decision with id '{decision_id}'.")
            return decision_view(d)


def decision_view(d: CoralDecision) -> dict[str, Any]:
    created = d.created_at if d.created_at.tzinfo else d.created_at.replace(tzinfo=dt.UTC)
    return {
        "id": d.id, "action": d.action, "status": d.status, "reason_code": d.reason_code,
        "flags": list(d.flags), "engine_action": d.engine_action, "priority": d.priority,
        "categories": list(d.categories), "findings": list(d.findings), "scores": dict(d.scores),
        "policy_version": d.policy_version, "previous_id": d.previous_id,
        "tenant_id": d.tenant_id, "site_id": d.site_id, "story_id": d.story_id,
        "story_url": d.story_url, "author_id": d.author_id, "author_role": d.author_role,
        "parent_id": d.parent_id, "body": d.body, "elapsed_ms": d.elapsed_ms,
        "created_at": created.isoformat().replace("+00:00", "Z"),
    }


# -- the phase ------------------------------------------------------------------------------


@dataclass
class Outcome:
    """The HTTP side's whole answer: 200 with `body`, or 204 when `body` is None."""

    body: dict[str, Any] | None
    decision_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class CoralPhase:
    """Decides one Coral request inside the budget: the engine runs on a small pool, and the
    request waits for it at most `budget_ms`; past that Coral gets 204 and goes on without us,
    while the late verdict is still recorded (and a crisis still raises its alert)."""

    def __init__(self, secrets: Sequence[str], engine: Callable[[], Any | None],
                 decisions: CoralDecisions, emit: Callable[[list[Event]], None],
                 budget_ms: int) -> None:
        self.secrets = list(secrets)
        self.engine = engine
        self.decisions = decisions
        self.emit = emit
        self.budget = budget_ms / 1000
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._pool_pid = 0
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self.secrets)

    def pool(self) -> concurrent.futures.ThreadPoolExecutor:
        # Made in the process that uses it (threads do not survive a fork).
        with self._lock:
            if self._pool is None or self._pool_pid != os.getpid():
                self._pool = concurrent.futures.ThreadPoolExecutor(2, "coral-engine")
                self._pool_pid = os.getpid()
            return self._pool

    def handle(self, raw: bytes, signature: str | None) -> Outcome:
        started = time.perf_counter()
        if not self.enabled:
            raise NotFound("The Coral integration is not configured.")
        if not verify(raw, signature, self.secrets):
            raise Unauthorized("The X-Coral-Signature header does not match the request body.")
        try:
            req = CoralRequest.model_validate_json(raw)
        except ValidationError as exc:
            errors = [{"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]}
                      for e in exc.errors()]
            raise Invalid("The request is not a Coral moderation request.", errors=errors) from exc
        engine = self.engine()
        decision_id = new_id()
        if engine is None:  # still loading after a start: no opinion rather than a late one
            self.decisions.record(req, Answer("NONE"), None, _ms(started), decision_id)
            return Outcome(None, decision_id, {"reason": "engine-loading"})
        text = html_to_text(req.comment.body)
        future = self.pool().submit(_classify, engine, text, req)
        remaining = self.budget - (time.perf_counter() - started)
        try:
            verdict = future.result(timeout=max(0.0, remaining))
        except concurrent.futures.TimeoutError:
            future.add_done_callback(lambda f: self._late(f, req, decision_id, started))
            return Outcome(None, decision_id, {"reason": "timeout"})
        answer = answer_for(verdict)
        self.decisions.record(req, answer, verdict, _ms(started), decision_id)
        self._alert(req, verdict, decision_id)
        return Outcome(answer.to_json(), decision_id)

    def _late(self, future: concurrent.futures.Future[Any], req: CoralRequest, decision_id: str,
              started: float) -> None:
        """Coral was told nothing (204); what the engine found is kept for moderators."""
        try:
            verdict = future.result()
            self.decisions.record(req, Answer("NONE"), verdict, _ms(started), decision_id)
            self._alert(req, verdict, decision_id)
        except Exception:  # noqa: BLE001 - a background thread: log, never raise
            log.exception("recording a late Coral verdict failed", extra={"decision": decision_id})

    def _alert(self, req: CoralRequest, verdict: Any, decision_id: str) -> None:
        if "self_harm" not in _categories(verdict) and verdict.priority != "urgent":
            return
        self.emit([("comment.urgent", {
            "id": decision_id, "source": "coral", "article": req.story.url or req.story.id,
            "status": "held", "priority": "urgent", "categories": _categories(verdict),
            "coral": {"tenant_id": req.tenantID, "story_id": req.story.id,
                      "author_id": req.author.id, "action": req.action},
        })])


def _classify(engine: Any, text: str, req: CoralRequest) -> Any:
    from workers.engine.filters.base import Context

    return engine.classify(text, author=None, context=Context(article=req.story.id))


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000

