# reviewdesk: `make run` serves the desk on http://127.0.0.1:8000/ (PORT=... to change), with a
# private Redis if REDIS_URL is unset; `make test ARGS="-k foo"` runs pytest with its own Redis.
# Every target first builds .venv from requirements.txt (PYTHON=python3.12 to pick the interpreter).

PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
PY := $(VENV)/bin/python
RUFF := $(VENV)/bin/ruff
ARGS ?=

.PHONY: run test lint fmt worker venv

# Web (Daphne) + Celery worker + beat, after migrate, collectstatic and the demo data.
run: $(STAMP)
	$(PY) -m reviewdesk.devrun run

# pytest against a throwaway Redis; DATABASE_URL=postgres://... for PostgreSQL.
test: $(STAMP)
	$(PY) -m reviewdesk.devrun test $(ARGS)

lint: $(STAMP)
	$(RUFF) check . && $(RUFF) format --check .

fmt: $(STAMP)
	$(RUFF) format . && $(RUFF) check --fix .

# One more Celery worker in the foreground, beside `make run`.
worker: $(STAMP)
	$(PY) -m reviewdesk.devrun worker

venv: $(STAMP)

# The stamp is older than requirements.txt after an edit, so the next target re-installs.
$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)
