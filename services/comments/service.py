"""Use cases. Every state change of a comment goes through here and is recorded as a Decision."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import (
    JSON, Integer, Table, any_, bindparam, column, delete, func, insert, select, update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.engine import Connection, CursorResult, Row
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnClause
from sqlalchemy.sql.selectable import TableValuedAlias

from ..db import Database, RowInsert
from ..events import Event, Publisher, publish_many
from . import repository as repo
from .errors import Invalid, NotFound
from .shapes import EngineVerdict
from .models import (
    ACTION_TO_STATUS,
    PRIORITY_RANK,
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

log = logging.getLogger("triage.comments")

# Sends the moderation task for a comment id (with the request id), and publishes the given
# events in the same round trip to the broker.
Dispatch = Callable[[str, str | None, Sequence[Event]], None]
IDEMPOTENCY_SECONDS = 24 * 3600


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value


@dataclass(frozen=True)
class Accepted:
    """What the commenter is told about a stored comment."""

    id: str
    status: str


# Declarative classes type their __table__ as any FromClause; these two are Tables.
_DECISIONS = cast(Table, Decision.__table__)
_INSERT_DECISION = insert(_DECISIONS)


# The worker's statements, built once: building a statement with a dozen parameters costs
# SQLAlchemy more (its cache key) than SQLite takes to run it for a lone comment.
_COMMENTS = cast(Table, Comment.__table__)
# By id alone, the status checked in Python: given `status = 'pending'` too, SQLite walks the
# (status, created_at) index through every pending comment instead of looking the ids up, so
# each batch cost as much as the whole backlog (in a benchmark run, 11.6 ms instead of 1.8).
_BATCH_ROWS = (
    select(*_COMMENTS.c, Article.slug)
    .join(Article, Article.id == _COMMENTS.c.article_id)
    .where(_COMMENTS.c.id.in_(bindparam("ids", expanding=True)))
)
# What an engine decision writes on the row: the engine's findings and the state change.
_ENGINE_UPDATE_KEYS = ("findings", "scores", "policy_version", "masked_body", "published_body",
                       "status", "priority", "rank", "categories", "decided_at", "version",
                       "_id", "_version")
_ENGINE_UPDATE = (
    update(_COMMENTS)
    .where(_COMMENTS.c.id == bindparam("_id"), _COMMENTS.c.version == bindparam("_version"),
           _COMMENTS.c.status == Status.PENDING)
    .values({k: bindparam(k) for k in _ENGINE_UPDATE_KEYS if not k.startswith("_")})
)


# On PostgreSQL the same UPDATE for a whole batch in one statement, its rows passed as one JSON
# array. Run row by row (pipelined by the driver), each execution was planned afresh (custom
# plans, see db.make_engine) and started the executor once: 2,000 comments in batches of 250
# took 1,215-1,540 ms that way and 1,060-1,150 ms this way (three interleaved pairs). SQLite
# runs the executemany above in its own process, where a statement per row costs no round
# trip, and it has no json_to_recordset.
def _json_recordset(name: str, *columns: ColumnClause[Any]) -> TableValuedAlias:
    """PostgreSQL: the JSON array bound as `rows`, read as a table `name` of these typed
    columns (see `_json_rows`)."""
    return (func.json_to_recordset(bindparam("rows", type_=JSON)).table_valued(*columns)
            .render_derived(name=name, with_types=True))


def _json_rows(rows: list[dict[str, Any]], time_key: str) -> list[dict[str, Any]]:
    """Rows for `_json_recordset`: the time as ISO text, which keeps its zone."""
    return [{**r, time_key: r[time_key].isoformat()} for r in rows]


_ENGINE_ROWS = _json_recordset(
    "v", column("_id", _COMMENTS.c.id.type), column("_version", Integer),
    *(column(k, _COMMENTS.c[k].type) for k in _ENGINE_UPDATE_KEYS if not k.startswith("_")))
_ENGINE_UPDATE_SET = (
    update(_COMMENTS)
    # By id and version only. Every change of status bumps the version (see plan_transition)
    # and only rows read as pending are written, so the version alone says the row is as it
    # was read; asked for `status = 'pending'` too, PostgreSQL walked the status index, which
    # without VACUUM keeps an entry for every comment that was ever pending (29,000 for
    # 2,000 pending), and took 9-27 ms for a batch of 250 where the primary key takes 1.4.
    # The ids come twice, the second time as an array the planner can count: it takes
    # json_to_recordset for a hundred rows whatever it holds, and on a table without
    # statistics it joined a batch of one through every pending comment (4.4 ms, and 7-9 ms
    # of the server's CPU per comment at 200 a second) instead of looking it up (0.2 ms).
    .where(_COMMENTS.c.id == _ENGINE_ROWS.c._id, _COMMENTS.c.version == _ENGINE_ROWS.c._version,
           _COMMENTS.c.id == any_(bindparam("ids", type_=ARRAY(_COMMENTS.c.id.type))))
    .values({k: _ENGINE_ROWS.c[k] for k in _ENGINE_UPDATE_KEYS if not k.startswith("_")})
)


# The batch's decisions, on PostgreSQL likewise one statement: run row by row (pipelined by the
# driver) the INSERT cost the worker 33-41 us of CPU per comment, building and sending 250
# executions; as one JSON array, 14-17 us (2,000 comments in batches of 250, four interleaved
# pairs). (SQLite runs the executemany in its own process, with no round trip to save.)
_DECISION_KEYS = tuple(c.key for c in _DECISIONS.c if c.key != "id")
_DECISION_ROWS = _json_recordset(
    "d", *(column(k, _DECISIONS.c[k].type) for k in _DECISION_KEYS))
_INSERT_DECISIONS_SET = insert(_DECISIONS).from_select(
    list(_DECISION_KEYS), select(*(_DECISION_ROWS.c[k] for k in _DECISION_KEYS)))


def _insert_decisions(conn: Connection, decisions: list[dict[str, Any]]) -> None:
    """Append the batch's decisions (the unique (comment, version) constraint refuses all of
    them if it refuses one, as the transaction around them would)."""
    if conn.dialect.name != "postgresql":
        conn.execute(_INSERT_DECISION, decisions)
        return
    conn.execute(_INSERT_DECISIONS_SET, {"rows": _json_rows(decisions, "created_at")})


def _engine_update(conn: Connection, updates: list[dict[str, Any]]) -> int:
    """Write the engine's rows; returns how many matched (-1: the driver cannot tell)."""
    if conn.dialect.name != "postgresql":
        return conn.execute(_ENGINE_UPDATE, updates).rowcount
    return conn.execute(_ENGINE_UPDATE_SET, {"rows": _json_rows(updates, "decided_at"),
                                             "ids": [u["_id"] for u in updates]}).rowcount


class _Changed(Exception):
    """A comment changed between being read and being written: retry one by one."""


@dataclass(frozen=True, slots=True)
class NewComment:
    author: str
    body: str
    email: str | None = None
    parent_id: str | None = None


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite hands back naive datetimes; they were stored as UTC
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.isoformat().replace("+00:00", "Z")


def encode_cursor(comment: Comment | Row[Any]) -> str:
    raw = json.dumps([_iso(comment.created_at), comment.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, str]:
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
        "created_at": _iso(c.created_at),
        "parent_id": c.parent_id,
    }


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
        self._insert_comment = RowInsert(_COMMENTS, db.engine.dialect)

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
            if row is None or _aware(row.created_at) < window:  # type: ignore[operator]
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
            "author_ref": author_ref(self.salt, new.email, None) or ip_hash,
            "ip_hash": ip_hash, "report_count": 0, "version": 1,
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
            updates.append({k: values[k] for k in _ENGINE_UPDATE_KEYS})
            decisions.append(change.decision)
            events += change.events
            decided.append(row.id)
        if updates:
            with self.db.writing() as s:
                _insert_decisions(s, decisions)
                if _engine_update(s, updates) not in (-1, len(updates)):  # a row changed since it was read
                    raise _Changed()
        return decided, events

    @staticmethod
    def _pending_rows(s: Session | Connection, ids: list[str]) -> list[tuple[Any, str]]:
        rows = s.execute(_BATCH_ROWS, {"ids": ids}).all()
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
        cutoff = utcnow() - dt.timedelta(seconds=older_than_seconds)
        with self.db.session() as s:
            return repo.pending_ids(s, cutoff, limit)

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


def event_payload(comment_id: str, slug: str, status: str, priority: str,
                  categories: Iterable[str]) -> dict[str, Any]:
    """What every comment event carries: never the body, the author or anything private."""
    return {"id": comment_id, "article": slug, "status": status, "priority": priority,
            "categories": list(categories)}


STATUS_EVENT = {
    Status.APPROVED: "comment.published",
    Status.HELD: "comment.held",
    Status.REJECTED: "comment.rejected",
    Status.REPORTED: "comment.reported",
}


@dataclass(frozen=True)
class Change:
    """What one state change writes: the comment's new column values, its Decision row, and
    the events to publish once the transaction has committed."""

    comment: dict[str, Any]
    decision: dict[str, Any]
    events: list[Event]


def plan_transition(
    c: Any,
    *,
    actor: str,
    action: str,
    to_status: str,
    reason: str | None,
    priority: str | None = None,
    categories: list[str] | None = None,
    policy_version: str | None = None,
    slug: str,
) -> Change:
    """The one definition of a state change, as data: a Decision appended for the comment's
    current version, the row moved to `to_status`, the version bumped. `c` is the comment as
    it is now (an ORM object or any object with its attributes); nothing is written here."""
    new_priority = priority if priority is not None else c.priority
    rank = PRIORITY_RANK.get(new_priority, 1) if priority is not None else c.rank
    new_categories = list(categories if categories is not None else (c.categories or []))
    published = c.published_body
    if to_status == Status.APPROVED and published is None:
        # Approving publishes the masked text wherever the engine masked it.
        published = c.masked_body if c.masked_body is not None else c.body
    now = utcnow()
    comment = {"status": to_status, "priority": new_priority, "rank": rank,
               "categories": new_categories, "published_body": published, "decided_at": now,
               "version": c.version + 1}
    decision = {
        "comment_id": c.id, "comment_version": c.version, "actor": actor, "action": action,
        "from_status": c.status, "to_status": to_status, "reason": reason,
        "priority": new_priority, "categories": list(new_categories),
        "findings": list(c.findings or []), "scores": dict(c.scores or {}),
        "policy_version": policy_version or c.policy_version, "created_at": now,
    }
    payload = event_payload(c.id, slug, to_status, new_priority, new_categories)
    events: list[Event] = [(STATUS_EVENT[to_status], payload)]
    if to_status == Status.HELD and new_priority == "urgent":
        events.append(("comment.urgent", dict(payload)))
    if c.status == Status.APPROVED and to_status != Status.APPROVED:
        events.append(("comment.unpublished", dict(payload)))  # readers no longer see it
    return Change(comment, decision, events)


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


def salted_hash(salt: str, kind: str, value: str) -> str:
    return hashlib.sha256(f"{salt}\x00{kind}\x00{value}".encode()).hexdigest()


def author_ref(salt: str, email: str | None, ip: str | None) -> str | None:
    """Authors are known by a salted hash of their email, else of their IP."""
    if email:
        return salted_hash(salt, "email", email.strip().lower())
    if ip:
        return salted_hash(salt, "ip", ip)
    return None
