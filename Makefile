# churnml — two commands: `make demo` (set up + run the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## Set up and run the main job end to end on the embedded simulated data.
demo: $(STAMP)
	$(BIN)/churnml demo $(DEMO_ARGS)

## Set up, lint and run the whole test suite.
test: $(STAMP)
	$(BIN)/ruff check churnml tests benchmarks
	$(BIN)/pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check churnml tests benchmarks

clean:
	rm -rf $(VENV) out mlflow.db mlflow.db.lock mlruns mlartifacts .pytest_cache
