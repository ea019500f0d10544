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
MARIADB_URL ?= mysql://root@127.0.0.1:3306/test
# The newer pairs: Django 6.1 on Python 3.13 and on 3.12 (pyenv's interpreters, else python3.1x).
DJANGO_NEW ?= Django>=6.1,<6.2
PYTHON313 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3) $(shell command -v python3.13 2>/dev/null))
PYTHON312 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3) $(shell command -v python3.12 2>/dev/null))
VENV_313 ?= .venv-django61-py313
VENV_312 ?= .venv-django61-py312
# The integration, pipeline and report tests that the other combinations run (the default pair,
# Python 3.11 + Django 5.2, runs everything on SQLite and PostgreSQL).
COMBO_TESTS ?= tests/test_migrations.py tests/test_checks.py tests/test_classic.py tests/test_quickstart.py \
	tests/test_sessions.py tests/test_entry_points.py tests/test_pipeline.py tests/test_ingest.py \
	tests/test_ingest_values.py tests/test_rollups.py tests/test_model_rollups.py tests/test_reports.py \
	tests/test_admin_reports.py tests/test_reprice.py tests/test_legacy_import.py
COMBO_TESTS_SHORT ?= tests/test_migrations.py tests/test_classic.py tests/test_quickstart.py \
	tests/test_sessions.py tests/test_pipeline.py tests/test_reports.py
DEMO_SERVE ?= 1
DEMO_PORT ?= 8000
DEMO_LLM_PORT ?= 8800
PYTEST_ARGS ?=
SQLITE_BESIDE_ARGS ?=
# pytest's temporary directories, one root per run: runs side by side must not share pytest's
# default root, where each new session deletes all but the three newest sessions' directories
# (another run's tmp_path, with its journals and tmpfs mounts, went from under it).
BASETEMP = --basetemp=$(shell mktemp -d "$${TMPDIR:-/tmp}/ag2-logging-pytest-XXXXXX")

.PHONY: help venv demo test lint typecheck test-sqlite test-postgres test-rabbitmq services bench bench-smoke clean \
	venv-ag2 typecheck-ag2 test-ag2 test-lowest test-mariadb test-django61 test-django61-py312 \
	venv-django61 mariadb-driver test-suites test-sqlite-multihost

help:
	@echo "make demo   - virtualenv, SQLite, fake LLM server, real AG2 workflows, admin on http://127.0.0.1:$(DEMO_PORT)/admin/ (demo/demo)"
	@echo "make demo AG2=1 - the same demo with the ag2 1.x generation (its own virtualenv, $(VENV_AG2))"
	@echo "make test   - lint, type-check, the suite on SQLite and on PostgreSQL (starts services when down)"
	@echo "              (the integration, pipeline and report tests also on MariaDB and on Django 6.1 with"
	@echo "              Python 3.13 and 3.12, beside the PostgreSQL run), then again with ag2 1.x (test-ag2)"
	@echo "              and on the lowest supported versions (test-lowest)"

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "make: $(PYTHON) not found (Python 3.11+ is required)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[classic,test,dev,live]"
	@touch $(STAMP)

venv: $(STAMP)

$(STAMP_AG2): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "make: $(PYTHON) not found (Python 3.11+ is required)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV_AG2)
	$(PY_AG2) -m pip install --quiet --upgrade pip
	$(PY_AG2) -m pip install --quiet -e ".[ag2,test,dev,live]"
	@touch $(STAMP_AG2)

venv-ag2: $(STAMP_AG2)

# Django 6.1 on Python 3.13 and 3.12: classic AG2, the test tools, the newest Django 6.1.
define new_django_venv
	@test -n "$(1)" -a -x "$(1)" || { echo "make: $(2) not found (set $(3)=/path/to/python$(2))" >&2; exit 1; }
	$(1) -m venv $(4)
	$(4)/bin/python -m pip install --quiet --upgrade pip
	$(4)/bin/python -m pip install --quiet -e ".[classic,test]" "$(DJANGO_NEW)"
	@touch $(4)/.installed
endef

$(VENV_313)/.installed: pyproject.toml
	$(call new_django_venv,$(PYTHON313),3.13,PYTHON313,$(VENV_313))

$(VENV_312)/.installed: pyproject.toml
	$(call new_django_venv,$(PYTHON312),3.12,PYTHON312,$(VENV_312))

venv-django61: $(VENV_313)/.installed $(VENV_312)/.installed

# mysqlclient for the MariaDB run: it builds against libmariadb-dev (installed when missing).
$(VENV)/.mysql: $(STAMP)
	@command -v mariadb_config >/dev/null 2>&1 || command -v mysql_config >/dev/null 2>&1 || { \
	  echo "make: installing libmariadb-dev (Debian) to build mysqlclient"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq libmariadb-dev pkg-config >/dev/null; }
	$(PY) -m pip install --quiet "mysqlclient>=2.2.1"
	@touch $@

mariadb-driver: $(VENV)/.mysql

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
	@scripts/services.sh postgres redis rabbitmq mariadb

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

# Each run has a broker queue database of its own (AG2_TEST_BROKER_URL), so that runs can share
# the machine (test-suites runs them side by side).
test-sqlite: $(STAMP) services chromium
	env -u DATABASE_URL AG2_TEST_BROKER_URL=redis://127.0.0.1:6379/11 $(PY) -m pytest -q -p no:cacheprovider $(BASETEMP) \
	  $(SQLITE_BESIDE_ARGS) $(PYTEST_ARGS)

# The multi-host tests on SQLite, on their own: their hosts' processes (own mount namespaces)
# share one SQLite file, which went "disk I/O error" when another full run shared the machine.
test-sqlite-multihost: $(STAMP) services
	env -u DATABASE_URL AG2_TEST_BROKER_URL=redis://127.0.0.1:6379/11 $(PY) -m pytest -q -p no:cacheprovider $(BASETEMP) \
	  $(PYTEST_ARGS) tests/test_multihost.py

test-postgres: $(STAMP) services chromium
	DATABASE_URL=$(PG_URL) $(PY) -m pytest -q -p no:cacheprovider $(BASETEMP) $(PYTEST_ARGS)

# MariaDB, the third database: the integration, pipeline and report tests, the rollups under
# concurrent processes and the faults (a broker queue of its own: it may run beside another run).
test-mariadb: $(VENV)/.mysql services
	DATABASE_URL=$(MARIADB_URL) AG2_TEST_BROKER_URL=redis://127.0.0.1:6379/14 \
	  $(PY) -m pytest -q -p no:cacheprovider $(BASETEMP) $(PYTEST_ARGS) $(COMBO_TESTS) \
	  tests/test_rollup_interleaving.py tests/test_faults.py

# Django 6.1: the integration, pipeline and report tests on Python 3.13, a shorter set on 3.12 (SQLite).
test-django61: $(VENV_313)/.installed services
	env -u DATABASE_URL AG2_TEST_BROKER_URL=redis://127.0.0.1:6379/13 \
	  $(VENV_313)/bin/python -m pytest -q -p no:cacheprovider $(BASETEMP) $(PYTEST_ARGS) $(COMBO_TESTS)

test-django61-py312: $(VENV_312)/.installed services
	env -u DATABASE_URL AG2_TEST_BROKER_URL=redis://127.0.0.1:6379/12 \
	  $(VENV_312)/bin/python -m pytest -q -p no:cacheprovider $(BASETEMP) $(PYTEST_ARGS) $(COMBO_TESTS_SHORT)

# The suites side by side: PostgreSQL in the foreground; SQLite, MariaDB and Django 6.1 beside it,
# each with its own database, run directory and broker queue. Two full suites on SQLite with real
# Celery workers side by side (SQLite's and ag2 1.x's) met "disk I/O error", so the ag2 1.x suite
# and the multi-host tests on SQLite run after them, alone. Most of a run's time is
# spent waiting (subprocesses, workers, the fake LLM server, fsync), so on 2 cores this takes
# little more than the longest run. The Django 6.1 virtualenvs are built by their own runs.
test-suites: $(STAMP) $(STAMP_AG2) $(VENV)/.mysql services chromium
	scripts/run_beside.sh test-postgres test-mariadb test-django61 test-django61-py312
	$(MAKE) --no-print-directory test-sqlite
	$(MAKE) --no-print-directory test-ag2

# The pipeline (stress and fault) tests once more with RabbitMQ as the broker.
test-rabbitmq: $(STAMP) services
	DATABASE_URL=$(PG_URL) AG2_TEST_BROKER_URL=amqp://guest:guest@127.0.0.1:5672// \
	  $(PY) -m pytest -q -p no:cacheprovider $(BASETEMP) $(PYTEST_ARGS) tests/test_stress.py tests/test_faults.py

# ag2 1.x in its own virtualenv: its type check, then tests/ag2 and the shared suite on SQLite
# (tests that need classic autogen are not collected there; see tests/conftest.py).
typecheck-ag2: $(STAMP_AG2)
	$(VENV_AG2)/bin/mypy --follow-imports=silent ag2_logging/integrations/ag2.py

test-ag2: $(STAMP_AG2) typecheck-ag2
	env -u DATABASE_URL AG2_TEST_BROKER_URL=redis://127.0.0.1:6379/10 \
	  $(PY_AG2) -m pytest -q -p no:cacheprovider $(BASETEMP) -m "not classic" $(PYTEST_ARGS)

# Each generation's integration tests on the lowest version its extra allows (a throwaway
# virtualenv, .venv-lowest-<generation>, only when that is not what the main virtualenvs run).
test-lowest: $(STAMP) $(STAMP_AG2)
	$(PY) scripts/test_lowest.py --python $(PYTHON)

test: lint typecheck test-suites test-rabbitmq test-lowest bench-smoke
	@echo "make test: all green"

bench: $(STAMP) services
	$(PY) -m bench

# A short run of every benchmark: catches a broken benchmark, never fails on timings.
bench-smoke: $(STAMP) services
	$(PY) -m bench --quick

clean:
	rm -rf $(VENV) $(VENV_AG2) $(VENV_313) $(VENV_312) .venv-lowest-* .pytest_cache .mypy_cache .ruff_cache example_project/db.sqlite3 example_project/logs
