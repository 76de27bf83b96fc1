# Two commands do everything on a fresh machine with Python 3.11+:
#   make run    set up .venv and run the bot (settings from .env / the environment)
#   make test   set up .venv and run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m bot

test: $(STAMP)
	$(BIN)/python -m pytest

# Benchmarks (docs/benchmarks.md): figures printed, nothing asserted; about 10 minutes.
# Options through BENCH_ARGS, e.g. make bench BENCH_ARGS="--db sqlite --runs 5".
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check bot web_callback tests
	$(BIN)/mypy bot web_callback

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
