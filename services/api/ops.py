"""Health, readiness and the OpenAPI document."""

from __future__ import annotations

import hmac

import redis
from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy import text

from .openapi import document
from .problems import ApiProblem, unauthorized

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    settings = current_app.extensions["triage.settings"]
    svc = current_app.extensions["triage.service"]
    checks: dict[str, str] = {}
    try:
        with svc.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - readiness reports, it does not raise
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        client = redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
        client.ping()
        client.close()
        checks["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["redis"] = f"error: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    return jsonify({"status": "ok" if ok else "unavailable", "checks": checks}), (200 if ok else 503)


LOOPBACK = {"127.0.0.1", "::1"}


@bp.get("/metrics")
def metrics() -> Response:
    from ..metrics import CONTENT_TYPE, render

    settings = current_app.extensions["triage.settings"]
    # Queue depths and error rates are for operators: the loopback, or whoever holds the key.
    sent = request.headers.get("Authorization", "")
    if settings.metrics_key:
        if not hmac.compare_digest(sent.encode(), f"Bearer {settings.metrics_key}".encode()):
            raise unauthorized("/metrics needs `Authorization: Bearer <METRICS_KEY>`.")
    elif request.remote_addr not in LOOPBACK:
        raise ApiProblem(403, "Forbidden", "/metrics answers the loopback only; set METRICS_KEY "
                                           "to open it to a scraper elsewhere.")
    body = render(settings.metrics_dir, settings.redis_url, settings.queue_name)
    return Response(body, mimetype=CONTENT_TYPE.split(";")[0])


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(document())


def bench_blueprint() -> Blueprint:
    """Trivial endpoints served by the same app and server: the framework's own ceiling."""
    bench = Blueprint("bench", __name__)

    @bench.get("/bench/hello")
    def hello() -> Response:
        return jsonify({"hello": "world"})

    @bench.post("/bench/echo")
    def echo() -> tuple[Response, int]:
        from flask import request

        data = request.get_json(silent=True)
        return jsonify({"received": isinstance(data, dict)}), 202

    return bench
