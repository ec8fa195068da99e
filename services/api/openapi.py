"""The OpenAPI 3.1 document, built from the same pydantic models that validate requests."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from . import integrations, readers, schemas

PROBLEM = {"$ref": "#/components/responses/Problem"}


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


def _resp(desc: str, ref: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": desc}
    if ref:
        out["content"] = _json(ref)
    return out


# Control characters are refused (422) in every path and query value.
PLAIN = {"type": "string", "pattern": "^[^\u0000-\u001f\u007f-\u009f]*$"}
SLUG = {"name": "slug", "in": "path", "required": True, "schema": PLAIN}
CID = {"name": "comment_id", "in": "path", "required": True, "schema": PLAIN}


@lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    """The whole document; computed once per process."""
    models: list[type[BaseModel]] = [
        schemas.CommentIn, schemas.Accepted, schemas.CommentStatus, schemas.CommentPage,
        schemas.Problem, schemas.Health, schemas.ReportIn, schemas.ReportOut,
        schemas.DecisionIn, schemas.BulkIn, schemas.BanIn, schemas.ListIn,
    ]
    _, defs = models_json_schema(
        [(m, "validation" if m.__name__.endswith("In") else "serialization") for m in models],
        ref_template="#/components/schemas/{model}",
    )
    components = defs.get("$defs", {})
    errors = {code: PROBLEM for code in ("400", "404", "405", "413", "415", "422", "500")}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Triage",
            "version": "1.0.0",
            "description": "Comment moderation for health publishers.",
        },
        "paths": {
            "/v1/articles/{slug}/comments": {
                "parameters": [SLUG],
                "post": {
                    "summary": "Submit a comment for moderation",
                    "operationId": "submitComment",
                    "requestBody": {"required": True, "content": _json("CommentIn")},
                    "responses": {
                        "202": {
                            **_resp("Accepted; moderation is pending", "Accepted"),
                            "headers": {"Location": {"schema": {"type": "string"}}},
                        },
                        **errors,
                        "503": PROBLEM,
                    },
                },
                "get": {
                    "summary": "Approved comments, oldest first",
                    "operationId": "listComments",
                    "parameters": [
                        {"name": "limit", "in": "query",
                         "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 50}},
                        {"name": "cursor", "in": "query", "schema": PLAIN},
                        {"name": "order", "in": "query",
                         "schema": {"type": "string", "enum": ["oldest", "newest"]}},
                        {"name": "view", "in": "query",
                         "schema": {"type": "string", "enum": ["flat", "thread"]}},
                    ],
                    "responses": {"200": _resp("A page", "CommentPage"), **errors},
                },
            },
            "/v1/comments/{comment_id}": {
                "parameters": [CID],
                "get": {
                    "summary": "Moderation status of a comment, for its author",
                    "operationId": "getComment",
                    "responses": {"200": _resp("The status", "CommentStatus"), **errors},
                },
            },
            "/v1/comments/{comment_id}/reports": {
                "parameters": [CID],
                "post": {
                    "summary": "Report a published comment (once per reporter)",
                    "operationId": "reportComment",
                    "requestBody": {"required": True, "content": _json("ReportIn")},
                    "responses": {"202": _resp("Counted", "ReportOut"), **errors, "409": PROBLEM,
                                  "429": PROBLEM},
                },
            },
            **moderation_paths(errors),
            **readers.openapi_paths(errors, SLUG),
            **integrations.openapi_paths(),
            "/healthz": {"get": {"summary": "Process alive", "operationId": "healthz",
                                 "responses": {"200": _resp("Alive", "Health")}}},
            "/readyz": {"get": {"summary": "Database and Redis answer", "operationId": "readyz",
                                "responses": {"200": _resp("Ready", "Health"),
                                              "503": _resp("Not ready", "Health")}}},
            "/openapi.json": {"get": {"summary": "This document", "operationId": "openapi",
                                      "responses": {"200": {"description": "OpenAPI 3.1"}}}},
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": components,
            "responses": {
                "Problem": {
                    "description": "RFC 9457 problem details",
                    "content": {"application/problem+json": {
                        "schema": {"$ref": "#/components/schemas/Problem"}}},
                }
            },
        },
    }


def moderation_paths(errors: dict[str, Any]) -> dict[str, Any]:
    """Moderator and admin routes; all need a Bearer key."""
    sec: list[dict[str, list[str]]] = [{"bearer": []}]
    auth = {"401": PROBLEM, "403": PROBLEM, "429": PROBLEM}
    obj = {"description": "JSON", "content": {"application/json": {"schema": {"type": "object"}}}}
    name = {"name": "name", "in": "path", "required": True,
            "schema": {"type": "string", "enum": ["blocked_terms", "suspect_terms", "blocked_domains",
                                                  "allowed_domains"]}}
    ref = {"name": "author_ref", "in": "path", "required": True, "schema": PLAIN}
    return {
        "/v1/moderation/queue": {"get": {
            "summary": "Held (or other) comments, urgent first then oldest", "operationId": "queue",
            "security": sec,
            "parameters": [
                {"name": "status", "in": "query", "schema": {
                    "type": "string", "enum": ["held", "rejected", "approved", "reported", "pending"]}},
                {"name": "category", "in": "query", "schema": PLAIN},
                {"name": "priority", "in": "query", "schema": {"type": "string", "enum": ["urgent", "normal"]}},
                {"name": "article", "in": "query", "schema": PLAIN},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                {"name": "cursor", "in": "query", "schema": PLAIN},
            ],
            "responses": {"200": obj, **errors, **auth}}},
        "/v1/moderation/comments/{comment_id}": {"parameters": [CID], "get": {
            "summary": "A comment with findings and its append-only history",
            "operationId": "moderationComment", "security": sec,
            "responses": {"200": obj, **errors, **auth}}},
        "/v1/moderation/comments/{comment_id}/decision": {"parameters": [CID], "post": {
            "summary": "Decide (If-Match: the version reviewed)", "operationId": "decide",
            "security": sec,
            "parameters": [{"name": "If-Match", "in": "header", "required": True,
                            "schema": {"type": "string"}}],
            "requestBody": {"required": True, "content": _json("DecisionIn")},
            "responses": {"200": obj, "409": PROBLEM, "428": PROBLEM, **errors, **auth}}},
        "/v1/moderation/decisions": {"post": {
            "summary": "Bulk decisions, one result per id", "operationId": "bulkDecide",
            "security": sec, "requestBody": {"required": True, "content": _json("BulkIn")},
            "responses": {"200": obj, **errors, **auth}}},
        "/v1/moderation/authors/{author_ref}/ban": {"parameters": [ref], "post": {
            "summary": "Ban an author (optionally until a time)", "operationId": "ban",
            "security": sec, "requestBody": {"content": _json("BanIn")},
            "responses": {"200": obj, **errors, **auth}}},
        "/v1/moderation/authors/{author_ref}/unban": {"parameters": [ref], "post": {
            "summary": "Lift an author's bans", "operationId": "unban", "security": sec,
            "responses": {"200": obj, **errors, **auth}}},
        "/v1/admin/lists/{name}": {"parameters": [name], "get": {
            "summary": "A term or domain list with its history", "operationId": "getList",
            "security": sec, "responses": {"200": obj, **errors, **auth}},
            "put": {"summary": "Replace a list; workers use it within 5 s", "operationId": "putList",
                    "security": sec, "requestBody": {"required": True, "content": _json("ListIn")},
                    "responses": {"200": obj, **errors, **auth}}},
    }
