# One command each: `make demo` (fresh clone → converted demo model), `make test` (the suite CI runs).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONSTRAINTS := $(wildcard constraints.txt)

.PHONY: venv demo test test-fast fuzz-deep lint bench clean

venv: $(STAMP)

# torch is pinned first: an unpinned torch pulls a multi-GB CUDA build. 2.13.0 is the CPU wheel
# this project is tested with; the later install then finds the requirement already satisfied.
$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install --quiet --disable-pip-version-check $(if $(CONSTRAINTS),-c $(CONSTRAINTS)) -e '.[check,dev]'
	touch $(STAMP)

demo: venv
	$(BIN)/python -m reranker_seqcls.demo demo-output

test: venv
	$(BIN)/python -m pytest -q

test-fast: venv
	$(BIN)/python -m pytest -q -m "not docker and not slow"

# The hostile-source fuzz suite with ten times the examples of `make test` (see docs/design.md).
fuzz-deep: venv
	HYPOTHESIS_PROFILE=deep $(BIN)/python -m pytest -q tests/test_fuzz_sources.py

lint: venv
	$(BIN)/ruff check src tests bench plan entrypoint
	$(BIN)/ruff format --check src tests bench plan entrypoint

bench: venv
	$(BIN)/python bench/bench_convert.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache
