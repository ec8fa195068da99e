"""The `triage` command's set-up steps, on SQLite and PostgreSQL."""

from __future__ import annotations

from click.testing import CliRunner

from services.cli import cli
from services.comments.service import CommentService
from services.db import Database
from workers.runtime import MODEL_NAME


def test_seed_stores_the_demo_article_and_the_seed_model_once(database_url: str) -> None:
    # Workers then load a model at start instead of each training one (seconds) at once.
    runner = CliRunner()
    env = {"DATABASE_URL": database_url}
    first = runner.invoke(cli, ["seed"], env=env)
    assert first.exit_code == 0, first.output
    svc = CommentService(Database(database_url))
    stored = svc.latest_model_id(MODEL_NAME)
    assert stored is not None and svc.latest_model(MODEL_NAME)[1]
    again = runner.invoke(cli, ["seed"], env=env)
    assert again.exit_code == 0, again.output
    assert svc.latest_model_id(MODEL_NAME) == stored
    assert [a.slug for a in svc.list_articles()] == ["ketamine-new-hope-depression"]
    svc.db.dispose()
