"""Rate limits (Flask-Limiter, counted in Redis so every API process shares them)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, current_app, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from ..config import Settings

# Created without an app: nothing connects until init_limits() runs inside create_app().
limiter = Limiter(key_func=get_remote_address, headers_enabled=True, key_prefix="triage")


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
    """Who is posting: the email if given, else the display name (case-folded)."""
    data = request.get_json(silent=True)
    if isinstance(data, dict):
        who = data.get("email") or data.get("author") or ""
        if isinstance(who, str) and who.strip():
            return "author:" + who.strip().casefold()[:320]
    return "ip:" + (get_remote_address() or "")


def init_limits(app: Flask, settings: Settings) -> None:
    app.config["RATELIMIT_ENABLED"] = settings.ratelimit_enabled
    app.config["RATELIMIT_STORAGE_URI"] = settings.ratelimit_storage_url or settings.redis_url
    app.config["RATELIMIT_HEADERS_ENABLED"] = True
    app.config["RATELIMIT_SWALLOW_ERRORS"] = True  # a Redis blip must not refuse every comment
    # ...and a hung one must not hold every request: fail open after a short wait.
    timeout = settings.redis_request_timeout
    app.config["RATELIMIT_STORAGE_OPTIONS"] = {"socket_timeout": timeout,
                                               "socket_connect_timeout": timeout}
    limiter.init_app(app)
