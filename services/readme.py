"""README tables are written by commands between markers, never typed by hand."""

from __future__ import annotations

from pathlib import Path

from .config import ROOT


def replace_section(name: str, body: str, path: Path | None = None) -> None:
    """Replace the text between `<!-- name:start -->` and `<!-- name:end -->` in README.md."""
    path = path or ROOT / "README.md"
    text = path.read_text(encoding="utf-8")
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start not in text or end not in text:
        raise SystemExit(f"README.md has no {start} … {end} markers")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{body.strip()}\n{end}{tail}", encoding="utf-8")
