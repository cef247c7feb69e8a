# Every target bootstraps uv (into .tools/ when it is not installed), never downloads a
# Python interpreter, and syncs the workspace before running anything.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/.venv

PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3.10 python3; do \
	if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then \
	$$p -c 'import sys; print(sys.executable)'; break; fi; done)
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
RUN := $(UV) run --no-sync --python $(PYTHON)
PYTEST_ARGS ?=

.PHONY: help demo test up down status lint fmt typecheck bench bench-quick bench-scale sync clean

help:
	@echo "make demo        run the demo on the embedded local broker"
	@echo "make test        run the whole test suite (real nats-server)"
	@echo "make up|down|status   manage the local broker"
	@echo "make lint        ruff + mypy"
	@echo "make bench       benchmarks against raw nats-py (bench-quick: ~3 min)"
	@echo "make bench-scale what an online agent costs at 100, 1,000 and 5,000 mailboxes (< 10 min)"

$(CURDIR)/.tools/bin/uv:
	@test -n "$(PYTHON)" || { echo "Python 3.10+ is required" >&2; exit 1; }
	$(PYTHON) -m venv $(CURDIR)/.tools
	$(CURDIR)/.tools/bin/python -m pip install --quiet --disable-pip-version-check uv

sync: $(UV)
	@test -n "$(PYTHON)" || { echo "Python 3.10+ is required" >&2; exit 1; }
	$(UV) sync --frozen --all-packages --python $(PYTHON) --quiet
	UV_PROJECT_ENVIRONMENT=$(CURDIR)/.venv-mcp2 $(UV) sync --frozen --package mailslot-mcp --extra mcp2 --python $(PYTHON) --quiet

demo: sync
	$(RUN) python examples/demo.py

test: sync
	$(RUN) pytest $(PYTEST_ARGS)

up: sync
	$(RUN) mailslot up --detach

down: sync
	$(RUN) mailslot down

status: sync
	$(RUN) mailslot status

lint: sync
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy

fmt: sync
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

typecheck: sync
	$(RUN) mypy

bench: sync
	$(RUN) python -m bench

bench-quick: sync
	$(RUN) python -m bench --quick

bench-scale: sync
	$(RUN) python -m bench.scale

clean:
	rm -rf .venv .tools .pytest_cache .mypy_cache .ruff_cache
