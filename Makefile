# xmodal — the two commands that matter:
#   make demo   set up .venv and run the whole lifecycle on the embedded default (no network)
#   make test   set up .venv and run the test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.xmodal-installed
PYTEST_ARGS ?=

.PHONY: install demo test test-all lint bench clean-outputs lock help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements/lock.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check "pip>=25"
	# torch first: the CPU wheel is on local disk; anything looser pulls a CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c requirements/lock.txt -e ".[all,test,dev]"
	touch $(STAMP)

install: $(STAMP)  ## create .venv with the locked dependencies

demo: install  ## dvc repro (ingest → preprocess → train → evaluate), register in MLflow, print the summary
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro
	$(BIN)/xmodal register --all
	$(BIN)/xmodal report
	@echo "MLflow UI (runs, models, champion/challenger aliases):"
	@echo "  $(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --port 5000"

test: install  ## run the default test suite (under ~15 min on 2 cores)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-all: install  ## run every test, slow ones included
	$(BIN)/python -m pytest --slow $(PYTEST_ARGS)

lint: install  ## ruff
	$(BIN)/ruff check src tests benchmarks

bench: install  ## run the benchmarks (writes benchmarks/results/*.json)
	$(BIN)/python benchmarks/gwot_scaling.py

lock:  ## regenerate requirements/lock.txt from the current .venv
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e ' > requirements/lock.txt

clean-outputs:  ## remove pipeline outputs (data/, models/, reports/, mlflow.db)
	rm -rf data/ingested data/processed models reports mlflow.db mlartifacts
