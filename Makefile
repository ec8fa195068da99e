# The commands README names. Each creates .venv and installs what it needs first.
# The interpreter the virtual environment is made from: Debian's python3.11 where it can make
# one (optimised and static, as the python:3.11-slim image is built; measurably faster than a
# pyenv build, see docs/performance.md), else python3. `make clean` first to switch.
PYTHON ?= $(shell for p in /usr/bin/python3.11 python3; do \
  "$$p" -c 'import ensurepip, sys, venv; sys.exit(sys.version_info[:2] < (3, 11))' 2>/dev/null \
  && { echo "$$p"; exit; }; done; echo python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Every dependency, with its hashes: requirements.lock (the service, and its build backend: the
# Docker image) and requirements-dev.lock (the same pins plus the test tools: make install).
LOCK := requirements.lock
DEV_LOCK := requirements-dev.lock
COMPILE = $(BIN)/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe \
  --no-emit-index-url --no-emit-find-links $(LOCK_ARGS)

.PHONY: install run test test-long eval model bench docs audit lint clean browser-deps edge-deps lock

install: $(STAMP)

# Re-install only when the lock changes. Exactly the locked files (pip refuses any whose hash
# differs), then the project itself without its dependencies. pip is the venv's own: no upgrade.
$(STAMP): pyproject.toml $(DEV_LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r $(DEV_LOCK)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

# Rewrite the locks from pyproject.toml: keeps existing pins, adds and drops what changed.
# `make lock LOCK_ARGS=--upgrade` moves everything to the newest allowed versions (then review
# the diff, run `make audit` and `make test`).
lock: install
	$(COMPILE) --all-build-deps -o $(LOCK) pyproject.toml
	$(COMPILE) --extra test -c $(LOCK) -o $(DEV_LOCK) pyproject.toml

run: install
	$(BIN)/triage run

# Debian's Chromium and chromedriver for tests/browser (never a downloaded browser).
browser-deps:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" != 0 ]; then echo "browser-deps: not root, skipping apt-get install chromium chromium-driver (browser tests will skip)"; \
	else apt-get update && apt-get install -y chromium chromium-driver; fi

# Debian's nginx for the test of deploy/nginx.conf, the compose file's proxy.
edge-deps:
	@if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then :; \
	elif [ "$$(id -u)" != 0 ]; then echo "edge-deps: not root, skipping apt-get install nginx-light (the proxy test will skip)"; \
	else apt-get install -y nginx-light >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y nginx-light >/dev/null; }; fi

test: install browser-deps edge-deps
	$(BIN)/python -m pytest -q -m "not long" $(PYTEST_ARGS)

test-long: install
	$(BIN)/python -m pytest -q -m long $(PYTEST_ARGS)

# Prints the quality table and writes var/quality.md; `make docs` copies it into README.
eval: install
	$(BIN)/triage eval --input ../shared/data/dev_comments.jsonl --youtube ../shared/data/youtube-spam --robustness

# Rebuild the shipped model from the corpus (calibrated out of sample; about five minutes on two
# cores). Rewrites workers/engine/filters/data/model.json.gz, which is what it is for.
model: install
	$(BIN)/triage model build

# Known vulnerabilities in every locked dependency (PyPI's advisory data, so it needs to reach
# the package index). Fails on any finding, and when it cannot ask.
audit: install
	$(BIN)/pip-audit --strict --disable-pip --require-hashes -r $(LOCK) -r $(DEV_LOCK) \
	  --progress-spinner off --desc on

# ruff with the rules in pyproject.toml, and the type hints of everything outside tests checked
# by mypy (pinned: a new release may judge differently).
lint: install
	$(BIN)/ruff check services workers bench tests
	$(BIN)/mypy services workers bench

# README's generated tables: settings, and what the last `make eval` / `make bench` left in var/.
docs: install
	$(BIN)/triage docs

# Prints its table and writes var/ (bench.json, performance*.md); `make docs` copies the table
# into README. `wrk` from Debian's packages when missing (root only; otherwise a built-in Python client).
bench: install
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; } \
	      || echo "bench: could not install wrk; using the built-in Python load generator"; \
	  else echo "bench: wrk missing and not root; using the built-in Python load generator"; fi; }
	$(BIN)/python -m bench $(BENCH_ARGS)
	$(BIN)/python -m bench.readers $(READERS_BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache
