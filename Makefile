# Gotong: `make run` to try or run the bot, `make test` to check everything.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck pytest bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

config.toml: | $(STAMP)
	$(BIN)/gotong init

## Run the bot: the playground on http://127.0.0.1:8080/playground until a chat app is configured.
run: $(STAMP) config.toml
	$(BIN)/gotong db upgrade
	$(BIN)/gotong run

## Lint, type-check and run the test suite.
test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-logo

typecheck: $(STAMP)
	$(BIN)/mypy

# Tests spend much of their time waiting on sockets and timers: two processes halve the
# run on two cores. Those that measure time itself (flood limits kept by several
# processes, a slow API, a paused process) run after them, alone: on a machine whose two
# cores are busy with other tests a timer fires late, and they would measure that.
TEST_WORKERS ?= 2

pytest: $(STAMP)
	$(BIN)/pytest -n $(TEST_WORKERS) -m "not timing"
	$(BIN)/pytest -m timing

bench: $(STAMP)
	$(BIN)/python benchmarks/inbound.py
	$(BIN)/python benchmarks/fanout.py
	$(BIN)/python benchmarks/allocation.py
	$(BIN)/python benchmarks/public_figures.py
	$(BIN)/python benchmarks/processes.py
	$(BIN)/python benchmarks/slow_clients.py
	$(BIN)/python benchmarks/city.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
