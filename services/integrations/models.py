"""Tables of the integrations: Coral's decisions, webhooks and their deliveries, imports.

They share the comments' declarative base, so one migration history covers everything."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from ..comments.models import Base, new_id, utcnow


class CoralDecision(Base):
    """What Triage answered Coral for one NEW or EDIT of a comment Coral had not saved yet
    (Coral sends no comment id): an EDIT points at the same author's latest decision on the
    same story and parent (`previous_id`), so a moderator sees the comment's course."""

    __tablename__ = "coral_decisions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    action: Mapped[str] = mapped_column(String(8), nullable=False)
    tenant_id: Mapped[str] = mapped_column(String(200), nullable=False)
    tenant_domain: Mapped[str] = mapped_column(String(300), nullable=False, default="")
    site_id: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    story_id: Mapped[str] = mapped_column(String(200), nullable=False)
    story_url: Mapped[str] = mapped_column(Text, nullable=False, default="")
    author_id: Mapped[str] = mapped_column(String(200), nullable=False)
    author_role: Mapped[str] = mapped_column(String(32), nullable=False, default="")
    parent_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    # What Coral was told: NONE (a 204) | APPROVED | REJECTED | PREMOD | SYSTEM_WITHHELD.
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    reason_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    flags: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    # The engine's side: publish | hold | block, or "timeout" when it did not answer in time.
    engine_action: Mapped[str] = mapped_column(String(16), nullable=False)
    priority: Mapped[str] = mapped_column(String(16), nullable=False, default="normal")
    categories: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    findings: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False, default=list)
    scores: Mapped[dict[str, float]] = mapped_column(JSON, nullable=False, default=dict)
    policy_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    previous_id: Mapped[str | None] = mapped_column(ForeignKey("coral_decisions.id"), nullable=True)
    elapsed_ms: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (
        Index("ix_coral_decisions_thread", "tenant_id", "story_id", "author_id", "created_at"),
        Index("ix_coral_decisions_status", "status", "created_at"),
    )


class WebhookEndpoint(Base):
    """A receiver an admin registered; `disabled_reason` says why deliveries stopped."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    url: Mapped[str] = mapped_column(Text, nullable=False)
    # Needed in clear to sign; an admin sees only its first characters.
    secret: Mapped[str] = mapped_column(String(200), nullable=False)
    events: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WebhookDelivery(Base):
    """One event for one endpoint, and how its attempts went."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    endpoint_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False)
    event: Mapped[str] = mapped_column(String(64), nullable=False)
    # The id of the event in the stream it came from: the pump never makes two deliveries of
    # one event for one endpoint, however often it reads the event.
    event_id: Mapped[str] = mapped_column(String(64), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    # pending | delivered | failed
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id", name="uq_delivery_event"),
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "created_at"),
    )


class ImportedComment(Base):
    """Which comment an external post became, so a second import skips it, and replies find
    their parents whatever order the file lists them in."""

    __tablename__ = "imported_comments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(32), nullable=False)
    external_id: Mapped[str] = mapped_column(String(200), nullable=False)
    external_parent_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    comment_id: Mapped[str] = mapped_column(ForeignKey("comments.id"), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (
        UniqueConstraint("source", "external_id", name="uq_imported_external"),
        Index("ix_imported_comments_comment", "comment_id"),
    )
