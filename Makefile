# The two commands a newcomer needs: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck clean install bench bench-quick bench-flood faketime chromium

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/payrelay demo

# Debian's faketime (libfaketime) for `payrelay chaos`'s clock_skew fault and its tests.
FAKETIME_LIB := $(firstword $(wildcard /usr/lib/*/faketime/libfaketime.so.1))

faketime:
ifeq ($(FAKETIME_LIB),)
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime
endif

# Debian's chromium for the admin page's browser test (tests/integration/test_admin_page_browser.py),
# driven by Playwright with executable_path: never `playwright install`.
chromium:
ifeq ($(wildcard /usr/bin/chromium),)
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
endif

test: $(STAMP) faketime chromium
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/pytest -q

# Not part of `make test` (see docs/performance.md). `make bench`: ceilings, ingest and
# webhook -> PAID per backend, recovery (backlog drain, slow order side, kill -9), the naive
# pattern, written to bench/results/<date>.json and .png (~13 min; `--only SECTION`).
bench: $(STAMP)
	$(BIN)/python -m benchmarks

bench-quick: $(STAMP)
	$(BIN)/python -m benchmarks --quick

# Good webhooks' p50/p99 alone and during a flood of bad requests (issue 8).
bench-flood: $(STAMP)
	$(BIN)/python benchmarks/bad_flood.py

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
