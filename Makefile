# Everything runs inside .venv, which the first target that needs it creates.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install models check-models lint test demo clean

help:
	@echo "make demo          publish a sample of order events to a local sandbox"
	@echo "make test          check the models, lint, type-check and run the tests"
	@echo "make models        regenerate hakuna_async/models/ from openapi/"
	@echo "make check-models  fail when the committed models are stale"

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

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
