# dlx — every command a user or CI needs. `make test` is what CI runs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install train sweep test test-spawn test-slow test-serve test-wheel test-browser test-cluster lint ui bench clean

install: $(STAMP)

# The venv is rebuilt only when pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,optuna,joblib,slurm,postgres]'
	touch $(STAMP)

train: install          ## the default run: CNN on scikit-learn's digits, tracked in ./mlflow.db
	$(BIN)/dlx train

sweep: install          ## a small grid sweep: 4 runs under one parent MLflow run
	$(BIN)/dlx train -m optimizer=sgd,adam optimizer.lr=0.01,0.001

test: install           ## the fast suite (CI), two test processes
	$(BIN)/python -m pytest -q -n 2

test-spawn: install     ## the `spawn` tests again, each dlx command and tracking writer a new interpreter (CI)
	DLX_TESTS_SPAWN=1 $(BIN)/python -m pytest -q -n 2 -m spawn

test-slow: install      ## the long tests only (CI runs them too)
	$(BIN)/python -m pytest -q -n 2 -m slow

test-serve: install     ## `mlflow models serve` on exported runs (127.0.0.1): raw inputs answered as dlx predict answers them (CI)
	$(BIN)/python -m pytest -q -m serve tests/test_serve.py

test-wheel: install     ## dlx as users install it: sdist and wheel built, installed in a fresh venv, every verb and a project of your own run from empty folders (CI)
	$(BIN)/python -m pytest -q -n 2 -m wheel tests/wheel

# Debian's chromium + chromedriver are installed (apt-get, as root or via sudo) when missing;
# if that fails the test skips, except under CI, where it fails.
test-browser: install   ## `dlx ui` in headless Chromium (CI): lists the run, shows its metrics
	@test -x /usr/bin/chromium -a -x /usr/bin/chromedriver || { \
	  sudo=$$(test "$$(id -u)" = 0 || echo sudo); \
	  $$sudo apt-get update -qq && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	} || echo "make: could not install chromium and chromium-driver; the browser test will skip"
	$(BIN)/python -m pytest -q -m browser tests/browser

# PostgreSQL 15's binaries (/usr/lib/postgresql/15/bin) are needed; the tests start their own
# cluster and mlflow server on 127.0.0.1, and Ray's two nodes on two hosts of their own (network
# namespaces: root and `ip`), and stop them at the end
test-cluster: install   ## real engines on 127.0.0.1 and two network namespaces: PostgreSQL + mlflow server, outages, a two-node Ray cluster, Optuna workers, submitit, torchrun nodes (CI)
	$(BIN)/python -m pytest -q -m cluster tests/cluster

lint: install           ## ruff with the rule set in pyproject.toml (CI)
	$(BIN)/ruff check dlx tests benchmarks hydra_plugins

ui: install             ## MLflow UI over ./mlflow.db on http://127.0.0.1:5000
	$(BIN)/dlx ui

bench: install          ## whole processes vs a plain script, fit loop, sweeps, tracking -> benchmarks/RESULTS.md
	$(BIN)/python benchmarks/process_race.py
	$(BIN)/python benchmarks/fit_loop.py
	$(BIN)/python benchmarks/sweep.py
	$(BIN)/python benchmarks/sweep.py --overhead
	$(BIN)/python benchmarks/sweep.py --engines
	$(BIN)/python benchmarks/tracking_overhead.py
	$(BIN)/python benchmarks/gridsearch.py  # its GridSearchCV side needs skorch: pip install -e '.[bench]'

clean:
	rm -rf $(VENV) outputs/*/ multirun mlflow.db mlflow.db.lock mlruns
