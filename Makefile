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

.PHONY: install run test test-long eval model bench docs audit lint clean browser-deps

install: $(STAMP)

# Re-install only when the project's dependencies change.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

run: install
	$(BIN)/triage run

# Debian's Chromium and chromedriver for tests/browser (never a downloaded browser).
browser-deps:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" != 0 ]; then echo "browser-deps: not root, skipping apt-get install chromium chromium-driver (browser tests will skip)"; \
	else apt-get update && apt-get install -y chromium chromium-driver; fi

test: install browser-deps
	$(BIN)/python -m pytest -q -m "not long" $(PYTEST_ARGS)

test-long: install
	$(BIN)/python -m pytest -q -m long $(PYTEST_ARGS)

# Prints the quality table and writes var/quality.md; `make docs` copies it into README.
eval: install
	$(BIN)/triage eval --input ../shared/data/dev_comments.jsonl --youtube ../shared/data/youtube-spam --robustness

# Rebuild the shipped model from the corpus (calibrated out of sample; about ten minutes on two
# cores). Rewrites workers/engine/filters/data/model.json.gz, which is what it is for.
model: install
	$(BIN)/triage model build

# Known vulnerabilities in the installed dependencies (PyPI's advisory data).
audit: install
	@$(BIN)/python -m pip install --quiet pip-audit
	$(BIN)/pip-audit --strict --skip-editable --progress-spinner off --desc off

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
