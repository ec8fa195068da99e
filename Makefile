# The commands README names. Each creates .venv and installs what it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-long eval bench docs lint clean

install: $(STAMP)

# Re-install only when the project's dependencies change.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

run: install
	$(BIN)/triage run

test: install
	$(BIN)/python -m pytest -q -m "not long" $(PYTEST_ARGS)

test-long: install
	$(BIN)/python -m pytest -q -m long $(PYTEST_ARGS)

eval: install
	$(BIN)/triage eval --input ../shared/data/dev_comments.jsonl --youtube ../shared/data/youtube-spam --write-readme

docs: install
	$(BIN)/triage docs

clean:
	rm -rf $(VENV) var .pytest_cache
