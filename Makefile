# dlx — every command a user or CI needs. `make test` is what CI runs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install train sweep test test-slow lint ui bench clean

install: $(STAMP)

# The venv is rebuilt only when pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

train: install          ## the default run: CNN on scikit-learn's digits, tracked in ./mlflow.db
	$(BIN)/dlx train

sweep: install          ## a small grid sweep: 4 runs under one parent MLflow run
	$(BIN)/dlx train -m optimizer=sgd,adam optimizer.lr=0.01,0.001

test: install           ## the fast suite (CI)
	$(BIN)/python -m pytest -q

test-slow: install      ## the long tests only
	$(BIN)/python -m pytest -q -m slow

lint: install
	$(BIN)/ruff check dlx tests benchmarks

ui: install             ## MLflow UI over ./mlflow.db on http://127.0.0.1:5000
	$(BIN)/dlx ui

bench: install
	$(BIN)/python benchmarks/fit_loop.py

clean:
	rm -rf $(VENV) outputs/*/ multirun mlflow.db mlruns
