# judgecal — developer tasks. `make demo` and `make test` are the two commands a newcomer needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
JC     := $(BIN)/judgecal
STAMP  := $(VENV)/.installed
DEMO_OUT ?= demo-output
RELIABILITY_ARGS ?=

.PHONY: install demo test lint bench reliability clean pg bench-correction bench-sequential

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,postgres]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install judgecal with its dev tools

demo: $(STAMP)  ## offline demo: a month of a production judge on recorded real verdicts
	$(JC) demo --out $(DEMO_OUT)

test: $(STAMP)  ## the whole test suite (PostgreSQL tests need JUDGECAL_TEST_PG_URL, see .ci/run)
	$(BIN)/pytest -q

lint: $(STAMP)  ## ruff + mypy + the import layers (import-linter)
	$(BIN)/ruff check judgecal tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)  ## performance benchmarks, printed as ratios against the naive way and the targets
	$(BIN)/python benchmarks/run_all.py

bench-correction: $(STAMP)  ## coverage of the remedy's intervals (judgecal.stats.correction), one table
	$(BIN)/python benchmarks/bench_correction.py

bench-sequential: $(STAMP)  ## sequential drift test + nightly rule: false alarms, power, delay (one table)
	$(BIN)/python benchmarks/bench_sequential.py
	$(BIN)/python benchmarks/bench_sequential.py --full-only --replicates 3
	$(BIN)/python benchmarks/bench_sequential.py --full-only --replicates 5
	$(BIN)/python benchmarks/bench_reference_correlation.py

reliability: $(STAMP)  ## crash, fault, overlap, hostile-input and secrets checks, as one table
	$(BIN)/python benchmarks/reliability.py $(RELIABILITY_ARGS)

pg:  ## start a throwaway PostgreSQL and print its URL (for JUDGECAL_TEST_PG_URL)
	bash .ci/start-postgres.sh

clean:
	rm -rf demo-output .judgecal .pytest_cache .mypy_cache .ruff_cache
