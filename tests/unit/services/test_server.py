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


def test_access_lines_below_the_access_level_are_not_built() -> None:
    import logging

    from gunicorn.config import Config

    from services.server import QuietAccessLogger

    assert gunicorn_options(Settings.from_env({}))["logger_class"] is QuietAccessLogger
    cfg = Config()
    cfg.set("accesslog", "/dev/null")  # gunicorn itself would now build every access line
    access = logging.getLogger("gunicorn.access")
    before, handlers = access.level, list(access.handlers)
    try:
        for level, expected in ((logging.WARNING, 0), (logging.INFO, 1)):
            log = QuietAccessLogger(cfg)
            built: list[object] = []
            log.atoms = lambda *args, _built=built: _built.append(args) or {}  # type: ignore[method-assign]
            access.setLevel(level)
            log.access(object(), object(), {}, object())
            assert len(built) == expected, logging.getLevelName(level)
    finally:
        access.setLevel(before)
        for h in [h for h in access.handlers if h not in handlers]:
            access.removeHandler(h)
            h.close()
