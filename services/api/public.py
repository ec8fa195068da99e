"""Routes for commenters and site widgets. Thin: validate, call one service function, shape."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request
from pydantic import ValidationError
from redis.exceptions import RedisError

from ..cache import ReadCache
from ..comments.errors import Invalid
from ..comments.models import Status
from ..comments.readers import PageQuery, Readers
from ..comments.service import CommentService
from ..comments.shapes import NewComment, iso
from .limits import author_key, limited, limiter, post_author_limit, post_ip_limit, reports_limit
from .problems import ApiProblem, validation_errors
from .schemas import CommentIn, ListQuery, ReportIn

bp = Blueprint("public", __name__)
CACHE_CONTROL = "public, max-age=5, stale-while-revalidate=30"


def readers() -> Readers:
    return current_app.extensions["triage.readers"]  # type: ignore[no-any-return]


def service() -> CommentService:
    return current_app.extensions["triage.service"]  # type: ignore[no-any-return]


def json_body() -> Any:
    """The request's JSON, or the right problem: 415 for another type, 400 for broken JSON."""
    if not request.mimetype or request.mimetype != "application/json":
        raise ApiProblem(415, "Unsupported media type", "Send the body as application/json.")
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # absurdly deep nesting: not JSON we will read
        data = None
    if data is None:
        raise ApiProblem(400, "Malformed JSON", "The body is not valid JSON.")
    return data


@bp.post("/v1/articles/<slug>/comments")
@limited(limiter.limit(post_ip_limit), limiter.limit(post_author_limit, key_func=author_key))
def post_comment(slug: str) -> tuple[Response, int, dict[str, str]]:
    payload = json_body()
    current_app.extensions["triage.articles"].ensure_open(slug)
    if not isinstance(payload, dict):
        raise Invalid("The body must be a JSON object.",
                      errors=[{"field": "body", "message": "expected an object"}])
    try:
        data = CommentIn.model_validate(payload)
    except ValidationError as exc:
        raise Invalid("The comment did not pass validation.", errors=validation_errors(exc)) from exc
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (1 <= len(key) <= 255):
        raise Invalid("Idempotency-Key must be 1 to 255 characters.",
                      errors=[{"field": "Idempotency-Key", "message": "bad length"}])
    comment, created = service().submit(
        slug,
        NewComment(author=data.author, body=data.body, email=data.email, parent_id=data.parent_id),
        request_id=g.get("request_id"),
        ip=request.remote_addr,
        idempotency_key=key,
    )
    location = f"/v1/comments/{comment.id}"
    # A replay answers exactly as the first request did (the comment is pending to its author
    # until decided, and this response only ever promised "pending").
    body = {"id": comment.id, "status": "pending", "links": {"self": location}}
    headers = {"Location": location}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    return jsonify(body), 202, headers


@bp.get("/v1/comments/<comment_id>")
def get_comment(comment_id: str) -> Response:
    comment, slug, _last = service().get(comment_id)
    body: dict[str, Any] = {
        "id": comment.id,
        "article": slug,
        # A reported comment is, for its author, simply awaiting a moderator again.
        "status": Status.HELD if comment.status == Status.REPORTED else comment.status,
        "created_at": iso(comment.created_at),
        "decided_at": iso(comment.decided_at),
    }
    if comment.status == Status.HELD and "self_harm" in (comment.categories or []):
        settings = current_app.extensions["triage.settings"]
        body["support"] = {"message": settings.support_message, "resources": settings.support_links()}
    return jsonify(body)


@bp.get("/v1/articles/<slug>/comments")
def list_comments(slug: str) -> Response:
    try:
        q = ListQuery.model_validate(request.args.to_dict())
    except ValidationError as exc:
        raise Invalid("The query did not pass validation.", errors=validation_errors(exc)) from exc
    cache: ReadCache | None = current_app.extensions.get("triage.read_cache")
    token = None
    if cache is not None:
        try:
            token = cache.generation(slug)
        except RedisError:
            cache = None  # Redis away: serve from the database, uncached
    page = PageQuery(q.limit, q.cursor, q.order, q.view)
    # The cache keys a page by its cursor; other orders and views get keys of their own.
    key = q.cursor if (q.order, q.view) == ("oldest", "flat") else f"{q.order}:{q.view}:{q.cursor or ''}"
    if cache is not None and token is not None:
        etag = cache.etag(token, q.limit, key)
        sent = request.headers.get("If-None-Match")
        # A widget sends back the tag it was given, as is; any other form (a list, *) is parsed.
        if sent is not None and (sent == etag or request.if_none_match.contains_weak(etag[3:-1])):
            return _cached(Response(status=304), etag)
        body = cache.get_page(slug, token, q.limit, key)
        if body is None:
            items, next_cursor = readers().page(slug, page)
            body = json.dumps({"items": items, "next_cursor": next_cursor},
                              separators=(",", ":")).encode()
            try:
                cache.put_page(slug, token, q.limit, key, body)
            except RedisError:
                pass
        return _cached(Response(body, mimetype="application/json"), etag)
    items, next_cursor = readers().page(slug, page)
    return jsonify({"items": items, "next_cursor": next_cursor})


def _cached(resp: Response, etag: str) -> Response:
    resp.headers["ETag"] = etag
    # A CDN may serve a page for a few seconds and a stale one while it revalidates; live
    # widgets revalidate at once (no-cache) when an event says the page changed.
    resp.headers["Cache-Control"] = CACHE_CONTROL
    return resp


@bp.post("/v1/comments/<comment_id>/reports")
@limited(limiter.limit(reports_limit))
def report(comment_id: str) -> tuple[Response, int]:
    payload = json_body()
    try:
        data = ReportIn.model_validate(payload)
    except ValidationError as exc:
        raise Invalid("The report did not pass validation.", errors=validation_errors(exc)) from exc
    mod = current_app.extensions["triage.moderation"]
    reporter = service().hash_ref("reporter", request.remote_addr or "")
    result = mod.report(comment_id, data.reason, reporter)
    return jsonify({"id": result["id"], "reports": result["reports"]}), 202
