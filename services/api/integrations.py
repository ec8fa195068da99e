"""Routes of the integrations: Coral's moderation phase, its record, and webhook admin."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from pydantic import BaseModel, ConfigDict, Field

from ..comments.errors import Invalid
from ..comments.moderation import ModerationService
from ..comments.service import CommentService
from ..config import Settings
from ..db import Database
from ..integrations.coral import SIGNATURE_HEADER, CoralDecisions, CoralPhase, parse_secrets
from ..webhooks.sender import DeliverySender
from ..webhooks.service import Policy, WebhookService
from .moderation import body_json, parse, require

bp = Blueprint("integrations", __name__)


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2000)
    events: list[str] = Field(min_length=1, max_length=20)
    secret: str | None = Field(default=None, min_length=16, max_length=200)


class WebhookPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, min_length=1, max_length=2000)
    events: list[str] | None = Field(default=None, min_length=1, max_length=20)
    secret: str | None = Field(default=None, min_length=16, max_length=200)
    enabled: bool | None = None


class DecisionsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    story: str | None = Field(default=None, max_length=200)
    author: str | None = Field(default=None, max_length=200)
    status: str | None = Field(default=None, pattern="^(NONE|APPROVED|REJECTED|PREMOD|SYSTEM_WITHHELD)$")
    limit: int = Field(default=50, ge=1, le=200)


def install(app: Flask, settings: Settings, service: CommentService, mod: ModerationService) -> None:
    """Wire the integrations into an app: the Coral phase (its engine loads in the background
    when secrets are set), the webhook service, and the routes."""
    from ..integrations.engine import BackgroundEngine

    db: Database = service.db
    secrets = parse_secrets(settings.coral_signing_secrets)
    engine = BackgroundEngine(settings, service, mod)
    if secrets:
        engine.start()
    app.extensions["triage.coral_engine"] = engine
    app.extensions["triage.coral"] = CoralPhase(
        secrets, engine.get, CoralDecisions(db, settings.coral_edit_window), service.emit_all,
        settings.coral_budget_ms)
    app.extensions["triage.webhooks"] = WebhookService(db, Policy.from_settings(settings))
    app.extensions["triage.webhook_sender"] = DeliverySender(settings)
    app.register_blueprint(bp)


def coral() -> CoralPhase:
    return current_app.extensions["triage.coral"]  # type: ignore[no-any-return]


def webhooks() -> WebhookService:
    return current_app.extensions["triage.webhooks"]  # type: ignore[no-any-return]


@bp.post("/v1/integrations/coral")
def coral_phase() -> Response:
    # The exact bytes Coral signed: nothing may parse (and so re-encode) them first.
    raw = request.get_data(cache=True)
    outcome = coral().handle(raw, request.headers.get(SIGNATURE_HEADER))
    if outcome.body is None:
        return Response(status=204)
    return Response(json.dumps(outcome.body), status=200, mimetype="application/json")


@bp.get("/v1/moderation/coral/decisions")
@require("moderator")
def coral_decisions() -> Response:
    q = parse(DecisionsQuery, request.args.to_dict())
    items = coral().decisions.find(story=q.story, author=q.author, status=q.status, limit=q.limit)
    return jsonify({"items": items})


@bp.get("/v1/moderation/coral/decisions/<decision_id>")
@require("moderator")
def coral_decision(decision_id: str) -> Response:
    return jsonify(coral().decisions.get(decision_id))


@bp.post("/v1/admin/webhooks")
@require("admin")
def create_webhook() -> tuple[Response, int, dict[str, str]]:
    data = parse(WebhookIn, _object())
    view, secret = webhooks().create(data.url, data.events, data.secret)
    # The secret is shown once, when it was generated here; an admin's own is not echoed.
    body = {**view, **({"secret": secret} if data.secret is None else {})}
    return jsonify(body), 201, {"Location": f"/v1/admin/webhooks/{view['id']}"}


@bp.get("/v1/admin/webhooks")
@require("admin")
def list_webhooks() -> Response:
    return jsonify({"items": webhooks().all()})


@bp.get("/v1/admin/webhooks/<int:endpoint_id>")
@require("admin")
def get_webhook(endpoint_id: int) -> Response:
    return jsonify(webhooks().get(endpoint_id))


@bp.patch("/v1/admin/webhooks/<int:endpoint_id>")
@require("admin")
def update_webhook(endpoint_id: int) -> Response:
    data = parse(WebhookPatch, _object())
    return jsonify(webhooks().update(endpoint_id, url=data.url, events=data.events,
                                     secret=data.secret, enabled=data.enabled))


@bp.delete("/v1/admin/webhooks/<int:endpoint_id>")
@require("admin")
def delete_webhook(endpoint_id: int) -> tuple[str, int]:
    webhooks().delete(endpoint_id)
    return "", 204


@bp.get("/v1/admin/webhooks/<int:endpoint_id>/deliveries")
@require("admin")
def deliveries(endpoint_id: int) -> Response:
    status = request.args.get("status")
    if status is not None and status not in ("pending", "delivered", "failed"):
        raise Invalid("status must be pending, delivered or failed.",
                      errors=[{"field": "status", "message": "unknown status"}])
    return jsonify({"items": webhooks().deliveries(endpoint_id, status=status)})


@bp.post("/v1/admin/webhooks/<int:endpoint_id>/deliveries/<delivery_id>/redeliver")
@require("admin")
def redeliver(endpoint_id: int, delivery_id: str) -> tuple[Response, int]:
    view = webhooks().redeliver(endpoint_id, delivery_id)
    # Committed first, then sent; if the send fails, the pump finds it overdue and sends it.
    try:
        current_app.extensions["triage.webhook_sender"].send(view["id"])
    except Exception:  # noqa: BLE001 - the delivery is stored; the pump re-sends it
        current_app.logger.warning("redeliver send failed; the pump will send it")
    return jsonify(view), 202


def _object() -> dict[str, Any]:
    data = body_json()
    if not isinstance(data, dict):
        raise Invalid("The body must be a JSON object.",
                      errors=[{"field": "body", "message": "expected an object"}])
    return data


def openapi_paths() -> dict[str, Any]:
    """This blueprint's part of /openapi.json."""
    problem = {"$ref": "#/components/responses/Problem"}
    sec: list[dict[str, list[str]]] = [{"bearer": []}]
    auth = {"401": problem, "403": problem, "404": problem, "422": problem, "429": problem}
    obj = {"description": "JSON", "content": {"application/json": {"schema": {"type": "object"}}}}
    ident = {"name": "endpoint_id", "in": "path", "required": True, "schema": {"type": "integer"}}
    hook_in = {"required": True, "content": {"application/json": {"schema": WebhookIn.model_json_schema()}}}
    patch_in = {"required": True, "content": {"application/json": {"schema": WebhookPatch.model_json_schema()}}}
    return {
        "/v1/integrations/coral": {"post": {
            "summary": "Coral Talk's external moderation phase (X-Coral-Signature over the body)",
            "operationId": "coralPhase",
            "parameters": [{"name": "X-Coral-Signature", "in": "header", "schema": {"type": "string"}}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
            "responses": {"200": obj, "204": {"description": "No opinion in time"},
                          "400": problem, "401": problem, "404": problem, "413": problem,
                          "415": problem, "422": problem}}},
        "/v1/moderation/coral/decisions": {"get": {
            "summary": "What Coral was told, newest first", "operationId": "coralDecisions",
            "security": sec, "responses": {"200": obj, **auth}}},
        "/v1/admin/webhooks": {
            "get": {"summary": "Webhook endpoints", "operationId": "listWebhooks", "security": sec,
                    "responses": {"200": obj, **auth}},
            "post": {"summary": "Register a webhook endpoint", "operationId": "createWebhook",
                     "security": sec, "requestBody": hook_in,
                     "responses": {"201": obj, "400": problem, "415": problem, **auth}}},
        "/v1/admin/webhooks/{endpoint_id}": {
            "parameters": [ident],
            "get": {"summary": "One endpoint", "operationId": "getWebhook", "security": sec,
                    "responses": {"200": obj, **auth}},
            "patch": {"summary": "Change or re-enable an endpoint", "operationId": "updateWebhook",
                      "security": sec, "requestBody": patch_in,
                      "responses": {"200": obj, "400": problem, "415": problem, **auth}},
            "delete": {"summary": "Delete an endpoint and its log", "operationId": "deleteWebhook",
                       "security": sec, "responses": {"204": {"description": "Deleted"}, **auth}}},
        "/v1/admin/webhooks/{endpoint_id}/deliveries": {
            "parameters": [ident],
            "get": {"summary": "The endpoint's delivery log", "operationId": "webhookDeliveries",
                    "security": sec, "responses": {"200": obj, **auth}}},
    }
