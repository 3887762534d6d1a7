# Two entry points: `make run` (the main job) and `make test` (lint, then the whole suite). Both
# create .venv when missing and install what is needed; the stamp file makes a second call skip the
# installation. `make test-fast` leaves out the tests marked slow (training, torchrun, the browser).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.vsb2net-installed
ARGS   ?=

.PHONY: run test test-fast lint install clean

run: $(STAMP)
	$(PY) -m vsb2net run --tuned auto $(ARGS)

test: lint
	$(PY) -m pytest --durations=15 $(ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" --durations=10 $(ARGS)

# ruff (style and likely bugs) over the whole tree, mypy (annotations) over the package; both
# configured in pyproject.toml
lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m mypy

install: $(STAMP)

# torch is pinned here, not in pyproject.toml: 2.13.0 is the CPU wheel this machine keeps on disk,
# while a bare `torch` may pull a multi-GB CUDA build. animal-mnist is installed without its
# declared dependencies (they pull TensorFlow, which we do not use).
$(STAMP): pyproject.toml setup.py src/vsb2net/_hamming.c Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q --no-deps animal-mnist
	$(PY) -m pip install -q -e '.[data,test,minilm,serve,milvus]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) runs .pytest_cache
