# The two ways in: `make demo` (the main job) and `make test` (fresh venv, lint, types, tests).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
CONSTRAINTS := constraints-3.11.txt
EXTRAS := tensorflow,gcs,celery,dev

.PHONY: test demo venv fresh-venv lint typecheck docs pytest bench constraints

# Install with the pinned constraints; the stamp lets `make demo` reuse an up-to-date venv.
$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip==26.3"
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) -e ".[$(EXTRAS)]"
	touch $@

venv: $(VENV)/.installed

fresh-venv:
	rm -rf $(VENV)
	$(MAKE) venv

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

# The documentation site (docs/_build/html): every Sphinx warning is an error. Autodoc
# imports the operators, hence Airflow, which wants an AIRFLOW_HOME of its own.
docs: venv
	AIRFLOW_HOME=$(CURDIR)/docs/_build/airflow-home $(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html

pytest: venv
	$(BIN)/python -m pytest -p no:cacheprovider $(PYTEST_ARGS)

# README command 2: everything from scratch, then lint, types, the docs and the whole suite.
test: fresh-venv
	$(MAKE) lint typecheck docs pytest

# README command 1: the demo pipeline on local storage with an embedded SQLite Airflow DB.
demo: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

bench: venv
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

# Re-resolve every extra in a throwaway venv and freeze it into the constraints file.
constraints:
	rm -rf /tmp/atfe-resolve && $(PYTHON) -m venv /tmp/atfe-resolve
	/tmp/atfe-resolve/bin/pip install --quiet ".[$(EXTRAS)]"
	{ head -2 $(CONSTRAINTS); /tmp/atfe-resolve/bin/pip freeze --exclude airflow-tf-export; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)
