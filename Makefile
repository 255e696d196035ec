# framewire: `make test` sets everything up on a fresh machine and runs the tests.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: help install system-deps test run lint format clean

help:
	@echo "make run     redis + sender + both receivers on this machine (Ctrl-C stops)"
	@echo "make test    install what the tests need, then run them"
	@echo "make lint    ruff"

$(STAMP): requirements-dev.lock pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

install: $(STAMP)

system-deps:
	@scripts/system-deps.sh

test: install system-deps
	$(BIN)/pytest $(PYTEST_ARGS)

run: install
	$(BIN)/python scripts/run_local.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
