# Set-up is part of every target: a fresh clone needs only `make demo` or `make test`.
# The interpreter: PYTHON=... if given, else the first of python3.11, python3.12, python3.13 that runs.
# (A name on PATH that does not run, such as a pyenv shim for a version not selected, is skipped.)
ifndef PYTHON
PYTHON := $(firstword $(foreach p,python3.11 python3.12 python3.13,$(shell $(p) -c 'import sys' >/dev/null 2>&1 && echo $(p))))
endif
LOCK := requirements/lock.txt
# `make lock` resolves on all three; name other interpreters with LOCK_PYTHONS="..." when these are not on PATH.
LOCK_PYTHONS ?= python3.11 python3.12 python3.13
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint demo lock clean-venv

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "no Python 3.11-3.13 found: install python3.11, python3.12 or python3.13 (with venv, e.g. Debian's python3-venv), or run make PYTHON=/path/to/python3"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Reinstall only when the dependency list or the lock changes. The lock holds the exact versions `make test` tested.
$(STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/pip install --quiet -c $(LOCK) -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Test files run in TEST_WORKERS processes, each torch on one thread (tests/conftest.py); --dist loadfile keeps each
# file in one process, because a file's tests share module fixtures (a trained workspace, a DVC repository), and
# --no-loadscope-reorder keeps conftest's order (the longest files first). One process: `.venv/bin/python -m pytest`.
TEST_WORKERS ?= 3

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

lint: $(STAMP)
	$(BIN)/ruff check pipeline stages tests bench requirements

demo: $(STAMP)
	$(BIN)/python -m stages.demo

# Re-resolve the exact versions (pip's resolver, one fresh venv per Python); then `make test` before committing.
lock:
	python3 requirements/make_lock.py $(LOCK_PYTHONS)

clean-venv:
	rm -rf $(VENV)
