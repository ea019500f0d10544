# django-ag2-logging: `make demo` (try it) and `make test` (the suite). Both set everything up.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PG_URL ?= postgres://postgres@127.0.0.1:5432/test
DEMO_SERVE ?= 1
DEMO_PORT ?= 8000
DEMO_LLM_PORT ?= 8800
PYTEST_ARGS ?=

.PHONY: help venv demo test lint typecheck test-sqlite test-postgres test-rabbitmq services bench clean

help:
	@echo "make demo   - virtualenv, SQLite, fake LLM server, real AG2 workflows, admin on http://127.0.0.1:$(DEMO_PORT)/admin/ (demo/demo)"
	@echo "make test   - lint, type-check, the suite on SQLite and on PostgreSQL (starts services when down)"

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "make: $(PYTHON) not found (Python 3.11+ is required)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[classic,test,dev]"
	@touch $(STAMP)

venv: $(STAMP)

# ---------------------------------------------------------------------------------------------------
# The demo: SQLite, Celery eager, a fake OpenAI-compatible server on loopback, real AG2 agents.
demo: $(STAMP)
	@export AG2_RUNTIME_LOGGING=true DJANGO_SETTINGS_MODULE=example_project.settings \
	        DEMO_LLM_BASE_URL=http://127.0.0.1:$(DEMO_LLM_PORT)/v1; \
	$(PY) manage.py migrate --noinput && \
	$(PY) manage.py seed_demo --quiet && \
	if [ "$(DEMO_SERVE)" = "0" ]; then \
	  echo "Seeded. Serve it with: make demo"; \
	else \
	  $(PY) -m ag2_logging.testing.fake_llm --port $(DEMO_LLM_PORT) >/dev/null 2>&1 & llm=$$!; \
	  trap 'kill $$llm 2>/dev/null' EXIT INT TERM; \
	  echo ""; \
	  echo "  Admin:        http://127.0.0.1:$(DEMO_PORT)/admin/   (user demo, password demo)"; \
	  echo "  Sessions:     http://127.0.0.1:$(DEMO_PORT)/admin/ag2_logging/session/"; \
	  echo "  Run one more: http://127.0.0.1:$(DEMO_PORT)/demo/run/?enterprise=acme&workflow=support_triage"; \
	  echo "  Fake LLM:     http://127.0.0.1:$(DEMO_LLM_PORT)/v1   Ctrl-C stops both."; \
	  echo ""; \
	  $(PY) manage.py runserver 127.0.0.1:$(DEMO_PORT) --noreload; \
	fi

# ---------------------------------------------------------------------------------------------------
# Tests: lint and types, then the whole suite on SQLite and again on PostgreSQL.
services:
	@scripts/services.sh postgres redis rabbitmq

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy ag2_logging

test-sqlite: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-postgres: $(STAMP) services
	DATABASE_URL=$(PG_URL) $(PY) -m pytest -q $(PYTEST_ARGS)

# The pipeline (stress and fault) tests once more with RabbitMQ as the broker.
test-rabbitmq: $(STAMP) services
	DATABASE_URL=$(PG_URL) AG2_TEST_BROKER_URL=amqp://guest:guest@127.0.0.1:5672// \
	  $(PY) -m pytest -q $(PYTEST_ARGS) tests/test_stress.py tests/test_faults.py

test: lint typecheck test-sqlite test-postgres test-rabbitmq
	@echo "make test: all green"

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache example_project/db.sqlite3 example_project/logs
