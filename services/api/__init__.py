"""The HTTP API: `create_app(settings)` takes its services from `services.wiring` and adds Flask's concerns."""

from __future__ import annotations

import logging
import time
import uuid

from flask import Flask, g, request
from werkzeug.middleware.proxy_fix import ProxyFix

from ..comments.errors import Invalid
from ..comments.service import CommentService
from ..config import Settings
from ..logs import setup_logging
from ..metrics import HTTP_LATENCY, HTTP_REQUESTS
from ..wiring import build
from . import integrations, moderation, ops, problems, public, readers, ui, widget
from .limits import init_limits
from .schemas import has_controls


def create_app(settings: Settings | None = None, *, service: CommentService | None = None) -> Flask:
    """Build the Flask app; tests pass their own settings (and may pass a service)."""
    settings = settings or Settings.from_env()
    setup_logging(settings.log_level)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["triage.settings"] = settings
    services = build(settings, "api", comments=service)
    app.extensions["triage.services"] = services
    app.extensions["triage.read_cache"] = services.read_cache
    if services.send_buffer is not None:
        app.extensions["triage.send_buffer"] = services.send_buffer
    if services.sender is not None:
        app.extensions["triage.sender"] = services.sender
    app.extensions["triage.service"] = services.comments
    app.extensions["triage.moderation"] = mod = services.moderation
    if settings.bootstrap_token:
        mod.bootstrap_admin(settings.bootstrap_token)
    if settings.proxy_hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_hops)  # type: ignore[method-assign]
    init_limits(app, settings)

    @app.before_request
    def _no_controls() -> None:
        # A NUL in a slug or an id would reach the database (PostgreSQL refuses it with a 500).
        if has_controls(request.path) or any(has_controls(k) or has_controls(v)
                                             for k, v in request.args.items(multi=True)):
            raise Invalid("Control characters are not accepted in the path or the query.",
                          errors=[{"field": "path", "message": "contains control characters"}])

    @app.before_request
    def _request_id() -> None:
        g.started = time.perf_counter()
        # A request id follows the comment into the worker's log lines.
        rid = request.headers.get("X-Request-ID", "")[:64] or uuid.uuid4().hex
        g.request_id = rid

    @app.after_request
    def _headers(resp):  # type: ignore[no-untyped-def]
        resp.headers["X-Request-ID"] = g.get("request_id", "")
        rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
        HTTP_REQUESTS.labels(rule, request.method, str(resp.status_code)).inc()
        if "started" in g:
            HTTP_LATENCY.labels(rule, request.method).observe(time.perf_counter() - g.started)
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        # API answers are data, never a page to render or frame.
        resp.headers.setdefault("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
        return resp

    problems.register(app)
    app.register_blueprint(public.bp)
    app.register_blueprint(ops.bp)
    app.register_blueprint(moderation.bp)
    integrations.install(app, settings, services.comments, mod)
    if settings.bench_endpoints:
        app.register_blueprint(ops.bench_blueprint())
    app.register_blueprint(ui.bp)
    readers.install(app, settings, services.comments)
    widget.install(app, settings)
    logging.getLogger("triage.api").debug("app created")
    return app
