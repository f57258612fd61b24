# The two commands of the quick start: `make run` and `make test`.
# Each creates what it needs (a virtualenv in .venv with the package installed).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck bench bench-write-model bench-read-side bench-http clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/cronica serve

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest

bench:
	bash benchmarks/run.sh

bench-write-model:
	bash benchmarks/run.sh write-model

bench-read-side:
	bash benchmarks/run.sh read-side

bench-http:
	bash benchmarks/run.sh http

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
