"""gunicorn's configuration for `make run` and `make bench`."""

from __future__ import annotations

import gc

from services.config import Settings
from services.server import gunicorn_options


def test_a_started_worker_puts_what_it_loaded_out_of_the_collectors_sight() -> None:
    hook = gunicorn_options(Settings.from_env({}))["post_worker_init"]
    assert gc.get_freeze_count() == 0
    try:
        hook(object())
        assert gc.get_freeze_count() > 1000
    finally:
        gc.unfreeze()
