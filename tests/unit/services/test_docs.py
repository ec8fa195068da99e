"""Generated tables go where they belong, and only when asked."""

from __future__ import annotations

from pathlib import Path

from services.readme import write_table


def _tree(root: Path) -> None:
    (root / "docs").mkdir()
    for path, names in ((root / "README.md", ("quality", "performance")),
                        (root / "docs" / "performance.md", ("performance", "performance-postgresql"))):
        path.write_text("".join(f"# {n}\n<!-- {n}:start -->\nold\n<!-- {n}:end -->\ntail\n"
                                for n in names), encoding="utf-8")


def test_the_default_performance_table_goes_to_readme_without_its_notes(tmp_path):
    _tree(tmp_path)
    body = "Measured on a day.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n- ingest: how it was taken."
    written = write_table("performance", body, tmp_path)
    assert written == [tmp_path / "docs" / "performance.md", tmp_path / "README.md"]
    readme = (tmp_path / "README.md").read_text()
    doc = (tmp_path / "docs" / "performance.md").read_text()
    assert "| 1 | 2 |" in readme and "how it was taken" not in readme
    assert "<!-- quality:start -->\nold\n<!-- quality:end -->" in readme  # untouched
    assert "- ingest: how it was taken." in doc and "tail" in doc


def test_other_databases_tables_go_to_docs_only_and_quality_to_readme(tmp_path):
    _tree(tmp_path)
    before = (tmp_path / "README.md").read_text()
    assert write_table("performance-postgresql", "pg table", tmp_path) == [
        tmp_path / "docs" / "performance.md"]
    assert (tmp_path / "README.md").read_text() == before
    assert "pg table" in (tmp_path / "docs" / "performance.md").read_text()
    write_table("quality", "q table", tmp_path)
    assert "<!-- quality:start -->\nq table\n<!-- quality:end -->" in (tmp_path / "README.md").read_text()


def test_the_repository_has_every_marker_the_commands_write():
    from services.config import ROOT

    readme = (ROOT / "README.md").read_text()
    doc = (ROOT / "docs" / "performance.md").read_text()
    for name in ("quality", "robustness", "performance"):
        assert f"<!-- {name}:start -->" in readme and f"<!-- {name}:end -->" in readme
    settings = (ROOT / "docs" / "settings.md").read_text()
    assert "<!-- settings:start -->" in settings and "<!-- settings:end -->" in settings
    for name in ("performance", "performance-postgresql"):
        assert f"<!-- {name}:start -->" in doc and f"<!-- {name}:end -->" in doc
