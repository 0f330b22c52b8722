# Two entry points, both self-contained on a fresh machine:
#   make demo   -> creates .venv when missing, installs hrnet, runs the demo
#   make test   -> creates .venv when missing, installs hrnet with test extras, runs lint + tests
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

.PHONY: demo test lint slow
demo: $(STAMP)
	$(BIN)/hrnet demo --out runs/demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

test: lint
	$(BIN)/python -m pytest -q

slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow
