"""Request validation and response shapes (pydantic); the OpenAPI document is built from them."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from ..identity import INVISIBLE, shows_nothing

Trimmed = StringConstraints(strip_whitespace=True)

# C0/C1 controls other than tab and newline carry nothing a reader needs, and NUL breaks
# PostgreSQL: refused (422) in every field rather than silently changed.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROLS_ANY = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Bidi overrides and isolates can make text display differently from what was moderated.
_BIDI = re.compile(r"[\u202a-\u202e\u2066-\u2069]")
_LINK = re.compile(r"(?i)\b(?:https?://|www\.)")
MAX_LINKS = 10


def clean_text(value: str) -> str:
    """Refuse control characters (tab and newlines aside) and bidi overrides, each with a clear
    message."""
    if _BIDI.search(value):
        raise ValueError("contains Unicode bidirectional override characters")
    value = value.replace("\r\n", "\n")
    if _CONTROLS.search(value):
        raise ValueError("contains control characters")
    return value


def no_controls(value: object) -> object:
    """For one-line fields (emails, ids, reasons): no control character at all."""
    if isinstance(value, str) and _CONTROLS_ANY.search(value):
        raise ValueError("contains control characters")
    return value


def has_controls(value: str) -> bool:
    """Whether a path or query value carries a control character."""
    return bool(_CONTROLS_ANY.search(value))


# The published schema states what the validators below enforce, so clients (and schema-based
# fuzzers) know what is accepted; the validators themselves give the clearer error messages.
_NO_BIDI = "[^\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]"
_VISIBLE = "[^\\s\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]"
TEXT_PATTERN = f"^{_NO_BIDI}*{_VISIBLE}{_NO_BIDI}*$"
NAME_PATTERN = f"^{_NO_BIDI}*[^\\s{INVISIBLE}]{_NO_BIDI}*$"
_EMAIL_CHAR = "[^\\s\u0000-\u001f\u007f-\u009f]"
EMAIL_PATTERN = f"^[^@\\s\u0000-\u001f\u007f-\u009f]+@{_EMAIL_CHAR}*\\.{_EMAIL_CHAR}*$"
ONE_LINE_PATTERN = "^[^\u0000-\u001f\u007f-\u009f]*$"
FREE_TEXT_PATTERN = f"^{_NO_BIDI}*$"


class CommentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    author: Annotated[str, Trimmed, Field(min_length=1, max_length=80,
                                          json_schema_extra={"pattern": NAME_PATTERN})]
    body: Annotated[str, Trimmed, Field(min_length=1, max_length=5000,
                                        json_schema_extra={"pattern": TEXT_PATTERN})]
    email: Annotated[str, Trimmed, Field(max_length=320,
                                         json_schema_extra={"pattern": EMAIL_PATTERN})] | None = None
    parent_id: Annotated[str, Field(min_length=1, max_length=64,
                                    json_schema_extra={"pattern": ONE_LINE_PATTERN})] | None = None

    @field_validator("author", "body", mode="before")
    @classmethod
    def _clean(cls, value: object) -> object:
        return clean_text(value) if isinstance(value, str) else value

    @field_validator("email", "parent_id", mode="before")
    @classmethod
    def _one_line(cls, value: object) -> object:
        return no_controls(value)

    @field_validator("author")
    @classmethod
    def _visible_name(cls, value: str) -> str:
        if shows_nothing(value):
            raise ValueError("has no visible characters")
        return value

    @field_validator("body")
    @classmethod
    def _links(cls, value: str) -> str:
        if len(_LINK.findall(value)) > MAX_LINKS:
            raise ValueError(f"more than {MAX_LINKS} links")
        return value

    @field_validator("email")
    @classmethod
    def _email_shape(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        # Loose on purpose: we only need it to reach the commenter, not to prove RFC 5322.
        local, _, domain = value.partition("@")
        if not local or "." not in domain or " " in value:
            raise ValueError("not an email address")
        return value


class Links(BaseModel):
    self: str


class Accepted(BaseModel):
    id: str
    status: Literal["pending"]
    links: Links


class SupportResource(BaseModel):
    label: str
    url: str


class Support(BaseModel):
    message: str
    resources: list[SupportResource]


class CommentStatus(BaseModel):
    id: str
    article: str
    status: Literal["pending", "approved", "held", "rejected"]
    created_at: str
    decided_at: str | None
    support: Support | None = None


class PublicComment(BaseModel):
    id: str
    author: str
    body: str
    created_at: str
    parent_id: str | None


class CommentPage(BaseModel):
    items: list[PublicComment]
    next_cursor: str | None


class ListQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    limit: int = Field(default=50, ge=1, le=100)
    cursor: Annotated[str, Field(max_length=512)] | None = None
    order: Literal["oldest", "newest"] = "oldest"
    view: Literal["flat", "thread"] = "flat"

    @field_validator("cursor", mode="before")
    @classmethod
    def _one_line(cls, value: object) -> object:
        return no_controls(value)


class FieldError(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldError] | None = None


class Health(BaseModel):
    status: str
    checks: dict[str, str] | None = None


__all__ = ["CommentIn", "Accepted", "CommentStatus", "CommentPage", "ListQuery", "Problem"]


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["approve", "reject", "hold"]
    reason: Annotated[str, Trimmed, Field(max_length=200,
                                          json_schema_extra={"pattern": FREE_TEXT_PATTERN})] | None = None
    note: Annotated[str, Trimmed, Field(max_length=2000,
                                        json_schema_extra={"pattern": FREE_TEXT_PATTERN})] | None = None

    @field_validator("reason", "note", mode="before")
    @classmethod
    def _clean(cls, value: object) -> object:
        return clean_text(value) if isinstance(value, str) else value


class BulkItem(DecisionIn):
    id: Annotated[str, Field(min_length=1, max_length=64, json_schema_extra={"pattern": ONE_LINE_PATTERN})]

    @field_validator("id", mode="before")
    @classmethod
    def _one_line(cls, value: object) -> object:
        return no_controls(value)

    # Required, as If-Match is for one decision: a stale bulk approve must not undo a hold.
    version: int = Field(ge=1)


class BulkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decisions: list[BulkItem] = Field(min_length=1, max_length=100)


class QueueQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: Literal["held", "rejected", "approved", "reported", "pending"] = "held"
    category: Annotated[str, Field(max_length=40)] | None = None
    priority: Literal["urgent", "normal"] | None = None
    article: Annotated[str, Field(max_length=200)] | None = None
    limit: int = Field(default=50, ge=1, le=100)
    cursor: Annotated[str, Field(max_length=512)] | None = None

    @field_validator("category", "article", "cursor", mode="before")
    @classmethod
    def _one_line(cls, value: object) -> object:
        return no_controls(value)


class BanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    until: datetime | None = None
    reason: Annotated[str, Trimmed, Field(max_length=500,
                                          json_schema_extra={"pattern": FREE_TEXT_PATTERN})] | None = None

    @field_validator("reason", mode="before")
    @classmethod
    def _clean(cls, value: object) -> object:
        return clean_text(value) if isinstance(value, str) else value


class ReportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Literal["spam", "abuse", "misinformation", "self_harm", "other"]


class ReportOut(BaseModel):
    id: str
    reports: int


class ListIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[Annotated[str, Trimmed, Field(min_length=1, max_length=200,
                                              json_schema_extra={"pattern": ONE_LINE_PATTERN})]] = Field(
        max_length=5000)

    @field_validator("items", mode="before")
    @classmethod
    def _one_line(cls, value: object) -> object:
        if isinstance(value, list):
            for item in value:
                no_controls(item)
        return value
