"""Endpoints, deliveries and their attempts. No Flask, no Celery: tasks and views call this."""

from __future__ import annotations

import datetime as dt
import json
import random
import secrets as secrets_mod
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError

from ..comments.errors import Invalid, NotFound
from ..comments.models import new_id, utcnow
from ..config import Settings
from ..db import Database
from ..integrations.models import WebhookDelivery, WebhookEndpoint
from . import signing, ssrf

EVENTS = ("comment.submitted", "comment.published", "comment.held", "comment.rejected",
          "comment.urgent", "comment.reported", "comment.unpublished")
# Longest wait between two attempts of one delivery.
MAX_BACKOFF_SECONDS = 3600.0
# A delivery being attempted is leased for this long beyond the receiver's timeout, so a
# duplicate message for it (a broker re-delivery) does not send it twice at once.
LEASE_MARGIN_SECONDS = 30.0


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _epoch(value: dt.datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()


def endpoint_view(e: WebhookEndpoint) -> dict[str, Any]:
    return {"id": e.id, "url": e.url, "events": list(e.events), "enabled": e.enabled,
            "disabled_reason": e.disabled_reason, "consecutive_failures": e.consecutive_failures,
            "secret_hint": e.secret[:4] + "…", "created_at": _iso(e.created_at),
            "updated_at": _iso(e.updated_at)}


def delivery_view(d: WebhookDelivery) -> dict[str, Any]:
    return {"id": d.id, "endpoint_id": d.endpoint_id, "event": d.event, "event_id": d.event_id,
            "status": d.status, "attempts": d.attempts, "last_status_code": d.last_status_code,
            "last_error": d.last_error, "next_attempt_at": _iso(d.next_attempt_at),
            "payload": d.payload, "created_at": _iso(d.created_at), "updated_at": _iso(d.updated_at)}


@dataclass(frozen=True)
class Policy:
    """How hard deliveries try (from Settings)."""

    allow_private: bool = False
    timeout: float = 5.0
    max_attempts: int = 8
    backoff: float = 10.0
    disable_after: int = 10

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(allow_private=settings.webhook_allow_private_addresses,
                   timeout=settings.webhook_timeout, max_attempts=settings.webhook_max_attempts,
                   backoff=settings.webhook_backoff, disable_after=settings.webhook_disable_after)

    def delay(self, attempts: int) -> float:
        """Exponential backoff with jitter: half the step fixed, half random, so receivers
        that came back are not hit by every sender in the same second."""
        step = min(MAX_BACKOFF_SECONDS, self.backoff * 2 ** max(0, attempts - 1))
        return step / 2 + random.uniform(0, step / 2)


@dataclass(frozen=True)
class Attempt:
    """What one attempt did; `retry_in` is set when another attempt is due."""

    delivered: bool
    status_code: int | None
    error: str | None
    retry_in: float | None = None
    disabled: bool = False


class WebhookService:
    def __init__(self, db: Database, policy: Policy) -> None:
        self.db = db
        self.policy = policy

    # -- endpoints (admins) ---------------------------------------------------------------
    def _check(self, url: str, events: Iterable[str]) -> list[str]:
        try:
            ssrf.check_url(url, self.policy.allow_private)
        except ssrf.Forbidden as exc:
            raise Invalid(str(exc), errors=[{"field": "url", "message": str(exc)}]) from exc
        events = list(dict.fromkeys(events))
        unknown = [e for e in events if e not in EVENTS]
        if unknown or not events:
            raise Invalid("Unknown or no events.", errors=[{
                "field": "events", "message": f"choose from {', '.join(EVENTS)}"}])
        return events

    def create(self, url: str, events: list[str], secret: str | None) -> tuple[dict[str, Any], str]:
        """Register an endpoint; returns it and its secret (generated when none is given)."""
        events = self._check(url, events)
        secret = secret or "whsec_" + secrets_mod.token_hex(24)
        with self.db.session() as s:
            e = WebhookEndpoint(url=url, events=events, secret=secret, enabled=True,
                                consecutive_failures=0, created_at=utcnow(), updated_at=utcnow())
            s.add(e)
            s.flush()
            return endpoint_view(e), secret

    def all(self) -> list[dict[str, Any]]:
        with self.db.session() as s:
            return [endpoint_view(e) for e in s.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id))]

    def get(self, endpoint_id: int) -> dict[str, Any]:
        with self.db.session() as s:
            return endpoint_view(self._endpoint(s, endpoint_id))

    @staticmethod
    def _endpoint(s: Any, endpoint_id: int) -> WebhookEndpoint:
        e = s.get(WebhookEndpoint, endpoint_id)
        if e is None:
            raise NotFound(f"No webhook endpoint with id {endpoint_id}.")
        return e  # type: ignore[no-any-return]

    def update(self, endpoint_id: int, *, url: str | None = None, events: list[str] | None = None,
               secret: str | None = None, enabled: bool | None = None) -> dict[str, Any]:
        """Change an endpoint; `enabled: true` re-enables one that was disabled, afresh."""
        with self.db.session() as s:
            e = self._endpoint(s, endpoint_id)
            checked = self._check(url or e.url, events if events is not None else e.events)
            e.url, e.events = url or e.url, checked
            if secret:
                e.secret = secret
            if enabled is not None:
                e.enabled = enabled
                e.disabled_reason = None if enabled else "disabled by an admin"
                if enabled:
                    e.consecutive_failures = 0
            e.updated_at = utcnow()
            s.flush()
            return endpoint_view(e)

    def delete(self, endpoint_id: int) -> None:
        with self.db.session() as s:
            e = self._endpoint(s, endpoint_id)
            for d in s.scalars(select(WebhookDelivery).where(WebhookDelivery.endpoint_id == e.id)):
                s.delete(d)
            s.delete(e)

    def deliveries(self, endpoint_id: int, limit: int = 50, status: str | None = None) -> list[dict[str, Any]]:
        """The endpoint's delivery log, newest first."""
        with self.db.session() as s:
            self._endpoint(s, endpoint_id)
            q = (select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
                 .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc()).limit(limit))
            if status:
                q = q.where(WebhookDelivery.status == status)
            return [delivery_view(d) for d in s.scalars(q)]

    def redeliver(self, endpoint_id: int, delivery_id: str) -> dict[str, Any]:
        """A new delivery of the same event to the same endpoint (its own log entry)."""
        with self.db.session() as s:
            e = self._endpoint(s, endpoint_id)
            old = s.get(WebhookDelivery, delivery_id)
            if old is None or old.endpoint_id != e.id:
                raise NotFound(f"No delivery '{delivery_id}' for endpoint {endpoint_id}.")
            now = utcnow()
            d = WebhookDelivery(id=new_id(), endpoint_id=e.id, event=old.event,
                                event_id=f"{old.event_id.split('#', 1)[0]}#{new_id()}",
                                payload=old.payload, status="pending", attempts=0,
                                created_at=now, updated_at=now)
            s.add(d)
            s.flush()
            return delivery_view(d)

    # -- fan-out (the pump) ---------------------------------------------------------------
    def fan_out(self, events: list[tuple[str, str, dict[str, Any], float]]) -> list[str]:
        """Deliveries for (stream id, kind, payload, time) events, one per subscribed enabled
        endpoint; an event seen before makes none. Returns the new deliveries' ids."""
        if not events:
            return []
        with self.db.session() as s:
            endpoints = list(s.scalars(select(WebhookEndpoint).where(WebhookEndpoint.enabled.is_(True))))
        created: list[str] = []
        for event_id, kind, payload, at in events:
            for e in endpoints:
                # An endpoint hears of what happened after it was registered, not before.
                if kind not in e.events or at < _epoch(e.created_at) - 1:
                    continue
                now = utcnow()
                delivery_id = new_id()
                d = WebhookDelivery(
                    id=delivery_id, endpoint_id=e.id, event=kind, event_id=event_id,
                    status="pending", attempts=0, created_at=now, updated_at=now, payload={
                        "event": kind, "event_id": event_id,
                        "occurred_at": _iso(dt.datetime.fromtimestamp(at, dt.UTC)),
                        "data": payload})
                try:
                    with self.db.session() as s:
                        s.add(d)
                except IntegrityError:  # this event was fanned out before (a re-read)
                    continue
                created.append(delivery_id)
        return created

    def due(self, grace_seconds: float, limit: int = 500) -> list[str]:
        """Pending deliveries whose message is overdue (lost, or its worker died)."""
        now = utcnow()
        cutoff = now - dt.timedelta(seconds=grace_seconds)
        with self.db.session() as s:
            q = (select(WebhookDelivery.id).where(
                WebhookDelivery.status == "pending",
                or_(WebhookDelivery.next_attempt_at <= cutoff,
                    and_(WebhookDelivery.next_attempt_at.is_(None), WebhookDelivery.created_at <= cutoff)))
                .order_by(WebhookDelivery.created_at).limit(limit))
            return list(s.scalars(q))

    # -- attempts (the delivery task) -----------------------------------------------------
    def attempt(self, delivery_id: str, post: Any) -> Attempt | None:
        """Try one delivery now, unless it is done, not due, or being tried elsewhere (None).
        `post(url, body, headers) -> status code` raises on a network error."""
        now = utcnow()
        lease = now + dt.timedelta(seconds=self.policy.timeout * 2 + LEASE_MARGIN_SECONDS)
        with self.db.session() as s:
            claimed = s.execute(update(WebhookDelivery).where(
                WebhookDelivery.id == delivery_id, WebhookDelivery.status == "pending",
                or_(WebhookDelivery.next_attempt_at.is_(None), WebhookDelivery.next_attempt_at <= now),
            ).values(next_attempt_at=lease, updated_at=now)).rowcount  # type: ignore[attr-defined]
            if not claimed:
                return None
            d = s.get(WebhookDelivery, delivery_id)
            e = s.get(WebhookEndpoint, d.endpoint_id) if d is not None else None
            if d is None:
                return None
            if e is None or not e.enabled:
                d.status, d.last_error, d.next_attempt_at = "failed", "endpoint disabled", None
                return Attempt(False, None, "endpoint disabled")
            url, secret, payload = e.url, e.secret, d.payload
            headers_id = d.id
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json", "User-Agent": "Triage-Webhooks/1",
            "Triage-Event": str(payload.get("event")), "Triage-Delivery": headers_id,
            signing.HEADER: signing.signature(secret, int(time.time()), body),
        }
        status_code: int | None = None
        error: str | None = None
        try:
            status_code = int(post(url, body, headers))
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}"
        except Exception as exc:  # noqa: BLE001 - any failure to deliver is a failed attempt
            error = f"{type(exc).__name__}: {exc}"[:500]
        return self._finish(delivery_id, status_code, error)

    def _finish(self, delivery_id: str, status_code: int | None, error: str | None) -> Attempt:
        now = utcnow()
        with self.db.session() as s:
            d = s.get(WebhookDelivery, delivery_id)
            assert d is not None
            d.attempts += 1
            d.last_status_code, d.last_error, d.updated_at = status_code, error, now
            endpoint = WebhookEndpoint.__table__.c  # type: ignore[attr-defined]
            this = endpoint.id == d.endpoint_id
            if error is None:
                d.status, d.next_attempt_at = "delivered", None
                s.execute(update(WebhookEndpoint).where(this).values(consecutive_failures=0))
                return Attempt(True, status_code, None)
            if d.attempts < self.policy.max_attempts:
                wait = self.policy.delay(d.attempts)
                d.next_attempt_at = now + dt.timedelta(seconds=wait)
                return Attempt(False, status_code, error, retry_in=wait)
            d.status, d.next_attempt_at = "failed", None
            # Counted in SQL, not read and written back: deliveries to one endpoint fail on
            # several threads at once, and none of their failures may be lost.
            s.execute(update(WebhookEndpoint).where(this).values(
                consecutive_failures=endpoint.consecutive_failures + 1))
            failures = s.scalar(select(endpoint.consecutive_failures).where(this)) or 0
            disabled = False
            if failures >= self.policy.disable_after:
                reason = f"disabled after {failures} failed deliveries in a row; last: {error}"
                done = s.execute(update(WebhookEndpoint).where(this, endpoint.enabled.is_(True)).values(
                    enabled=False, disabled_reason=reason, updated_at=now))
                disabled = bool(done.rowcount)  # type: ignore[attr-defined]
            return Attempt(False, status_code, error, disabled=disabled)


def http_post(manager: Any, timeout: float) -> Any:
    """The real sender: POST without redirects through the guarded pool."""

    def post(url: str, body: bytes, headers: dict[str, str]) -> int:
        resp = manager.request("POST", url, body=body, headers=headers, redirect=False,
                               preload_content=False, timeout=timeout)
        try:
            resp.read(65536)  # a receiver's answer is not ours to keep
        finally:
            resp.release_conn()
        return int(resp.status)

    return post

