# Two commands after cloning: `make run` (the bot; the demo when no Slack/Zuora settings exist) and `make test`.
# Both create .venv and install the project into it on first use, with exactly the versions pinned in
# constraints.txt (pip and setuptools included); again whenever pyproject.toml or constraints.txt changes.
# `make lock` re-resolves the newest versions allowed by pyproject.toml into constraints.txt.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := constraints.txt
LOCK_VENV := .venv-lock

.PHONY: run demo test lint bench lock

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c $(LOCK) pip setuptools
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-build-isolation -c $(LOCK) -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/sandbox-bot $(ARGS)

demo: $(STAMP)
	$(BIN)/sandbox-bot demo $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest $(ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench

lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet --upgrade pip setuptools
	$(LOCK_VENV)/bin/python -m pip install --quiet --no-build-isolation -e '.[dev]'
	{ echo "# Every package CI, make test and make run install, pinned. Regenerate with: make lock"; \
	  $(LOCK_VENV)/bin/python -m pip freeze --all --exclude-editable; } > $(LOCK)
	rm -rf $(LOCK_VENV)
