"""Alembic environment: the URL comes from the settings the caller passed in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import pool

from services.comments.models import Base
from services.db import make_engine
from services.integrations import models as _integrations  # noqa: F401 - their tables too

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    connectable = config.attributes.get("connection")
    if connectable is None:
        if not url:
            raise RuntimeError("no sqlalchemy.url to migrate (services.migrate sets it)")
        engine = make_engine(url)
        with engine.connect() as connection:
            _run(connection)
        engine.dispose()
    else:
        _run(connectable)


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
_ = pool
