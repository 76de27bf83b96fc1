# Two commands do everything on a fresh machine with Python 3.11+:
#   make run    set up .venv with what the bot needs and run it (the playground when nothing is
#               configured; settings from .env / the environment)
#   make test   set up .venv with the test tools too and run the whole test suite
# Versions come from the lock files (README, "Dependencies"); `make lock` renews them.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Backend notices (setuptools' "Editable installation" block) are not errors: not shown.
PIP    := PYTHONWARNINGS=ignore $(BIN)/python -m pip --quiet --disable-pip-version-check
RUN_STAMP  := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
LOCK_ARGS  := --generate-hashes --python-version 3.11 --python-platform linux --quiet

.PHONY: run test lint bench lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# The runtime lock, then the project itself (editable: `python -m bot` and `connect-bot` run this
# tree). An existing editable install of this tree is kept, so a running test is not disturbed.
$(RUN_STAMP): requirements.lock pyproject.toml | $(BIN)/python
	$(PIP) install --require-hashes --no-deps -r requirements.lock
	(cd / && $(abspath $(BIN))/python -c 'import bot, pathlib, sys; sys.exit(pathlib.Path(bot.__file__).parent != pathlib.Path("$(CURDIR)/bot"))') 2>/dev/null \
		&& test -x $(BIN)/connect-bot \
		|| $(PIP) install --no-deps --editable .
	touch $@

$(TEST_STAMP): requirements-dev.lock $(RUN_STAMP)
	$(PIP) install --require-hashes --no-deps -r requirements-dev.lock
	touch $@

run: $(RUN_STAMP)
	$(BIN)/python -m bot

test: $(TEST_STAMP)
	$(BIN)/python -m pytest

# Benchmarks (docs/benchmarks.md): figures printed, nothing asserted; about 10 minutes.
# Options through BENCH_ARGS, e.g. make bench BENCH_ARGS="--db sqlite --runs 5".
bench: $(TEST_STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

lint: $(TEST_STAMP)
	$(BIN)/ruff check bot web_callback sandbox playground tests
	$(BIN)/mypy bot web_callback sandbox playground

# Renew both lock files from pyproject.toml: the newest releases its bounds allow.
lock: | $(BIN)/python
	$(PIP) install "uv>=0.13,<1"
	$(BIN)/uv pip compile pyproject.toml $(LOCK_ARGS) --upgrade -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra test $(LOCK_ARGS) --upgrade -o requirements-dev.lock

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
