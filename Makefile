# One place that sets up the environment: a virtualenv with torch pinned to the
# CPU build, the package (and its C++ extension) installed in editable mode.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-slow test-all bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml setup.py $(wildcard csrc/*.cpp)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: setup
	$(BIN)/edgecount count edgecount/assets/sample.mp4 --plot sample-count.png

test: setup
	$(BIN)/python -m pytest -q
	$(BIN)/python -m pytest benchmarks -q -m smoke --benchmark-disable

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

test-all: test test-slow

bench: setup
	$(BIN)/python -m pytest benchmarks --benchmark-only

clean:
	rm -rf $(VENV) build *.egg-info edgecount/_core*.so
