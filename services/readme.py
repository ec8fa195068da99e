"""README's and docs/' generated tables are written by commands between markers, never by hand,
and only when asked (`make docs`, `--write-docs`)."""

from __future__ import annotations

from pathlib import Path

from .config import ROOT

PERFORMANCE_DOC = Path("docs") / "performance.md"
QUALITY_DOC = Path("docs") / "quality.md"
SETTINGS_DOC = Path("docs") / "settings.md"


def replace_section(name: str, body: str, path: Path | None = None) -> None:
    """Replace the text between `<!-- name:start -->` and `<!-- name:end -->` in README.md (or
    `path`)."""
    path = path or ROOT / "README.md"
    text = path.read_text(encoding="utf-8")
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start not in text or end not in text:
        raise SystemExit(f"{path.name} has no {start} … {end} markers")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{body.strip()}\n{end}{tail}", encoding="utf-8")


def write_table(name: str, body: str, root: Path = ROOT) -> list[Path]:
    """Write a generated table where it belongs; returns the files written.

    Performance tables go to docs/performance.md with their notes on how each figure was
    taken; README carries the default database's table alone."""
    written: list[Path] = []
    if name == "settings":  # the full table; README names the few an operator sets first
        replace_section(name, body, root / SETTINGS_DOC)
        return [root / SETTINGS_DOC]
    if name.startswith("quality-"):  # the long quality story lives in docs/quality.md alone
        replace_section(name, body, root / QUALITY_DOC)
        return [root / QUALITY_DOC]
    if name.startswith("performance"):
        replace_section(name, body, root / PERFORMANCE_DOC)
        written.append(root / PERFORMANCE_DOC)
        if name != "performance":
            return written
        body = "\n".join(ln for ln in body.splitlines() if not ln.startswith("- ")).strip()
    replace_section(name, body, root / "README.md")
    written.append(root / "README.md")
    return written
