"""RFC 9457 problem+json for every error on every path, mapped in one place."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, json, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from ..comments.errors import (
    Conflict,
    DomainError,
    Invalid,
    Malformed,
    NotFound,
    Unauthorized,
    Unavailable,
)

log = logging.getLogger("triage.api")

PROBLEM_BASE = "https://triage.dev/problems/"
DOMAIN_STATUS: dict[type[DomainError], tuple[int, str]] = {
    NotFound: (404, "not-found"),
    Invalid: (422, "validation"),
    Malformed: (400, "bad-request"),
    Conflict: (409, "conflict"),
    Unavailable: (503, "unavailable"),
    Unauthorized: (401, "unauthorized"),
}


class ApiProblem(Exception):
    """An HTTP-level problem raised by a view (auth, content type, preconditions); turned into
    problem+json by the one handler in `register`, beside the domain's errors."""

    def __init__(self, status: int, title: str, detail: str, slug: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail
        self.slug = slug or title.lower().replace(" ", "-")
        self.headers = headers or {}


def unauthorized(detail: str) -> ApiProblem:
    """401 with the Bearer challenge."""
    return ApiProblem(401, "Unauthorized", detail, "unauthorized",
                      headers={"WWW-Authenticate": 'Bearer realm="triage"'})


def forbidden(detail: str) -> ApiProblem:
    """403: a valid key without the role."""
    return ApiProblem(403, "Forbidden", detail, "forbidden")


def problem(
    status: int, title: str, detail: str, slug: str, errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """An RFC 9457 problem+json response."""
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.path if request else None,
    }
    if errors:
        body["errors"] = errors
    resp = Response(json.dumps(body), status=status, mimetype="application/problem+json")
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def validation_errors(exc: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    """Pydantic's errors as problem+json `errors` entries (field, message)."""
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        out.append({"field": prefix + loc, "message": err["msg"]})
    return out


def register(app: Flask) -> None:
    """Install the handlers; no HTML error page can leave this app."""

    @app.errorhandler(ApiProblem)
    def _api(exc: ApiProblem) -> Response:
        return problem(exc.status, exc.title, exc.detail, exc.slug, headers=exc.headers)

    @app.errorhandler(DomainError)
    def _domain(exc: DomainError) -> Response:
        status, slug = next(
            (v for k, v in DOMAIN_STATUS.items() if isinstance(exc, k)), (400, "bad-request")
        )
        return problem(status, exc.title, exc.detail, slug, exc.errors or None)

    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError) -> Response:
        return problem(
            422, "Invalid input", "The request did not pass validation.", "validation",
            validation_errors(exc),
        )

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        headers = {}
        if status == 405 and getattr(exc, "valid_methods", None):
            headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
        slug = (exc.name or "error").lower().replace(" ", "-")
        detail = exc.description or exc.name
        return problem(status, exc.name, detail, slug, headers=headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from sqlalchemy.exc import OperationalError

        if isinstance(exc, (OperationalError, RedisConnectionError)):
            log.error("backend unavailable: %s", type(exc).__name__)
            return problem(503, "Service unavailable",
                           "A backend is not answering; try again shortly.", "unavailable",
                           headers={"Retry-After": "5"})
        log.exception("unhandled error")
        return problem(500, "Internal server error", "Something went wrong on our side.", "internal")
