"""Typed values that cross into the domain from outside it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol


class FindingLike(Protocol):
    """One reason the engine doubted a comment; serialised once, when it is written."""

    def to_json(self) -> dict[str, Any]: ...


class EngineVerdict(Protocol):
    """The engine's verdict as the domain records it (`workers.engine.pipeline.Verdict`
    satisfies it): typed until the row and its decision are written."""

    @property
    def action(self) -> str: ...
    @property
    def priority(self) -> str: ...
    @property
    def categories(self) -> Sequence[str]: ...
    @property
    def published_body(self) -> str | None: ...
    @property
    def masked_body(self) -> str | None: ...
    @property
    def policy_version(self) -> str | None: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def findings(self) -> Sequence[FindingLike]: ...
    @property
    def scores(self) -> Mapping[str, float]: ...
