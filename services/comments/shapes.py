"""Public shapes of the domain: what goes in (NewComment, an engine verdict), what comes out
(Accepted, a reader's view, cursors), and how identities are hashed."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.engine import Row

from .errors import Invalid
from .models import Comment


@dataclass(frozen=True)
class Accepted:
    """What the commenter is told about a stored comment."""

    id: str
    status: str


@dataclass(frozen=True, slots=True)
class NewComment:
    """What a commenter submits."""

    author: str
    body: str
    email: str | None = None
    parent_id: str | None = None


def iso(value: dt.datetime | None) -> str | None:
    """A stored time as ISO 8601 in UTC with a Z, as the API shows it."""
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite hands back naive datetimes; they were stored as UTC
        value = value.replace(tzinfo=dt.UTC)
    return value.isoformat().replace("+00:00", "Z")


def encode_cursor(comment: Comment | Row[Any]) -> str:
    """An opaque keyset cursor after `comment`."""
    raw = json.dumps([iso(comment.created_at), comment.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, str]:
    """The (created_at, id) a cursor names; Invalid if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, cid = json.loads(raw)
        parsed = dt.datetime.fromisoformat(at.replace("Z", "+00:00"))
        if not isinstance(cid, str):
            raise ValueError
    except (ValueError, TypeError, json.JSONDecodeError) as exc:
        raise Invalid(
            "The cursor is not one this API handed out.",
            errors=[{"field": "cursor", "message": "malformed cursor"}],
        ) from exc
    return parsed, cid


def public_view(c: Comment | Row[Any]) -> dict[str, Any]:
    """What readers may see: never an email, an IP, a status or the unmasked body."""
    return {
        "id": c.id,
        "author": c.author,
        "body": c.published_body if c.published_body is not None else c.body,
        "created_at": iso(c.created_at),
        "parent_id": c.parent_id,
    }


def aware(value: dt.datetime | None) -> dt.datetime | None:
    """A stored time with its zone: SQLite hands back naive datetimes, stored as UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def salted_hash(salt: str, kind: str, value: str) -> str:
    """A keyed hash (HMAC-SHA-256, the secret AUTHOR_SALT as its key) of a private value (an
    email, an IP, a key): without the key, no guess of an IPv4 address can be checked."""
    return hmac.new(salt.encode(), f"{kind}\x00{value}".encode(), hashlib.sha256).hexdigest()


def author_ref(salt: str, email: str | None, ip: str | None) -> str | None:
    """Who an author is, as far as Triage can tell. An email is never verified, so it names an
    author only together with the address it was sent from: someone typing another's email
    elsewhere neither borrows their trust nor gets them banned. Without an email, the IP."""
    if email and ip:
        return salted_hash(salt, "email+ip", f"{email.strip().lower()}\x00{ip}")
    if email:
        return salted_hash(salt, "email", email.strip().lower())
    if ip:
        return salted_hash(salt, "ip", ip)
    return None


class FindingLike(Protocol):
    """One reason the engine doubted a comment; serialised once, when it is written."""

    def to_json(self) -> dict[str, Any]: ...


class EngineVerdict(Protocol):
    """The engine's verdict as the domain records it (`workers.engine.pipeline.Verdict`
    satisfies it): typed until the row and its decision are written."""

    @property
    def action(self) -> str: ...
    @property
    def priority(self) -> str: ...
    @property
    def categories(self) -> Sequence[str]: ...
    @property
    def published_body(self) -> str | None: ...
    @property
    def masked_body(self) -> str | None: ...
    @property
    def policy_version(self) -> str | None: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def findings(self) -> Sequence[FindingLike]: ...
    @property
    def scores(self) -> Mapping[str, float]: ...
