"""The HTTP API: `create_app(settings)` takes its services from `services.wiring` and adds Flask's concerns."""

from __future__ import annotations

import io
import logging
import re
import time
import uuid

from flask import Flask, g, request
from werkzeug.exceptions import RequestEntityTooLarge
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

REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")


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
        # A request id follows the comment into the worker's log lines: the client's only if it
        # is a short plain token (it is echoed and logged), else our own.
        rid = request.headers.get("X-Request-ID", "")
        g.request_id = rid if REQUEST_ID.fullmatch(rid) else uuid.uuid4().hex

    @app.before_request
    def _bounded_chunked_body() -> None:
        # A chunked body has no Content-Length for MAX_CONTENT_LENGTH to refuse up front, and
        # Werkzeug cuts it silently at the limit (400 for the broken JSON). Read one byte past
        # the limit ourselves: over it is 413, under it the request goes on with a known length.
        env = request.environ
        if request.content_length is None and env.get("wsgi.input_terminated"):
            data = env["wsgi.input"].read(settings.max_request_bytes + 1)
            if len(data) > settings.max_request_bytes:
                raise RequestEntityTooLarge()
            env["wsgi.input"] = io.BytesIO(data)
            env["CONTENT_LENGTH"] = str(len(data))
            env.pop("wsgi.input_terminated", None)
            env.pop("HTTP_TRANSFER_ENCODING", None)  # read whole: it has a length now

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
