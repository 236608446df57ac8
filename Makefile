# reviewdesk: `make run` serves the desk on http://127.0.0.1:8000/ (PORT=... to change), with a
# private Redis if REDIS_URL is unset; `make test ARGS="-k foo"` runs pytest with its own Redis.
# Every target first builds .venv from requirements.txt (PYTHON=python3.12 to pick the interpreter).

PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
PY := $(VENV)/bin/python
RUFF := $(VENV)/bin/ruff
ARGS ?=

.PHONY: run test lint fmt worker bench chaos venv

# Web (Daphne) + Celery worker(s) + beat, after migrate, collectstatic and the demo data;
# a process that dies is restarted with back-off.
run: $(STAMP)
	$(PY) -m reviewdesk.devrun run

# pytest against a throwaway Redis; DATABASE_URL=postgres://... for PostgreSQL.
test: $(STAMP)
	$(PY) -m reviewdesk.devrun test $(ARGS)

lint: $(STAMP)
	$(RUFF) check . && $(RUFF) format --check .

fmt: $(STAMP)
	$(RUFF) format . && $(RUFF) check --fix .

# Fault injection on a private desk (own database, Redis, workers): `ARGS=--short` for CI's size.
chaos: $(STAMP)
	$(PY) manage.py chaos $(ARGS)

# One more Celery worker in the foreground, beside `make run`.
worker: $(STAMP)
	$(PY) -m reviewdesk.devrun worker

# Speed figures beside bare LangGraph and `langgraph dev`, on scratch databases and a private Redis
# (never yours): a table, and JSON with ARGS="--json var/bench/bench.json"; ARGS="--quick" < 3 min.
bench: $(STAMP)
	$(PY) manage.py bench $(ARGS)

venv: $(STAMP)

# The stamp is older than requirements.txt after an edit, so the next target re-installs.
$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)
