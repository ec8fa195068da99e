"""Rate limits (Flask-Limiter, counted in Redis so every API process shares them)."""

from __future__ import annotations

from flask import Flask, current_app, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from ..config import Settings

# Created without an app: nothing connects until init_limits() runs inside create_app().
limiter = Limiter(key_func=get_remote_address, headers_enabled=True, key_prefix="triage")


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
    limiter.init_app(app)
