# Two commands on a fresh machine with Python 3.11+:  make run   |   make test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8501

.PHONY: run test lint bench sample-data clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed-app: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[test]"
	touch $@ $(VENV)/.installed-app

$(VENV)/.installed-build: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[test,build]"
	touch $@ $(VENV)/.installed-test $(VENV)/.installed-app

## Start the app on the sample model store (database and artifacts under .medmodels/).
run: $(VENV)/.installed-app
	$(BIN)/streamlit run streamlit_app.py --server.port $(PORT)

## Lint, type-check and run the whole test suite.
test: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Rebuild sample_data/ from the seeded generator and the packages that ship real scans.
sample-data: $(VENV)/.installed-build
	$(BIN)/python tools/make_sample_data.py

bench: $(VENV)/.installed-build
	@for f in bench/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
