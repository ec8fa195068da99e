"""Tables. Decisions are the append-only history of every state change of a comment."""

from __future__ import annotations

import datetime as dt
import os
import time
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    literal_column,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_id() -> str:
    """An unguessable id, a UUIDv7 (RFC 9562) as 32 hex characters: 74 random bits after the
    time in milliseconds. Later ids sort after earlier ones, so a new comment's id goes to the
    end of the primary-key index, where a random one would land on any of its pages (the
    insert's costliest part once the index outgrows the cache). Python 3.14's uuid.uuid7 has
    the same layout; 3.11 has none."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = ((ms & (1 << 48) - 1) << 80 | 0x7 << 76 | (rand >> 68) << 64
             | 0b10 << 62 | rand & ((1 << 62) - 1))
    return f"{value:032x}"


class Base(DeclarativeBase):
    pass


class Status:
    PENDING = "pending"
    APPROVED = "approved"
    HELD = "held"
    REJECTED = "rejected"
    # Taken off the public endpoint by community reports, awaiting a moderator.
    REPORTED = "reported"
    ALL = (PENDING, APPROVED, HELD, REJECTED, REPORTED)


# Queue order: urgent items first; a column so the queue can be keyset-paginated.
PRIORITY_RANK = {"urgent": 0, "normal": 1}


ACTION_TO_STATUS = {"publish": Status.APPROVED, "hold": Status.HELD, "block": Status.REJECTED}


class Article(Base):
    __tablename__ = "articles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    slug: Mapped[str] = mapped_column(String(200), unique=True, nullable=False)
    title: Mapped[str] = mapped_column(String(500), nullable=False)
    # Where the article is published (its feed links there), and when it stopped taking comments.
    url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# Pending comments stay out of the indexes that serve only decided ones (the public page, the
# moderation queue, an author's standing): a new comment, the hottest insert, then updates three
# b-trees instead of six. A query reaches these indexes by repeating this condition word for
# word (`decided()`): SQLite uses a partial index only when the query's WHERE holds the index's
# own terms, and a bound parameter (status = ?) proves nothing.
DECIDED_WHERE = "status != 'pending'"


def _decided_index(name: str, *columns: str) -> Index:
    return Index(name, *columns, sqlite_where=text(DECIDED_WHERE),
                 postgresql_where=text(DECIDED_WHERE))


class Comment(Base):
    __tablename__ = "comments"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id"), nullable=False)
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("comments.id"), nullable=True)
    author: Mapped[str] = mapped_column(String(80), nullable=False)
    # Private: never in a public response or a log line.
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    # What readers see once approved (masked when the policy masked profanity).
    published_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=Status.PENDING)
    priority: Mapped[str] = mapped_column(String(16), nullable=False, default="normal")
    rank: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    categories: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    # The engine's latest findings, kept on the row so the moderators' queue is one query.
    findings: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False, default=list)
    scores: Mapped[dict[str, float]] = mapped_column(JSON, nullable=False, default=dict)
    policy_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The body with profanity masked, computed by the engine even when it held the comment,
    # so a moderator's approval publishes the masked text.
    masked_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Salted hashes: who wrote it (email, else IP) and from where; never shown publicly.
    author_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    ip_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    report_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Who put the comment before a moderator when no engine did: "reports" (readers' reports)
    # or "moderator"; NULL for the engine's own decisions (the hot path never writes it).
    raised_by: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # Bumped by every decision; decisions are unique per (comment, version).
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (
        _decided_index("ix_comments_public", "article_id", "status", "created_at", "id"),
        Index("ix_comments_status_created", "status", "created_at"),
        _decided_index("ix_comments_queue", "status", "rank", "created_at", "id"),
        # An author's standing (approved, rejected) is read for every batch: with the status
        # in the index, it is a bounded look-up however many comments the author has.
        _decided_index("ix_comments_author_status", "author_ref", "status"),
    )


def decided() -> ColumnElement[bool]:
    """The partial indexes' condition, as queries must state it to use them (see DECIDED_WHERE)."""
    return Comment.status != literal_column("'pending'")


class Decision(Base):
    """One state change of one comment; rows are only ever inserted."""

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    comment_id: Mapped[str] = mapped_column(ForeignKey("comments.id"), nullable=False)
    comment_version: Mapped[int] = mapped_column(Integer, nullable=False)
    actor: Mapped[str] = mapped_column(String(120), nullable=False)
    action: Mapped[str] = mapped_column(String(16), nullable=False)
    from_status: Mapped[str] = mapped_column(String(16), nullable=False)
    to_status: Mapped[str] = mapped_column(String(16), nullable=False)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    priority: Mapped[str] = mapped_column(String(16), nullable=False, default="normal")
    categories: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    findings: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False, default=list)
    scores: Mapped[dict[str, float]] = mapped_column(JSON, nullable=False, default=dict)
    policy_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    # The database, not the code, guarantees one decision per comment version: a task that
    # runs twice loses the race with an IntegrityError instead of writing a second decision.
    __table_args__ = (UniqueConstraint("comment_id", "comment_version", name="uq_decision_version"),)


class TrainingExample(Base):
    """A labelled comment the learned models learn from (seed data, `triage train`, moderators)."""

    __tablename__ = "training_examples"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    author: Mapped[str | None] = mapped_column(String(200), nullable=True)
    label: Mapped[str] = mapped_column(String(32), nullable=False)
    source: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LearnedModel(Base):
    """A trained model blob; workers load the newest one without a restart."""

    __tablename__ = "learned_models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    blob: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    examples: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (Index("ix_learned_models_name_id", "name", "id"),)


class ApiKey(Base):
    """A moderator's or admin's key; only its SHA-256 is stored."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    prefix: Mapped[str] = mapped_column(String(12), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuthorBan(Base):
    __tablename__ = "author_bans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    author_ref: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    actor: Mapped[str] = mapped_column(String(120), nullable=False)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    lifted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Report(Base):
    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    comment_id: Mapped[str] = mapped_column(ForeignKey("comments.id"), nullable=False)
    reporter_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    reason: Mapped[str] = mapped_column(String(32), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (UniqueConstraint("comment_id", "reporter_hash", name="uq_report_once"),)


class ModerationList(Base):
    """Site-editable term and domain lists; `version` lets workers notice a change cheaply."""

    __tablename__ = "moderation_lists"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    items: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ListChange(Base):
    """Append-only history of list edits."""

    __tablename__ = "list_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    actor: Mapped[str] = mapped_column(String(120), nullable=False)
    before: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    after: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class IdempotencyKey(Base):
    """`Idempotency-Key` of a POST: the same key from the same client returns the same comment."""

    __tablename__ = "idempotency_keys"

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    comment_id: Mapped[str] = mapped_column(ForeignKey("comments.id"), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
