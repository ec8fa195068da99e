"""Use cases. Every state change of a comment goes through here and is recorded as a Decision."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import (
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..db import Database, RowInsert
from ..events import Event, Publisher, publish_many
from . import repository as repo
from .errors import Invalid, NotFound
from .models import (
    ACTION_TO_STATUS,
    Article,
    Comment,
    Decision,
    IdempotencyKey,
    LearnedModel,
    Status,
    TrainingExample,
    new_id,
    utcnow,
)
from .shapes import (
    Accepted,
    EngineVerdict,
    NewComment,
    author_ref,
    aware,
    decode_cursor,
    encode_cursor,
    public_view,
    salted_hash,
)
from .transitions import event_payload, plan_transition

log = logging.getLogger("triage.comments")

# Sends the moderation task for a comment id (with the request id), and publishes the given
# events in the same round trip to the broker.
Dispatch = Callable[[str, str | None, Sequence[Event]], None]
IDEMPOTENCY_SECONDS = 24 * 3600


class _Changed(Exception):
    """A comment changed between being read and being written: retry one by one."""


class CommentService:
    """The comments domain's use cases, over one database."""

    def __init__(
        self,
        db: Database,
        dispatch: Dispatch | None = None,
        publisher: Publisher | None = None,
        salt: str = "",
        redispatch_many: Callable[[list[str]], int] | None = None,
    ) -> None:
        self.db = db
        self.dispatch = dispatch
        self.redispatch_many = redispatch_many
        self.publisher = publisher
        self.salt = salt
        self._article_ids: dict[str, int] = {}
        self._insert_comment = RowInsert(repo.COMMENTS_TABLE, db.engine.dialect)

    def hash_ref(self, kind: str, value: str) -> str:
        """Salted hash identifying an author or reporter without keeping who they are."""
        return salted_hash(self.salt, kind, value)

    # -- articles ---------------------------------------------------------------------------
    def add_article(self, slug: str, title: str) -> Article:
        """Register an article (idempotent on slug: the title is updated)."""
        with self.db.session() as s:
            art = repo.article_by_slug(s, slug)
            if art is None:
                art = Article(slug=slug, title=title)
                s.add(art)
            else:
                art.title = title
            s.flush()
            return art

    def list_articles(self) -> list[Article]:
        with self.db.session() as s:
            return list(s.scalars(select(Article).order_by(Article.id)))

    # -- commenters ---------------------------------------------------------------------------
    def submit(
        self, slug: str, new: NewComment, request_id: str | None = None, ip: str | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[Accepted, bool]:
        """Store a comment as pending, commit, and only then hand it to the queue.

        Returns the comment's id and status, and whether it was created now (False: an earlier
        request with the same Idempotency-Key from the same client created it)."""
        key_hash = fingerprint = None
        if idempotency_key:
            key_hash = self.hash_ref("idem", f"{ip or ''}\x00{idempotency_key}")
            fingerprint = hashlib.sha256(
                json.dumps([slug, new.author, new.body, new.email, new.parent_id]).encode()
            ).hexdigest()
            earlier = self._replay(key_hash, fingerprint)
            if earlier is not None:
                return earlier, False
        try:
            comment_id = self._insert(slug, new, request_id, ip, key_hash, fingerprint)
        except IntegrityError:
            # A concurrent request with the same key won the race: answer with its comment.
            earlier = self._replay(key_hash, fingerprint) if key_hash and fingerprint else None
            if earlier is None:
                raise
            return earlier, False
        # Committed: a failed send leaves the comment pending for the sweeper, never lost.
        self._dispatch(comment_id, request_id, [(
            "comment.submitted", event_payload(comment_id, slug, Status.PENDING, "normal", []))])
        return Accepted(comment_id, Status.PENDING), True

    def _replay(self, key_hash: str, fingerprint: str) -> Accepted | None:
        window = utcnow() - dt.timedelta(seconds=IDEMPOTENCY_SECONDS)
        with self.db.session() as s:
            row = s.get(IdempotencyKey, key_hash)
            if row is None or aware(row.created_at) < window:  # type: ignore[operator]
                return None
            if row.fingerprint != fingerprint:
                raise Invalid(
                    "This Idempotency-Key was already used with a different request.",
                    errors=[{"field": "Idempotency-Key", "message": "reused with another body"}],
                )
            earlier = s.get(Comment, row.comment_id)
            return Accepted(earlier.id, earlier.status) if earlier is not None else None

    def article_id(self, slug: str) -> int:
        """The article's id; slugs never change owner, so known ones are kept in memory."""
        cached = self._article_ids.get(slug)
        if cached is not None:
            return cached
        with self.db.session() as s:
            art = repo.article_by_slug(s, slug)
            if art is None:
                raise NotFound(f"No article with slug '{slug}'.")
            self._article_ids[slug] = art.id
            return art.id

    def _insert(
        self, slug: str, new: NewComment, request_id: str | None, ip: str | None,
        key_hash: str | None, fingerprint: str | None,
    ) -> str:
        """Insert and commit the pending row; returns its id."""
        article_id = self.article_id(slug)
        # The hottest write in the service: a plain dict through a statement compiled once,
        # not the unit of work (building an ORM object alone costs as much as the insert).
        now = utcnow()
        ip_hash = self.hash_ref("ip", ip) if ip else None
        values = {
            "id": new_id(), "article_id": article_id, "parent_id": new.parent_id,
            "author": new.author, "email": new.email, "body": new.body, "published_body": None,
            "status": Status.PENDING, "priority": "normal", "rank": 1, "categories": [],
            "findings": [], "scores": {}, "policy_version": None, "masked_body": None,
            # Without an email the author is known by the IP's hash: computed once for both.
            "author_ref": author_ref(self.salt, new.email, ip) if new.email else ip_hash,
            "ip_hash": ip_hash, "report_count": 0, "raised_by": None, "version": 1,
            "request_id": request_id, "created_at": now, "decided_at": None,
        }
        if new.parent_id is None and not key_hash:
            # The common case, a new thread without an idempotency key: one row, nothing read.
            self.db.insert_committed(self._insert_comment, values)
            return str(values["id"])
        with self.db.writing() as conn:
            if new.parent_id is not None:
                parent = conn.execute(
                    select(Comment.article_id, Comment.status).where(Comment.id == new.parent_id)
                ).first()
                if parent is None or parent[0] != article_id or parent[1] != Status.APPROVED:
                    raise Invalid(
                        "parent_id must be an approved comment on the same article.",
                        errors=[{"field": "parent_id", "message": "not an approved comment here"}],
                    )
            self._insert_comment.run(conn, values)
            if key_hash and fingerprint:
                # An expired key may be used afresh; a live one makes this insert fail.
                cutoff = now - dt.timedelta(seconds=IDEMPOTENCY_SECONDS)
                conn.execute(delete(IdempotencyKey).where(IdempotencyKey.key_hash == key_hash,
                                                          IdempotencyKey.created_at < cutoff))
                conn.execute(insert(IdempotencyKey), [{
                    "key_hash": key_hash, "fingerprint": fingerprint, "comment_id": values["id"],
                    "created_at": now}])
        return str(values["id"])

    def purge_idempotency_keys(self) -> int:
        """Forget keys older than the replay window."""
        cutoff = utcnow() - dt.timedelta(seconds=IDEMPOTENCY_SECONDS)
        with self.db.session() as s:
            result = s.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < cutoff))
            return cast("CursorResult[Any]", result).rowcount or 0

    def _dispatch(self, comment_id: str, request_id: str | None, events: Sequence[Event] = ()) -> None:
        if self.dispatch is None:
            self.emit_all(list(events))
            return
        try:
            self.dispatch(comment_id, request_id, events)
        except Exception:  # noqa: BLE001 - the sweeper re-sends; the 202 promise still holds
            log.warning("enqueue failed, comment stays pending", extra={"comment_id": comment_id})
            self.emit_all(list(events))

    def get(self, comment_id: str) -> tuple[Comment, str, Decision | None]:
        """The comment, its article slug and its latest decision."""
        with self.db.session() as s:
            c = s.get(Comment, comment_id)
            if c is None:
                raise NotFound(f"No comment with id '{comment_id}'.")
            art = s.get(Article, c.article_id)
            last = s.scalars(
                select(Decision)
                .where(Decision.comment_id == c.id)
                .order_by(Decision.comment_version.desc())
                .limit(1)
            ).first()
            return c, art.slug if art else "", last

    def approved(
        self, slug: str, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of approved comments of an article, oldest first."""
        after = decode_cursor(cursor) if cursor else None
        article_id = self.article_id(slug)
        with self.db.reading() as conn:
            rows = repo.approved_page(conn, article_id, limit + 1, after)
        more = len(rows) > limit
        rows = rows[:limit]
        return [public_view(c) for c in rows], (encode_cursor(rows[-1]) if more and rows else None)

    # -- the engine ---------------------------------------------------------------------------
    def record_engine_decision(self, comment_id: str, verdict: EngineVerdict) -> bool:
        """Apply the engine's verdict once; False if the comment was already decided."""
        return bool(self.record_engine_decisions({comment_id: verdict}))

    def record_engine_decisions(
        self, verdicts: Mapping[str, EngineVerdict], loaded: Sequence[tuple[Any, str]] | None = None,
    ) -> list[str]:
        """Apply many verdicts in one transaction; returns the ids decided now.

        `loaded` is what `pending_batch` returned for these comments, if the caller has it:
        the rows are then not read again. Comments no longer pending are skipped. If anything
        changed a comment in the meantime (a moderator, another delivery), its decision for the
        same version is refused by the unique (comment, version) constraint or its row no
        longer matches, the whole batch is rolled back, and each verdict is applied on its own
        from a fresh read instead, so every comment is still decided exactly once."""
        try:
            decided, events = self._apply_verdicts(verdicts, loaded)
        except (IntegrityError, _Changed):
            if len(verdicts) == 1 and loaded is None:
                return []
            decided = []
            for cid, verdict in verdicts.items():
                decided += self.record_engine_decisions({cid: verdict})
            return decided
        self.emit_all(events)
        return decided

    def _apply_verdicts(
        self, verdicts: Mapping[str, EngineVerdict], loaded: Sequence[tuple[Any, str]] | None,
    ) -> tuple[list[str], list[tuple[str, dict[str, Any]]]]:
        # The engine's hot write: Core statements, one executemany for the rows and one for
        # their decisions, rather than the unit of work's statement per row.
        decided: list[str] = []
        events: list[tuple[str, dict[str, Any]]] = []
        updates: list[dict[str, Any]] = []
        decisions: list[dict[str, Any]] = []
        # Rows not loaded by the caller are read outside the write: the update is guarded by
        # each row's version and status, and what is planned here takes no writer's turn.
        # (Core connections, not an ORM session: a session's bookkeeping costs as much as the
        # statements for a lone comment.)
        rows = loaded if loaded is not None else self.pending_batch(list(verdicts))
        for row, slug in rows:
            verdict = verdicts.get(row.id)
            if verdict is None or row.status != Status.PENDING:
                continue
            # The verdict is serialised here, once, as it is written.
            engine_values = {
                "findings": [f.to_json() for f in verdict.findings],
                "scores": dict(verdict.scores),
                "policy_version": verdict.policy_version,
                "masked_body": verdict.masked_body,
                "published_body": verdict.published_body,
            }
            current = SimpleNamespace(**{**row._asdict(), **engine_values})
            change = plan_transition(
                current, actor="engine", action=verdict.action,
                to_status=ACTION_TO_STATUS[verdict.action],
                reason=verdict.reason or ", ".join(verdict.categories),
                priority=verdict.priority,
                categories=list(verdict.categories),
                policy_version=verdict.policy_version,
                slug=slug,
            )
            values = {**engine_values, **change.comment, "_id": row.id, "_version": row.version}
            updates.append({k: values[k] for k in repo.ENGINE_UPDATE_KEYS})
            decisions.append(change.decision)
            events += change.events
            decided.append(row.id)
        if updates:
            with self.db.writing() as s:
                repo.insert_decisions(s, decisions)
                if repo.engine_update(s, updates) not in (-1, len(updates)):  # a row changed since it was read
                    raise _Changed()
        return decided, events

    @staticmethod
    def _pending_rows(s: Session | Connection, ids: list[str]) -> list[tuple[Any, str]]:
        rows = s.execute(repo.BATCH_ROWS, {"ids": ids}).all()
        return [(row, row.slug) for row in rows if row.status == Status.PENDING]

    def pending_batch(self, ids: list[str], s: Session | Connection | None = None) -> list[tuple[Any, str]]:
        """The comments among `ids` still awaiting the engine (read-only rows with every
        column of a comment), with their article slugs; on `s` if the caller has one open."""
        if s is not None:
            return self._pending_rows(s, ids)
        with self.db.reading() as own:
            return self._pending_rows(own, ids)

    def stale_pending(self, older_than_seconds: int, limit: int = 1000) -> list[str]:
        """Ids of comments still pending after a grace period (their task may be lost)."""
        return self.stale_pending_page(older_than_seconds, limit)[0]

    def stale_pending_page(
        self, older_than_seconds: int, limit: int, after: str | None = None,
    ) -> tuple[list[str], str | None]:
        """One page of `stale_pending`, oldest first, after the cursor a previous page
        returned; the cursor of the next page, None once the backlog's end is reached."""
        cutoff = utcnow() - dt.timedelta(seconds=older_than_seconds)
        position = None
        if after:
            at, cid = json.loads(after)
            position = (dt.datetime.fromisoformat(at), str(cid))
        with self.db.session() as s:
            rows = repo.pending_ids(s, cutoff, limit, position)
        if len(rows) < limit:
            return [i for i, _ in rows], None
        last_id, last_at = rows[-1]
        return [i for i, _ in rows], json.dumps([last_at.isoformat(), last_id])

    def redispatch(self, ids: Iterable[str]) -> int:
        """Hand comments to the queue again (their message may be lost); returns how many."""
        ids = list(ids)
        if not ids:
            return 0
        if self.redispatch_many is not None:
            return self.redispatch_many(ids)
        for cid in ids:
            self._dispatch(cid, None)
        return len(ids)

    # -- learning -----------------------------------------------------------------------------
    def add_training_examples(self, examples: Iterable[tuple[str, str | None, str]], source: str) -> int:
        """Record labelled examples (body, author, label) as moderator decisions would be."""
        n = 0
        with self.db.session() as s:
            for body, author, label in examples:
                s.add(TrainingExample(body=body, author=author, label=label, source=source))
                n += 1
        return n

    def training_examples(self) -> list[tuple[str, str | None, str]]:
        with self.db.session() as s:
            return [(e.body, e.author, e.label) for e in repo.training_examples(s)]

    def training_examples_with_source(self) -> list[tuple[str, str | None, str, str]]:
        with self.db.session() as s:
            return [(e.body, e.author, e.label, e.source) for e in repo.training_examples(s)]

    def training_example_count(self) -> int:
        with self.db.session() as s:
            return int(s.scalar(select(func.count()).select_from(TrainingExample)) or 0)

    def latest_model_meta(self, name: str) -> tuple[int, int] | None:
        """(id, number of stored examples it was built from) of the newest model."""
        with self.db.session() as s:
            m = repo.latest_model(s, name)
            return (m.id, m.examples) if m else None

    def save_model(self, name: str, blob: bytes, examples: int) -> int:
        with self.db.session() as s:
            m = LearnedModel(name=name, blob=blob, examples=examples)
            s.add(m)
            s.flush()
            return m.id

    def latest_model(self, name: str) -> tuple[int, bytes] | None:
        with self.db.session() as s:
            m = repo.latest_model(s, name)
            return (m.id, m.blob) if m else None

    def latest_model_id(self, name: str) -> int | None:
        with self.db.session() as s:
            return repo.latest_model_id(s, name)

    # -- events -------------------------------------------------------------------------------
    def emit_all(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        """Publish events after the commit that caused them."""
        if self.publisher is None or not events:
            return
        try:
            publish_many(self.publisher, events)
        except Exception:  # noqa: BLE001 - events are best effort; the database is the truth
            log.warning("event publish failed", extra={"events": len(events)})


def transition(
    s: Session,
    c: Comment,
    *,
    actor: str,
    action: str,
    to_status: str,
    reason: str | None,
    priority: str | None = None,
    categories: list[str] | None = None,
    policy_version: str | None = None,
    flush: bool = True,
    slug: str | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """Apply a state change to a comment loaded in session `s` (see `plan_transition`).
    Returns the events to publish once the caller's transaction has committed."""
    if slug is None:
        slug = s.get(Article, c.article_id).slug  # type: ignore[union-attr]
    change = plan_transition(c, actor=actor, action=action, to_status=to_status, reason=reason,
                             priority=priority, categories=categories,
                             policy_version=policy_version, slug=slug)
    s.add(Decision(**change.decision))
    for key, value in change.comment.items():
        setattr(c, key, value)
    if flush:  # the unique (comment, version) constraint speaks now, inside the transaction
        s.flush()
    return change.events


