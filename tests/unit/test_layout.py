"""The layout's import rules: dependencies point one way."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imports_of(path: Path, root: Path = ROOT) -> set[str]:
    """Every module a file imports, relative imports resolved against its package."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = list(path.relative_to(root).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def offenders(folder: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        bad = sorted(m for m in imports_of(path)
                     if any(m == f or m.startswith(f + ".") for f in forbidden))
        if bad:
            out[str(path.relative_to(ROOT))] = bad
    return out


def test_the_rule_checker_sees_relative_and_absolute_imports(tmp_path):
    probe = tmp_path / "workers" / "engine" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text("import flask\nfrom services.api import create_app\nfrom ...services.api import x\n"
                     "from . import model\n")
    assert imports_of(probe, tmp_path) == {
        "flask", "services.api", "services.api.create_app", "services.api.x",
        "workers.engine", "workers.engine.model"}


def test_workers_never_import_the_api():
    assert offenders("workers", ("services.api",)) == {}


def test_the_domain_imports_neither_flask_nor_celery():
    assert offenders("services/comments", ("flask", "celery", "services.api", "workers")) == {}


def test_the_queue_package_imports_neither_the_api_nor_worker_code():
    assert offenders("services/queue", ("flask", "celery", "services.api", "workers")) == {}


ENGINE_FORBIDDEN = ("celery", "kombu", "flask", "sqlalchemy", "redis", "services")


def test_the_engine_imports_no_celery_flask_sqlalchemy_or_redis():
    assert offenders("workers/engine", ENGINE_FORBIDDEN) == {}


def test_the_whole_engine_loads_without_them():
    # The static check above misses imports made by a third-party package on the engine's behalf.
    import subprocess
    import sys

    modules = sorted(".".join(p.relative_to(ROOT).with_suffix("").parts)
                     for p in (ROOT / "workers" / "engine").rglob("*.py")
                     if p.name != "__init__.py")
    code = ("import importlib, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {ENGINE_FORBIDDEN!r}))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
