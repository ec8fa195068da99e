"""The integrations keep the layout's rules: the webhook and import code is domain-side (no
Flask), and only the Coral phase reaches into the engine, never into Celery."""

from __future__ import annotations

from tests.unit.test_layout import offenders


def test_webhooks_and_imports_import_no_flask():
    assert offenders("services/webhooks", ("flask", "services.api")) == {}
    assert offenders("services/importers", ("flask", "celery", "services.api")) == {}


def test_the_coral_phase_uses_the_engine_but_neither_flask_nor_celery():
    assert offenders("services/integrations", ("flask", "celery", "services.api", "workers.tasks",
                                               "workers.celery_app")) == {}
