"""The queries, kept apart from the use cases so both backends run the same SQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Connection,
    Integer,
    Row,
    Table,
    and_,
    any_,
    bindparam,
    column,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnClause
from sqlalchemy.sql.selectable import TableValuedAlias

from .models import Article, Comment, Decision, LearnedModel, Status, TrainingExample, decided


def article_by_slug(session: Session, slug: str) -> Article | None:
    return session.scalars(select(Article).where(Article.slug == slug)).first()


# What a reader's page shows of a comment (see shapes.public_view), and nothing more: rows,
# not ORM objects, which for a page of 100 cost more to build than the query costs to run.
PUBLIC_COLUMNS = (Comment.id, Comment.author, Comment.body, Comment.published_body,
                  Comment.created_at, Comment.parent_id)


def approved_page(
    conn: Session | Connection, article_id: int, limit: int, after: tuple[dt.datetime, str] | None
) -> Sequence[Row[*tuple[Any, ...]]]:
    """Approved comments oldest first, keyset-paginated on (created_at, id)."""
    q = select(*PUBLIC_COLUMNS).where(Comment.article_id == article_id,
                                      Comment.status == Status.APPROVED, decided())
    if after is not None:
        at, cid = after
        q = q.where(or_(Comment.created_at > at, and_(Comment.created_at == at, Comment.id > cid)))
    q = q.order_by(Comment.created_at, Comment.id).limit(limit)
    return conn.execute(q).all()


def pending_ids(session: Session, older_than: dt.datetime, limit: int,
                after: tuple[dt.datetime, str] | None = None) -> list[tuple[str, dt.datetime]]:
    """(id, created_at) of pending comments created before `older_than`, oldest first, after
    the (created_at, id) `after` if given."""
    q = select(Comment.id, Comment.created_at).where(Comment.status == Status.PENDING,
                                                     Comment.created_at < older_than)
    if after is not None:
        at, cid = after
        q = q.where(or_(Comment.created_at > at, and_(Comment.created_at == at, Comment.id > cid)))
    q = q.order_by(Comment.created_at, Comment.id).limit(limit)
    return [(str(i), at) for i, at in session.execute(q)]


def latest_model(session: Session, name: str) -> LearnedModel | None:
    q = select(LearnedModel).where(LearnedModel.name == name).order_by(LearnedModel.id.desc())
    return session.scalars(q.limit(1)).first()


def latest_model_id(session: Session, name: str) -> int | None:
    q = select(LearnedModel.id).where(LearnedModel.name == name).order_by(LearnedModel.id.desc())
    return session.scalars(q.limit(1)).first()


def training_examples(session: Session) -> list[TrainingExample]:
    return list(session.scalars(select(TrainingExample).order_by(TrainingExample.id)))


# Declarative classes type their __table__ as any FromClause; these two are Tables.
DECISIONS_TABLE = cast(Table, Decision.__table__)
INSERT_DECISION = insert(DECISIONS_TABLE)


# The worker's statements, built once: building a statement with a dozen parameters costs
# SQLAlchemy more (its cache key) than SQLite takes to run it for a lone comment.
COMMENTS_TABLE = cast(Table, Comment.__table__)
# By id alone, the status checked in Python: given `status = 'pending'` too, SQLite walks the
# (status, created_at) index through every pending comment instead of looking the ids up, so
# each batch cost as much as the whole backlog (in a benchmark run, 11.6 ms instead of 1.8).
BATCH_ROWS = (
    select(*COMMENTS_TABLE.c, Article.slug)
    .join(Article, Article.id == COMMENTS_TABLE.c.article_id)
    .where(COMMENTS_TABLE.c.id.in_(bindparam("ids", expanding=True)))
)
# What an engine decision writes on the row: the engine's findings and the state change.
ENGINE_UPDATE_KEYS = ("findings", "scores", "policy_version", "masked_body", "published_body",
                       "status", "priority", "rank", "categories", "decided_at", "version",
                       "_id", "_version")
ENGINE_UPDATE = (
    update(COMMENTS_TABLE)
    .where(COMMENTS_TABLE.c.id == bindparam("_id"), COMMENTS_TABLE.c.version == bindparam("_version"),
           COMMENTS_TABLE.c.status == Status.PENDING)
    .values({k: bindparam(k) for k in ENGINE_UPDATE_KEYS if not k.startswith("_")})
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


ENGINE_ROWS = _json_recordset(
    "v", column("_id", COMMENTS_TABLE.c.id.type), column("_version", Integer),
    *(column(k, COMMENTS_TABLE.c[k].type) for k in ENGINE_UPDATE_KEYS if not k.startswith("_")))
ENGINE_UPDATE_SET = (
    update(COMMENTS_TABLE)
    # By id and version only. Every change of status bumps the version (see plan_transition)
    # and only rows read as pending are written, so the version alone says the row is as it
    # was read; asked for `status = 'pending'` too, PostgreSQL walked the status index, which
    # without VACUUM keeps an entry for every comment that was ever pending (29,000 for
    # 2,000 pending), and took 9-27 ms for a batch of 250 where the primary key takes 1.4.
    # The ids come twice, the second time as an array the planner can count: it takes
    # json_to_recordset for a hundred rows whatever it holds, and on a table without
    # statistics it joined a batch of one through every pending comment (4.4 ms, and 7-9 ms
    # of the server's CPU per comment at 200 a second) instead of looking it up (0.2 ms).
    .where(COMMENTS_TABLE.c.id == ENGINE_ROWS.c._id, COMMENTS_TABLE.c.version == ENGINE_ROWS.c._version,
           COMMENTS_TABLE.c.id == any_(bindparam("ids", type_=ARRAY(COMMENTS_TABLE.c.id.type))))
    .values({k: ENGINE_ROWS.c[k] for k in ENGINE_UPDATE_KEYS if not k.startswith("_")})
)


# The batch's decisions, on PostgreSQL likewise one statement: run row by row (pipelined by the
# driver) the INSERT cost the worker 33-41 us of CPU per comment, building and sending 250
# executions; as one JSON array, 14-17 us (2,000 comments in batches of 250, four interleaved
# pairs). (SQLite runs the executemany in its own process, with no round trip to save.)
DECISION_KEYS = tuple(c.key for c in DECISIONS_TABLE.c if c.key != "id")
DECISION_ROWS = _json_recordset(
    "d", *(column(k, DECISIONS_TABLE.c[k].type) for k in DECISION_KEYS))
INSERT_DECISIONS_SET = insert(DECISIONS_TABLE).from_select(
    list(DECISION_KEYS), select(*(DECISION_ROWS.c[k] for k in DECISION_KEYS)))


def insert_decisions(conn: Connection, decisions: list[dict[str, Any]]) -> None:
    """Append the batch's decisions (the unique (comment, version) constraint refuses all of
    them if it refuses one, as the transaction around them would)."""
    if conn.dialect.name != "postgresql":
        conn.execute(INSERT_DECISION, decisions)
        return
    conn.execute(INSERT_DECISIONS_SET, {"rows": _json_rows(decisions, "created_at")})


def engine_update(conn: Connection, updates: list[dict[str, Any]]) -> int:
    """Write the engine's rows; returns how many matched (-1: the driver cannot tell)."""
    if conn.dialect.name != "postgresql":
        return conn.execute(ENGINE_UPDATE, updates).rowcount
    return conn.execute(ENGINE_UPDATE_SET, {"rows": _json_rows(updates, "decided_at"),
                                             "ids": [u["_id"] for u in updates]}).rowcount
