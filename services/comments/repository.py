"""The queries, kept apart from the use cases so both backends run the same SQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Unpack

from sqlalchemy import Connection, Row, and_, or_, select
from sqlalchemy.orm import Session

from .models import Article, Comment, LearnedModel, Status, TrainingExample, decided


def article_by_slug(session: Session, slug: str) -> Article | None:
    return session.scalars(select(Article).where(Article.slug == slug)).first()


# What a reader's page shows of a comment (see service.public_view), and nothing more: rows,
# not ORM objects, which for a page of 100 cost more to build than the query costs to run.
PUBLIC_COLUMNS = (Comment.id, Comment.author, Comment.body, Comment.published_body,
                  Comment.created_at, Comment.parent_id)


def approved_page(
    conn: Session | Connection, article_id: int, limit: int, after: tuple[dt.datetime, str] | None
) -> Sequence[Row[Unpack[tuple[Any, ...]]]]:
    """Approved comments oldest first, keyset-paginated on (created_at, id)."""
    q = select(*PUBLIC_COLUMNS).where(Comment.article_id == article_id,
                                      Comment.status == Status.APPROVED, decided())
    if after is not None:
        at, cid = after
        q = q.where(or_(Comment.created_at > at, and_(Comment.created_at == at, Comment.id > cid)))
    q = q.order_by(Comment.created_at, Comment.id).limit(limit)
    return conn.execute(q).all()


def pending_ids(session: Session, older_than: dt.datetime, limit: int) -> list[str]:
    q = (
        select(Comment.id)
        .where(Comment.status == Status.PENDING, Comment.created_at < older_than)
        .order_by(Comment.created_at)
        .limit(limit)
    )
    return list(session.scalars(q))


def latest_model(session: Session, name: str) -> LearnedModel | None:
    q = select(LearnedModel).where(LearnedModel.name == name).order_by(LearnedModel.id.desc())
    return session.scalars(q.limit(1)).first()


def latest_model_id(session: Session, name: str) -> int | None:
    q = select(LearnedModel.id).where(LearnedModel.name == name).order_by(LearnedModel.id.desc())
    return session.scalars(q.limit(1)).first()


def training_examples(session: Session) -> list[TrainingExample]:
    return list(session.scalars(select(TrainingExample).order_by(TrainingExample.id)))
