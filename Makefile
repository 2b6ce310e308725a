# `make run` and `make test` are the whole quick start: each creates .venv if missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck bench clean

# `make run`: imdb-tui and what running it needs, nothing more (about 60 MB).
$(RUN_STAMP): pyproject.toml .ci/constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e . -c .ci/constraints.txt
	@touch $(RUN_STAMP)

# `make test` and the tools: the test extra too (moto, PostgreSQL's driver, Playwright...).
$(STAMP): pyproject.toml .ci/constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]' -c .ci/constraints.txt
	@touch $(STAMP) $(RUN_STAMP)

run: $(RUN_STAMP)
	$(BIN)/imdb-tui $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check imdb_tui tests bench
	$(BIN)/ruff format --check imdb_tui tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

# Four workers, on 2 cores too: most tests wait on subprocesses and servers.
# `make test WORKERS=0` runs them one at a time, in this process.
WORKERS ?= 4
test: lint typecheck
	@# The hundreds of imdb-tui processes the tests start read compiled modules, even
	@# where PYTHONDONTWRITEBYTECODE is set: a fifth of a second less CPU for each.
	$(BIN)/python -m compileall -q imdb_tui tests
	$(BIN)/python -m pytest -q -n $(WORKERS) --durations=10

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]' -c .ci/constraints.txt
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/load.py
	$(BIN)/python bench/snapshot.py
	$(BIN)/python bench/memory.py
	$(BIN)/python bench/rate.py
	$(BIN)/python bench/monitor.py
	$(BIN)/python bench/catalog.py
	$(BIN)/python bench/postgres.py
	$(BIN)/python bench/kinesis.py
	$(BIN)/python bench/dynamodb.py
	$(BIN)/python bench/export.py
	$(BIN)/python bench/wal.py
	$(BIN)/python bench/serve.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
	find imdb_tui tests bench -name __pycache__ -prune -exec rm -rf {} +
