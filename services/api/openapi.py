"""The OpenAPI 3.1 document, built from the same pydantic models that validate requests."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic.json_schema import models_json_schema

from . import schemas

PROBLEM = {"$ref": "#/components/responses/Problem"}


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


def _resp(desc: str, ref: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": desc}
    if ref:
        out["content"] = _json(ref)
    return out


SLUG = {"name": "slug", "in": "path", "required": True, "schema": {"type": "string"}}
CID = {"name": "comment_id", "in": "path", "required": True, "schema": {"type": "string"}}


@lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    """The whole document; computed once per process."""
    models = [
        schemas.CommentIn, schemas.Accepted, schemas.CommentStatus, schemas.CommentPage,
        schemas.Problem, schemas.Health,
    ]
    _, defs = models_json_schema(
        [(m, "validation" if m is schemas.CommentIn else "serialization") for m in models],
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
                        {"name": "cursor", "in": "query", "schema": {"type": "string"}},
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
            "/healthz": {"get": {"summary": "Process alive", "operationId": "healthz",
                                 "responses": {"200": _resp("Alive", "Health")}}},
            "/readyz": {"get": {"summary": "Database and Redis answer", "operationId": "readyz",
                                "responses": {"200": _resp("Ready", "Health"),
                                              "503": _resp("Not ready", "Health")}}},
            "/openapi.json": {"get": {"summary": "This document", "operationId": "openapi",
                                      "responses": {"200": {"description": "OpenAPI 3.1"}}}},
        },
        "components": {
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
