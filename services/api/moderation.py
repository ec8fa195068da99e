"""Moderator and admin routes (Bearer keys with a role)."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, Response, current_app, g, jsonify, request
from pydantic import BaseModel, ValidationError

from ..comments.errors import Invalid
from ..comments.moderation import ModerationService, Principal
from .limits import auth_failure_allowed
from .problems import ApiProblem, forbidden, unauthorized, validation_errors
from .schemas import BanIn, BulkIn, DecisionIn, ListIn, QueueQuery

bp = Blueprint("moderation", __name__)
M = TypeVar("M", bound=BaseModel)
F = TypeVar("F", bound=Callable[..., Any])


def moderation() -> ModerationService:
    return current_app.extensions["triage.moderation"]  # type: ignore[no-any-return]


def require(role: str) -> Callable[[F], F]:
    """Bearer key with `role` (admin may do everything a moderator may)."""

    def deco(fn: F) -> F:
        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            bearer = scheme.lower() == "bearer" and bool(token.strip())
            who = moderation().authenticate(token.strip()) if bearer else None
            if who is None:
                allowed, wait = auth_failure_allowed()
                if not allowed:
                    raise ApiProblem(429, "Too many requests",
                                     "Too many failed sign-ins from this address; try again later.",
                                     "too-many-requests", headers={"Retry-After": str(wait)})
                raise unauthorized("Unknown or revoked key." if bearer
                                   else "Send Authorization: Bearer <key>.")
            if role == "admin" and who.role != "admin":
                raise forbidden("This needs an admin key.")
            g.principal = who
            return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return deco


def parse(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Invalid("The request did not pass validation.", errors=validation_errors(exc)) from exc


def body_json() -> Any:
    from .public import json_body

    return json_body()


def actor() -> str:
    who: Principal = g.principal
    return who.name


@bp.get("/v1/moderation/queue")
@require("moderator")
def queue() -> Response:
    q = parse(QueueQuery, request.args.to_dict())
    items, cursor = moderation().queue(q.status, q.category, q.priority, q.article, q.limit, q.cursor)
    return jsonify({"items": items, "next_cursor": cursor})


@bp.get("/v1/moderation/comments/<comment_id>")
@require("moderator")
def comment(comment_id: str) -> Response:
    return jsonify(moderation().detail(comment_id))


def _if_match() -> int:
    raw = request.headers.get("If-Match")
    if raw is None:
        raise ApiProblem(428, "Precondition required",
                         "Send If-Match with the version you reviewed, so no decision overwrites "
                         "another.", "precondition-required")
    m = re.fullmatch(r'\s*(?:W/)?"?(\d+)"?\s*', raw)
    if not m:
        raise Invalid("If-Match must carry the comment's version.",
                      errors=[{"field": "If-Match", "message": "expected a version number"}])
    return int(m.group(1))


@bp.post("/v1/moderation/comments/<comment_id>/decision")
@require("moderator")
def decide(comment_id: str) -> Response:
    version = _if_match()
    d = parse(DecisionIn, body_json())
    state = moderation().decide(comment_id, d.action, actor(), version, d.reason, d.note)
    resp = jsonify(state)
    resp.headers["ETag"] = f'"{state["version"]}"'
    return resp


@bp.post("/v1/moderation/decisions")
@require("moderator")
def bulk() -> Response:
    data = parse(BulkIn, body_json())
    results = moderation().bulk_decide([d.model_dump() for d in data.decisions], actor())
    return jsonify({"results": results})


@bp.post("/v1/moderation/authors/<author_ref>/ban")
@require("moderator")
def ban(author_ref: str) -> Response:
    data = parse(BanIn, request.get_json(silent=True) or {})
    return jsonify(moderation().ban(author_ref, actor(), data.until, data.reason))


@bp.post("/v1/moderation/authors/<author_ref>/unban")
@require("moderator")
def unban(author_ref: str) -> Response:
    return jsonify(moderation().unban(author_ref, actor()))


@bp.get("/v1/admin/lists/<name>")
@require("admin")
def get_list(name: str) -> Response:
    out = moderation().get_list(name)
    out["history"] = moderation().list_history(name)
    return jsonify(out)


@bp.put("/v1/admin/lists/<name>")
@require("admin")
def put_list(name: str) -> Response:
    data = parse(ListIn, body_json())
    return jsonify(moderation().put_list(name, data.items, actor()))
