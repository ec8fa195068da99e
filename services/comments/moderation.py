"""Moderators' use cases: the queue, decisions with a history, bans, reports, lists, keys."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, Select, and_, bindparam, exists, func, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from ..db import Database
from .errors import Conflict, Invalid, NotFound
from .models import (
    PRIORITY_RANK,
    ApiKey,
    Article,
    AuthorBan,
    Comment,
    Decision,
    ListChange,
    ModerationList,
    Report,
    Status,
    TrainingExample,
    decided,
    utcnow,
)
from .service import CommentService, transition
from .shapes import aware, iso, salted_hash

ACTIONS = {"approve": Status.APPROVED, "reject": Status.REJECTED, "hold": Status.HELD}
ROLES = ("moderator", "admin")
LIST_NAMES = ("blocked_terms", "suspect_terms", "blocked_domains", "allowed_domains")
REPORT_REASONS = ("spam", "abuse", "misinformation", "self_harm", "other")
LABELS = {"ok", "spam", "profanity", "unsafe_medical", "self_harm", "harassment"}
REPORT_LABEL = {"spam": "spam", "abuse": "harassment", "misinformation": "unsafe_medical",
                "self_harm": "self_harm"}

# Asked for every batch the worker moderates, so built once (see repository.BATCH_ROWS).
_BANS_AMONG = select(AuthorBan.author_ref, AuthorBan.until).where(
    AuthorBan.author_ref.in_(bindparam("refs", expanding=True)), AuthorBan.lifted_at.is_(None))


def _standing_among(refs_table: str) -> Select[Any]:
    """Per author of the JSON array :refs, one row: the author, whether it has at least
    :skip + 1 approved comments, whether any was rejected. One statement for a whole batch's
    authors, whatever their number: the list is a single parameter, read as a table by
    `refs_table` (SQLite's json_each, PostgreSQL's json_array_elements_text). Built of
    bounded look-ups (the :skip-th approved row, the first rejected one), so an author with
    thousands of comments, or an IP shared by many, costs as little as one with three."""
    ref = getattr(func, refs_table)(bindparam("refs", type_=JSON)).table_valued("value").alias("r")
    approved = exists(select(Comment.id).where(
        Comment.author_ref == ref.c.value, Comment.status == Status.APPROVED, decided()
    ).limit(1).offset(bindparam("skip")))
    # OFFSET, even 0, keeps PostgreSQL from turning EXISTS into one hashed scan of every
    # rejected comment (it expects a hundred authors from the JSON array whatever it holds,
    # and without statistics chose that for one author: 6 ms instead of 0.05).
    rejected = exists(select(Comment.id).where(
        Comment.author_ref == ref.c.value, Comment.status == Status.REJECTED, decided()
    ).limit(1).offset(0))
    return select(ref.c.value, approved, rejected)


# Built once: asked for every batch the worker moderates. Before, one statement read 8 authors
# at most (padded to 1, 2, 4 or 8 so that statements were compiled once), and a batch of 250
# comments made about 25 round trips for its authors.
_STANDING_AMONG = {"sqlite": _standing_among("json_each"),
                   "postgresql": _standing_among("json_array_elements_text")}


# Distinct reporters it takes, at least, to unpublish a comment: never one anonymous voice.
MIN_REPORTERS_TO_UNPUBLISH = 2


@dataclass(frozen=True)
class ModerationRules:
    report_threshold: int = 3
    report_threshold_self_harm: int = 3
    trust_min_approved: int = 3


def report_alert() -> ColumnElement[bool]:
    """A published comment readers reported as self-harm: urgent for moderators, still public.
    Through the queue index (status, rank) like every queue read."""
    return and_(Comment.status == Status.APPROVED, Comment.rank == PRIORITY_RANK["urgent"],
                Comment.raised_by == "reports")


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's name and role."""

    key_id: int
    name: str
    role: str


def hash_key(key: str) -> str:
    # Keys are 256 random bits, so an unsalted SHA-256 is enough to make a leaked table useless.
    return hashlib.sha256(key.encode()).hexdigest()


_HEX = set("0123456789abcdefABCDEF")


def strong_token(key: str) -> bool:
    """Whether a chosen key can hold 32 random bytes: enough characters of its alphabet (hex
    carries 4 bits a character, URL-safe base64 6), and not a run of a few characters. It
    cannot prove randomness; `triage keys create` makes keys that are."""
    body = key.removeprefix("trg_")
    bits_per_char = 4 if set(body) <= _HEX else 6
    return len(body) * bits_per_char >= 256 and len(set(body)) >= 10


def _cursor(c: Comment) -> str:
    raw = json.dumps([c.rank, iso(c.created_at), c.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _uncursor(cursor: str) -> tuple[int, dt.datetime, str]:
    try:
        rank, at, cid = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return int(rank), dt.datetime.fromisoformat(at.replace("Z", "+00:00")), str(cid)
    except (ValueError, TypeError) as exc:
        raise Invalid("The cursor is not one this API handed out.",
                      errors=[{"field": "cursor", "message": "malformed cursor"}]) from exc


class ModerationService:
    """Moderator and admin actions over the same database as the comments service."""

    def __init__(self, comments: CommentService, rules: ModerationRules | None = None) -> None:
        self.comments = comments
        self.db: Database = comments.db
        self.rules = rules or ModerationRules()

    # -- keys ----------------------------------------------------------------------------------
    def create_key(self, name: str, role: str, key: str | None = None) -> tuple[ApiKey, str]:
        """Create a key; the plaintext is returned once and never stored. Of a key we made, the
        first 8 characters are kept to tell keys apart ("trg_" and 4 random ones); of a key an
        operator chose, nothing."""
        if role not in ROLES:
            raise Invalid(f"role must be one of {', '.join(ROLES)}",
                          errors=[{"field": "role", "message": "unknown role"}])
        prefix = ""
        if key is None:
            key = "trg_" + secrets.token_urlsafe(32)
            prefix = key[:8]
        with self.db.session() as s:
            row = ApiKey(name=name, role=role, key_hash=hash_key(key), prefix=prefix)
            s.add(row)
        return row, key

    def bootstrap_admin(self, key: str, name: str = "bootstrap") -> bool:
        """Create an admin key with an operator's value, only while no live admin key exists;
        a key once revoked is never restored. Returns whether it was created."""
        if not strong_token(key):
            raise Invalid("TRIAGE_BOOTSTRAP_TOKEN must hold at least 32 random bytes (43 or more "
                          "URL-safe base64 characters, or 64 hex digits).",
                          errors=[{"field": "TRIAGE_BOOTSTRAP_TOKEN", "message": "too weak"}])
        with self.db.session() as s:
            live_admin = s.scalar(select(ApiKey.id).where(ApiKey.role == "admin",
                                                          ApiKey.revoked_at.is_(None)).limit(1))
            known = s.scalar(select(ApiKey.id).where(ApiKey.key_hash == hash_key(key)))
        if live_admin is not None or known is not None:
            return False
        try:
            self.create_key(name, "admin", key)
        except IntegrityError:
            return False  # another process created it at the same moment
        return True

    def list_keys(self) -> list[ApiKey]:
        with self.db.session() as s:
            return list(s.scalars(select(ApiKey).order_by(ApiKey.id)))

    def revoke_key(self, key_id: int) -> ApiKey:
        with self.db.session() as s:
            row = s.get(ApiKey, key_id)
            if row is None:
                raise NotFound(f"No key with id {key_id}.")
            row.revoked_at = row.revoked_at or utcnow()
            return row

    def authenticate(self, key: str) -> Principal | None:
        """The principal for a presented key, or None (unknown or revoked)."""
        digest = hash_key(key)
        with self.db.session() as s:
            row = s.scalars(select(ApiKey).where(ApiKey.key_hash == digest)).first()
            # The lookup is by hash; compare again in constant time before trusting it.
            if row is None or row.revoked_at is not None or not hmac.compare_digest(row.key_hash, digest):
                return None
            return Principal(row.id, row.name, row.role)

    # -- the queue -----------------------------------------------------------------------------
    def queue(
        self,
        status: str = Status.HELD,
        category: str | None = None,
        priority: str | None = None,
        article: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Urgent first, then oldest first. The held and reported queues also show published
        comments readers reported as self-harm (`report_alert`), pinned with the urgent."""
        after = _uncursor(cursor) if cursor else None
        with self.db.session() as s:
            wheres = [Comment.status == status]
            if status in (Status.HELD, Status.REPORTED):
                # Read apart and merged: as one OR, SQLite left the queue index for a sort.
                wheres.append(report_alert())
            fetch = limit * 20 if category else limit + 1
            rows: list[tuple[Comment, str]] = []
            for where in wheres:
                q = select(Comment, Article.slug).join(Article, Article.id == Comment.article_id)
                q = q.where(where)
                if status != Status.PENDING:
                    q = q.where(decided())
                if priority:
                    q = q.where(Comment.priority == priority)
                if article:
                    q = q.where(Article.slug == article)
                if after is not None:
                    rank, at, cid = after
                    q = q.where(or_(
                        Comment.rank > rank,
                        and_(Comment.rank == rank, Comment.created_at > at),
                        and_(Comment.rank == rank, Comment.created_at == at, Comment.id > cid),
                    ))
                q = q.order_by(Comment.rank, Comment.created_at, Comment.id)
                rows += [(c, slug) for c, slug in s.execute(q.limit(fetch))]
            rows.sort(key=lambda r: (r[0].rank, aware(r[0].created_at), r[0].id))
            items: list[dict[str, Any]] = []
            last: Comment | None = None
            more = False
            # Category lives in a JSON list; filter in Python so SQLite and PostgreSQL agree.
            for c, slug in rows:
                if category and category not in (c.categories or []):
                    continue
                if len(items) == limit:
                    more = True
                    break
                items.append(self.view(c, slug))
                last = c
            return items, (_cursor(last) if more and last is not None else None)

    @staticmethod
    def view(c: Comment, slug: str) -> dict[str, Any]:
        """The moderators' shape of a comment (they may see the email)."""
        return {
            "id": c.id,
            "article": slug,
            "author": c.author,
            "email": c.email,
            "author_ref": c.author_ref,
            "body": c.body,
            "masked_body": c.masked_body,
            "status": c.status,
            "priority": c.priority,
            "categories": list(c.categories or []),
            "scores": dict(c.scores or {}),
            "findings": list(c.findings or []),
            "policy_version": c.policy_version,
            "report_count": c.report_count,
            # Why it is before a moderator: readers' reports, the engine's filters, or a person.
            "raised_by": c.raised_by or ("engine" if c.policy_version else None),
            "version": c.version,
            "created_at": iso(c.created_at),
            "decided_at": iso(c.decided_at),
        }

    def detail(self, comment_id: str) -> dict[str, Any]:
        with self.db.session() as s:
            c = s.get(Comment, comment_id)
            if c is None:
                raise NotFound(f"No comment with id '{comment_id}'.")
            slug = s.get(Article, c.article_id).slug  # type: ignore[union-attr]
            out = self.view(c, slug)
            rows = s.scalars(select(Decision).where(Decision.comment_id == c.id)
                             .order_by(Decision.comment_version))
            out["history"] = [
                {"at": iso(d.created_at), "actor": d.actor, "action": d.action,
                 "from": d.from_status, "to": d.to_status, "reason": d.reason,
                 "policy_version": d.policy_version}
                for d in rows
            ]
            return out

    # -- decisions -----------------------------------------------------------------------------
    def decide(
        self, comment_id: str, action: str, actor: str, version: int | None,
        reason: str | None = None, note: str | None = None,
    ) -> dict[str, Any]:
        """A moderator's decision; a stale version is a conflict, never a silent overwrite."""
        if action not in ACTIONS:
            raise Invalid("action must be approve, reject or hold",
                          errors=[{"field": "action", "message": "unknown action"}])
        to_status = ACTIONS[action]
        text = " — ".join(p for p in (reason, note) if p) or None
        try:
            with self.db.session() as s:
                c = s.get(Comment, comment_id)
                if c is None:
                    raise NotFound(f"No comment with id '{comment_id}'.")
                if version is not None and c.version != version:
                    raise Conflict(
                        f"The comment is at version {c.version}, not {version}; reload and decide again.")
                if to_status == Status.REJECTED:
                    c.published_body = None  # rejecting unpublishes
                # A moderator's decision answers a report alert: it leaves the queues.
                priority = "normal" if c.raised_by == "reports" and to_status != Status.HELD else None
                events = transition(s, c, actor=actor, action=action, to_status=to_status, reason=text,
                                    priority=priority)
                c.raised_by = "moderator"
                self._learn(s, c, action, reason)
                slug = s.get(Article, c.article_id).slug  # type: ignore[union-attr]
                result = self.view(c, slug)
        except IntegrityError as exc:
            raise Conflict("Another decision on this comment landed first; reload.") from exc
        self.comments.emit_all(events)
        return result

    def _learn(self, s: Session, c: Comment, action: str, reason: str | None) -> None:
        """Approve → ham, reject → the reason's category (the submit-ham/submit-spam idea)."""
        if action == "approve":
            label = "ok"
        elif action == "reject":
            label = (reason if reason in LABELS else None) or next(
                (cat for cat in (c.categories or []) if cat in LABELS), "spam")
        else:
            return
        s.add(TrainingExample(body=c.body, author=c.author, label=label, source="moderator"))

    def bulk_decide(self, items: list[dict[str, Any]], actor: str) -> list[dict[str, Any]]:
        """One result per id; one failure does not stop the others. Each needs the version
        the moderator reviewed: a stale one is 409 for that item."""
        out = []
        for item in items:
            try:
                if not isinstance(item.get("version"), int):
                    raise Invalid("version is required",
                                  errors=[{"field": "version", "message": "required"}])
                state = self.decide(item["id"], item["action"], actor, item["version"],
                                    item.get("reason"), item.get("note"))
                out.append({"id": item["id"], "status": 200, "comment": state})
            except (NotFound, Conflict, Invalid) as exc:
                code = {NotFound: 404, Conflict: 409, Invalid: 422}[type(exc)]
                out.append({"id": item["id"], "status": code, "detail": exc.detail})
        return out

    # -- authors -------------------------------------------------------------------------------
    def ban(self, ref: str, actor: str, until: dt.datetime | None, reason: str | None) -> dict[str, Any]:
        with self.db.session() as s:
            s.add(AuthorBan(author_ref=ref, actor=actor, until=until, reason=reason))
        return {"author_ref": ref, "banned": True, "until": iso(until)}

    def unban(self, ref: str, actor: str) -> dict[str, Any]:
        now = utcnow()
        with self.db.session() as s:
            for ban in s.scalars(select(AuthorBan).where(AuthorBan.author_ref == ref,
                                                         AuthorBan.lifted_at.is_(None))):
                ban.lifted_at = now
        return {"author_ref": ref, "banned": False}

    def is_banned(self, ref: str | None) -> bool:
        if not ref:
            return False
        now = utcnow()
        with self.db.session() as s:
            for ban in s.scalars(select(AuthorBan).where(AuthorBan.author_ref == ref,
                                                         AuthorBan.lifted_at.is_(None))):
                until = aware(ban.until)
                if until is None or until > now:
                    return True
        return False

    def _reading(self, s: Session | Connection | None) -> Any:
        """The caller's open session or connection, or a connection of our own."""
        return nullcontext(s) if s is not None else self.db.reading()

    def banned_among(self, refs: set[str], s: Session | Connection | None = None) -> set[str]:
        """Which of these authors are banned now (one query for a batch; on `s` if the caller
        has a session or connection open)."""
        if not refs:
            return set()
        now = utcnow()
        with self._reading(s) as s:
            rows = s.execute(_BANS_AMONG, {"refs": list(refs)}).all()
        return {ref for ref, until in rows if until is None or aware(until) > now}  # type: ignore[operator]

    def trusted_among(self, refs: set[str], s: Session | Connection | None = None) -> set[str]:
        """Which of these authors have N approved comments and none rejected."""
        if not refs:
            return set()
        need = self.rules.trust_min_approved
        with self._reading(s) as s:
            rows = s.execute(_STANDING_AMONG[self.db.engine.dialect.name],
                             {"refs": sorted(refs), "skip": max(need - 1, 0)}).all()
        # Trust needs `need` approved comments (none, if the rule asks for none) and no rejection.
        return {ref for ref, approved, rejected in rows if (approved or need <= 0) and not rejected}

    def is_trusted(self, ref: str | None) -> bool:
        """N approved comments and none rejected."""
        return ref is not None and ref in self.trusted_among({ref})

    # -- community reports ---------------------------------------------------------------------
    def report(self, comment_id: str, reason: str, reporter: str) -> dict[str, Any]:
        """Once per reporter per comment. A self-harm report makes the comment urgent for
        moderators at once, but leaves it public: only several distinct reporters (or a
        moderator) take a comment off the public endpoint."""
        if reason not in REPORT_REASONS:
            raise Invalid("unknown reason", errors=[{"field": "reason", "message": "unknown reason"}])
        events: list[tuple[str, dict[str, Any]]] = []
        try:
            with self.db.session() as s:
                c = s.get(Comment, comment_id)
                if c is None or c.status not in (Status.APPROVED, Status.REPORTED):
                    raise NotFound(f"No published comment with id '{comment_id}'.")
                s.add(Report(comment_id=c.id, reporter_hash=reporter, reason=reason))
                s.flush()
                c.report_count += 1
                counts = dict(s.execute(select(Report.reason, func.count())
                                        .where(Report.comment_id == c.id)
                                        .group_by(Report.reason)).all())
                total = sum(counts.values())
                self_harm = counts.get("self_harm", 0)
                floor = MIN_REPORTERS_TO_UNPUBLISH
                over = (total >= max(self.rules.report_threshold, floor)
                        or self_harm >= max(self.rules.report_threshold_self_harm, floor))
                cats = sorted({REPORT_LABEL.get(r, "reported") for r in counts})
                summary = f"{total} reports: " + ", ".join(sorted(counts))
                urgent = "urgent" if self_harm else None
                # A self-harm report alerts unless readers' reports already did (and no
                # moderator has answered them since).
                alert = reason == "self_harm" and c.raised_by != "reports"
                if c.status == Status.APPROVED and (over or alert):
                    events = transition(
                        s, c, actor="community", action="report",
                        to_status=Status.REPORTED if over else Status.APPROVED,
                        reason=summary, priority=urgent,
                        categories=sorted(set(c.categories or []) | set(cats)),
                    )
                    c.raised_by = "reports"
                    if not over:
                        # Still public: moderators are alerted; readers' pages are unchanged.
                        events = [("comment.urgent", payload) for _, payload in events[:1]]
                result = {"id": c.id, "reports": c.report_count, "status": c.status}
        except IntegrityError as exc:
            raise Conflict("You have already reported this comment.") from exc
        self.comments.emit_all(events)
        return result

    # -- lists ---------------------------------------------------------------------------------
    def get_list(self, name: str) -> dict[str, Any]:
        self._check_list(name)
        with self.db.session() as s:
            row = s.get(ModerationList, name)
            return {"name": name, "items": list(row.items) if row else [],
                    "version": row.version if row else 0,
                    "updated_at": iso(row.updated_at) if row else None}

    def put_list(self, name: str, items: list[str], actor: str) -> dict[str, Any]:
        self._check_list(name)
        cleaned = sorted({i.strip().lower() for i in items if i and i.strip()})
        with self.db.session() as s:
            row = s.get(ModerationList, name)
            before = list(row.items) if row else []
            if row is None:
                row = ModerationList(name=name, items=cleaned, version=1)
                s.add(row)
            else:
                row.items = cleaned
                row.version += 1
                row.updated_at = utcnow()
            s.add(ListChange(name=name, actor=actor, before=before, after=cleaned))
        return self.get_list(name)

    def lists_snapshot(self) -> tuple[int, dict[str, list[str]]]:
        """All lists and a version number that changes whenever any list does."""
        with self.db.session() as s:
            rows = list(s.scalars(select(ModerationList)))
        return sum(r.version for r in rows), {r.name: list(r.items) for r in rows}

    def list_history(self, name: str) -> list[dict[str, Any]]:
        self._check_list(name)
        with self.db.session() as s:
            rows = s.scalars(select(ListChange).where(ListChange.name == name).order_by(ListChange.id))
            return [{"at": iso(r.created_at), "actor": r.actor, "before": r.before, "after": r.after}
                    for r in rows]

    @staticmethod
    def _check_list(name: str) -> None:
        if name not in LIST_NAMES:
            raise NotFound(f"No list '{name}'; lists are {', '.join(LIST_NAMES)}.")


__all__ = ["ModerationService", "ModerationRules", "Principal", "salted_hash", "hash_key"]
