"""Domain errors; the API maps each to one HTTP status in one place."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error the domain raises on purpose."""

    title = "Error"

    def __init__(self, detail: str, *, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []


class NotFound(DomainError):
    title = "Not found"


class Invalid(DomainError):
    title = "Invalid input"


class Malformed(DomainError):
    """Input that is not what this API handed out (a forged cursor): a bad request, not a field
    that failed validation."""

    title = "Bad request"


class Conflict(DomainError):
    title = "Conflict"


class Unavailable(DomainError):
    title = "Service unavailable"


class Unauthorized(DomainError):
    """A caller that proved nothing (a signature that does not match)."""

    title = "Unauthorized"
