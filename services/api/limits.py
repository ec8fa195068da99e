"""Rate limits (Flask-Limiter, counted in Redis so every API process shares them)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, current_app, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from limits import parse_many

from ..config import Settings
from ..identity import display_key

log = logging.getLogger("triage.api")


def _keyed(kind: str, value: str) -> str:
    """Counters are kept in Redis under a keyed hash, never a raw IP, email or name."""
    salt = _settings().author_salt.encode()
    return kind + ":" + hmac.new(salt, f"{kind}\x00{value}".encode(), hashlib.sha256).hexdigest()[:32]


def client_key() -> str:
    """The client, as rate limits count it: a keyed hash of its IP."""
    return _keyed("ip", get_remote_address() or "")


# Created without an app: nothing connects until init_limits() runs inside create_app().
limiter = Limiter(key_func=client_key, headers_enabled=True, key_prefix="triage")


F = TypeVar("F", bound=Callable[..., Any])


def limited(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    """Flask-Limiter's limits on a view, applied in the given order, and skipped outright when
    rate limiting is off: the library's wrapper works out which limits apply before it finds
    it has nothing to do, which costs a request about as much as validating its body."""

    def wrap(view: F) -> F:
        checked = view
        for decorate in reversed(decorators):
            checked = decorate(checked)

        @wraps(view)
        def route(*args: Any, **kwargs: Any) -> Any:
            if current_app.config.get("RATELIMIT_ENABLED", True):
                return checked(*args, **kwargs)
            return view(*args, **kwargs)

        return route  # type: ignore[return-value]

    return wrap


def _settings() -> Settings:
    return current_app.extensions["triage.settings"]  # type: ignore[no-any-return]


def post_ip_limit() -> str:
    return _settings().ratelimit_post_ip


def post_author_limit() -> str:
    return _settings().ratelimit_post_author


def reports_limit() -> str:
    return _settings().ratelimit_reports


def auth_failures_limit() -> str:
    return _settings().ratelimit_auth_failures


def author_key() -> str:
    """Who is posting: the email if given, else the display name normalised the way a reader
    would see it (so "Bob", "Bob\u200b" and "Bоb" with a Cyrillic о are one bucket)."""
    data = request.get_json(silent=True)
    if isinstance(data, dict):
        email = data.get("email")
        if isinstance(email, str) and email.strip():
            return _keyed("email", email.strip().casefold()[:320])
        name = data.get("author")
        if isinstance(name, str) and display_key(name):
            return _keyed("name", display_key(name)[:320])
    return client_key()


def auth_failure_allowed() -> tuple[bool, int]:
    """Count one failed sign-in from this client; (False, seconds to wait) once over the limit.
    Only failures are counted, and only a failure is ever refused: a valid key always works."""
    if not current_app.config.get("RATELIMIT_ENABLED", True):
        return True, 0
    allowed, wait = True, 0
    who = client_key()
    try:
        strategy = limiter.limiter
        for item in parse_many(auth_failures_limit()):
            if not strategy.hit(item, "auth-failures", who):
                allowed = False
                reset = strategy.get_window_stats(item, "auth-failures", who).reset_time
                wait = max(wait, int(reset - time.time()) + 1)
    except Exception as exc:  # noqa: BLE001 - counting is best effort, as the other limits are
        log.warning("could not count a failed sign-in", extra={"error": type(exc).__name__})
    return allowed, wait


def init_limits(app: Flask, settings: Settings) -> None:
    app.config["RATELIMIT_ENABLED"] = settings.ratelimit_enabled
    app.config["RATELIMIT_STORAGE_URI"] = settings.ratelimit_storage_url or settings.redis_url
    app.config["RATELIMIT_HEADERS_ENABLED"] = True
    app.config["RATELIMIT_SWALLOW_ERRORS"] = True  # a Redis blip must not refuse every comment
    limiter.init_app(app)
