PYTHON ?= python3

.PHONY: compile debug annotate test test-python lint format bench demo clean

compile:            ## build the native core in place
	$(PYTHON) setup.py build_ext --inplace

debug:              ## native core with line tracing and C assertions
	REVOCA_DEBUG_BUILD=1 $(PYTHON) setup.py build_ext --inplace --force

annotate:           ## Cython's annotated HTML (va/_fastocsp.html)
	REVOCA_ANNOTATE=1 $(PYTHON) setup.py build_ext --inplace --force

test: compile
	$(PYTHON) -m pytest

test-python:        ## the whole suite on the pure-Python twin
	REVOCA_NO_EXTENSIONS=1 $(PYTHON) -m pytest

lint:
	ruff check . && ruff format --check .

format:
	ruff check --fix . && ruff format .

bench: compile
	$(PYTHON) -m pytest benchmarks --benchmark-enable --benchmark-columns=min,median,ops

demo:
	revoca demo

clean:
	rm -rf build *.egg-info va/_fastocsp.c va/_evpsign.c va/*.so va/*.html
