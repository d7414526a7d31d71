# Everything runs inside .venv, which the first target that needs it creates.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install models check-models lint test demo bench clean

help:
	@echo "make demo          publish a sample of order events to a local sandbox"
	@echo "make test          check the models, lint, type-check and run the tests"
	@echo "make models        regenerate hakuna_async/models/ from openapi/"
	@echo "make check-models  fail when the committed models are stale"
	@echo "make bench         benchmark against raw aiohttp and httpx clients (about 7 minutes);"
	@echo "                   BENCH_ARGS=--quick for a 1-minute run into build/bench/quick/"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

models: $(STAMP)
	$(BIN)/python codegen/generate.py

check-models: $(STAMP)
	$(BIN)/python codegen/generate.py --check

lint: $(STAMP)
	$(BIN)/ruff check hakuna_async codegen tests examples benchmarks
	$(BIN)/ruff format --check hakuna_async codegen
	$(BIN)/mypy

test: check-models lint
	$(BIN)/pytest -q

demo: $(STAMP)
	$(BIN)/python examples/demo.py

# Writes benchmarks/RESULTS.md and benchmarks/events_per_second.png (build/bench/quick/
# for --quick). The bench extra stays out of the dev install, so make test stays lean.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
