# The two commands of the quick start: `make run` and `make test`.
# Each creates what it needs (a virtualenv in .venv with the package installed).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck browser bench bench-write-model bench-read-side bench-http clean

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

# The console's browser tests drive Debian's Chromium (Playwright, executable_path).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the console's browser tests"; \
	    apt-get install -y -q chromium >/dev/null 2>&1 || \
	      { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null; }; \
	  else \
	    echo "chromium is missing: apt-get install chromium (browser tests skip; in CI they fail)"; \
	  fi; }

test: lint typecheck browser
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
