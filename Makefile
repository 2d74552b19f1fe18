PYTHON ?= python3
# Extra pytest options for the test targets, e.g. PYTEST_ARGS="-q -p no:cacheprovider".
PYTEST_ARGS ?=

.PHONY: compile debug annotate test test-python lint format bench demo clean

compile:            ## build the native core in place
	$(PYTHON) setup.py build_ext --inplace

debug:              ## native core with line tracing and C assertions
	REVOCA_DEBUG_BUILD=1 $(PYTHON) setup.py build_ext --inplace --force

annotate:           ## Cython's annotated HTML (va/_fastocsp.html)
	REVOCA_ANNOTATE=1 $(PYTHON) setup.py build_ext --inplace --force

test: compile       ## the whole suite: every codec test on both implementations
	$(PYTHON) -m pytest $(PYTEST_ARGS)

# The twins' set is the tests marked `twin` (tests/conftest.py): those through
# a native module's façade, and the Python run of every codec test. CI runs
# this target, so the set is defined once.
test-python:        ## the twins alone: the `twin` tests with every native module off
	REVOCA_NO_EXTENSIONS=1 $(PYTHON) -m pytest -m twin $(PYTEST_ARGS)

lint:
	ruff check . && ruff format --check .

format:
	ruff check --fix . && ruff format .

bench: compile
	$(PYTHON) -m pytest benchmarks -n 0 --benchmark-enable --benchmark-columns=min,median,ops

demo:
	revoca demo

clean:
	rm -rf build *.egg-info va/_fastocsp.c va/_fastlane.c va/_evpsign.c va/*.so va/*.html
