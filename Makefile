# django-ag2-logging: `make demo` (try it) and `make test` (the suite). Both set everything up.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# ag2 1.x cannot share a virtualenv with classic autogen (openai>=3.27 vs openai<3): its own one.
VENV_AG2 ?= .venv-ag2
PY_AG2 := $(VENV_AG2)/bin/python
STAMP_AG2 := $(VENV_AG2)/.installed
# `make demo AG2=1` runs the demo with ag2 1.x instead of classic autogen.
AG2 ?=
DEMO_STAMP := $(if $(filter 1,$(AG2)),$(STAMP_AG2),$(STAMP))
DEMO_PY := $(if $(filter 1,$(AG2)),$(PY_AG2),$(PY))
PG_URL ?= postgres://postgres@127.0.0.1:5432/test
DEMO_SERVE ?= 1
DEMO_PORT ?= 8000
DEMO_LLM_PORT ?= 8800
PYTEST_ARGS ?=

.PHONY: help venv demo test lint typecheck test-sqlite test-postgres test-rabbitmq services bench bench-smoke clean \
	venv-ag2 typecheck-ag2 test-ag2 test-lowest

help:
	@echo "make demo   - virtualenv, SQLite, fake LLM server, real AG2 workflows, admin on http://127.0.0.1:$(DEMO_PORT)/admin/ (demo/demo)"
	@echo "make demo AG2=1 - the same demo with the ag2 1.x generation (its own virtualenv, $(VENV_AG2))"
	@echo "make test   - lint, type-check, the suite on SQLite and on PostgreSQL (starts services when down)"
	@echo "              then again with ag2 1.x (test-ag2) and on the lowest supported versions (test-lowest)"

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "make: $(PYTHON) not found (Python 3.11+ is required)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[classic,test,dev]"
	@touch $(STAMP)

venv: $(STAMP)

$(STAMP_AG2): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "make: $(PYTHON) not found (Python 3.11+ is required)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV_AG2)
	$(PY_AG2) -m pip install --quiet --upgrade pip
	$(PY_AG2) -m pip install --quiet -e ".[ag2,test,dev]"
	@touch $(STAMP_AG2)

venv-ag2: $(STAMP_AG2)

# ---------------------------------------------------------------------------------------------------
# The demo: SQLite, Celery eager, a fake OpenAI-compatible server on loopback, real AG2 agents.
demo: $(DEMO_STAMP)
	@export AG2_RUNTIME_LOGGING=true DJANGO_SETTINGS_MODULE=example_project.settings \
	        DEMO_LLM_BASE_URL=http://127.0.0.1:$(DEMO_LLM_PORT)/v1; \
	$(DEMO_PY) manage.py migrate --noinput && \
	$(DEMO_PY) manage.py seed_demo --quiet && \
	if [ "$(DEMO_SERVE)" = "0" ]; then \
	  echo "Seeded. Serve it with: make demo$(if $(filter 1,$(AG2)), AG2=1)"; \
	else \
	  $(DEMO_PY) -m ag2_logging.testing.fake_llm --port $(DEMO_LLM_PORT) >/dev/null 2>&1 & llm=$$!; \
	  trap 'kill $$llm 2>/dev/null' EXIT INT TERM; \
	  echo ""; \
	  echo "  Admin:        http://127.0.0.1:$(DEMO_PORT)/admin/   (user demo, password demo)"; \
	  echo "  Sessions:     http://127.0.0.1:$(DEMO_PORT)/admin/ag2_logging/session/"; \
	  echo "  Run one more: http://127.0.0.1:$(DEMO_PORT)/demo/run/?enterprise=acme&workflow=support_triage"; \
	  echo "  Fake LLM:     http://127.0.0.1:$(DEMO_LLM_PORT)/v1   Ctrl-C stops both."; \
	  echo ""; \
	  $(DEMO_PY) manage.py runserver 127.0.0.1:$(DEMO_PORT) --noreload; \
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

# Headless Chromium from Debian for the browser tests (tests/test_browser.py), installed when missing.
.PHONY: chromium
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "make: installing chromium (Debian) for the browser tests"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium fonts-dejavu-core >/dev/null; }
	@command -v chromium >/dev/null 2>&1 || { echo "make: chromium is missing and could not be installed" >&2; exit 1; }

test-sqlite: $(STAMP) services chromium
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-postgres: $(STAMP) services chromium
	DATABASE_URL=$(PG_URL) $(PY) -m pytest -q $(PYTEST_ARGS)

# The pipeline (stress and fault) tests once more with RabbitMQ as the broker.
test-rabbitmq: $(STAMP) services
	DATABASE_URL=$(PG_URL) AG2_TEST_BROKER_URL=amqp://guest:guest@127.0.0.1:5672// \
	  $(PY) -m pytest -q $(PYTEST_ARGS) tests/test_stress.py tests/test_faults.py

# ag2 1.x in its own virtualenv: its type check, then tests/ag2 and the shared suite on SQLite
# (tests that need classic autogen are not collected there; see tests/conftest.py).
typecheck-ag2: $(STAMP_AG2)
	$(VENV_AG2)/bin/mypy --follow-imports=silent ag2_logging/integrations/ag2.py

test-ag2: $(STAMP_AG2) typecheck-ag2
	env -u DATABASE_URL $(PY_AG2) -m pytest -q -m "not classic" $(PYTEST_ARGS)

# Each generation's integration tests on the lowest version its extra allows (a throwaway
# virtualenv, .venv-lowest-<generation>, only when that is not what the main virtualenvs run).
test-lowest: $(STAMP) $(STAMP_AG2)
	$(PY) scripts/test_lowest.py --python $(PYTHON)

test: lint typecheck test-sqlite test-postgres test-rabbitmq test-ag2 test-lowest bench-smoke
	@echo "make test: all green"

bench: $(STAMP) services
	$(PY) -m bench

# A short run of every benchmark: catches a broken benchmark, never fails on timings.
bench-smoke: $(STAMP) services
	$(PY) -m bench --quick

clean:
	rm -rf $(VENV) $(VENV_AG2) .venv-lowest-* .pytest_cache .mypy_cache .ruff_cache example_project/db.sqlite3 example_project/logs
