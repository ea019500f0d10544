# django-ag2-logging: `make demo` (try it) and `make test` (the suite). Both set everything up.
SHELL := /bin/bash
PYTHON ?= python3
# uv installs every virtualenv's packages (a tenth of pip's time, from the same PyPI); it lives in
# a virtualenv of its own, made with pip.
TOOLS ?= .venv-tools
UV := $(TOOLS)/bin/uv
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
# What each run covers. The whole suite runs once, on SQLite with Python 3.11 + Django 5.2 (the
# default pair and the embedded default), but for the several-hosts tests (SQLITE_SKIP). The other
# runs take the modules whose outcome depends on what they change:
# - PostgreSQL (the production database): everything that writes or reads rows under concurrency,
#   several processes or hosts, a real worker or a fault, and what has vendor-specific SQL;
# - MariaDB and Django 6.1: the integration, pipeline and report tests;
# - ag2 1.x (.venv-ag2): tests/ag2 and the shared modules that run agents, the demo, the fake
#   server's SDK clients or the checks of whichever generation is installed.
COMBO_TESTS ?= tests/test_migrations.py tests/test_checks.py tests/test_classic.py tests/test_quickstart.py \
	tests/test_sessions.py tests/test_entry_points.py tests/test_pipeline.py tests/test_ingest.py \
	tests/test_ingest_values.py tests/test_rollups.py tests/test_model_rollups.py tests/test_reports.py \
	tests/test_admin_reports.py tests/test_reprice.py tests/test_legacy_import.py
COMBO_TESTS_SHORT ?= tests/test_migrations.py tests/test_classic.py tests/test_quickstart.py \
	tests/test_sessions.py tests/test_pipeline.py tests/test_reports.py
# The Quick-start test builds a fresh project, which runs on SQLite whatever DATABASE_URL says:
# the database runs leave it to the SQLite and Django 6.1 runs.
COMBO_DB_TESTS ?= $(filter-out tests/test_quickstart.py,$(COMBO_TESTS))
PG_TESTS ?= $(COMBO_DB_TESTS) tests/test_multihost.py tests/test_faults.py tests/test_stress.py \
	tests/test_rollup_interleaving.py tests/test_budgets.py tests/test_budgets_worker.py tests/test_people.py \
	tests/test_live_dashboard.py tests/test_reprice_worker.py tests/test_search.py tests/test_session_search.py \
	tests/test_ingest_batch.py tests/test_unwritable_journal.py tests/test_admin_scale.py tests/test_retention.py \
	tests/test_display_escaping.py tests/test_messages_kept.py tests/test_disk_full.py tests/test_trends.py \
	tests/test_transcript.py tests/test_entry_kinds.py tests/test_secrets_kinds.py
AG2_TESTS ?= tests/ag2 tests/test_attach_on_import.py tests/test_checks.py tests/test_demo_history.py tests/test_entry_kinds.py \
	tests/test_example_project.py tests/test_fake_llm.py tests/test_generations.py tests/test_search.py \
	tests/test_secrets_kinds.py tests/test_usage_shapes.py
DEMO_SERVE ?= 1
DEMO_PORT ?= 8000
DEMO_LLM_PORT ?= 8800
PYTEST_ARGS ?=
# pytest's temporary directories, one root per run: runs side by side must not share pytest's
# default root, where each new session deletes all but the three newest sessions' directories
# (another run's tmp_path, with its journals and tmpfs mounts, went from under it).
BASETEMP = --basetemp=$(shell mktemp -d "$${TMPDIR:-/tmp}/ag2-logging-pytest-XXXXXX")

.PHONY: help venv venvs demo test lint typecheck test-sqlite test-postgres test-postgres-all test-rabbitmq services bench bench-smoke clean \
	venv-ag2 typecheck-ag2 test-ag2 test-lowest test-mariadb test-django61 test-django61-py312 \
	venv-django61 mariadb-driver test-suites

help:
	@echo "make demo   - virtualenv, SQLite, fake LLM server, real AG2 workflows, admin on http://127.0.0.1:$(DEMO_PORT)/admin/ (demo/demo)"
	@echo "make demo AG2=1 - the same demo with the ag2 1.x generation (its own virtualenv, $(VENV_AG2))"
	@echo "make test   - lint, type-check, the whole suite on SQLite, then the database, integration and"
	@echo "              generation tests on PostgreSQL, MariaDB, Django 6.1 (Python 3.13 and 3.12) and"
	@echo "              ag2 1.x, RabbitMQ, the lowest supported versions and a short benchmark run"
	@echo "              (starts services when down)"

$(UV):
	@command -v $(PYTHON) >/dev/null || { echo "make: $(PYTHON) not found (Python 3.11+ is required)" >&2; exit 1; }
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet "uv>=0.5"

# $(1) a virtualenv's python, $(2) the project's extras, $(3) more requirements: the dependencies
# first (several virtualenvs may install theirs at once: make venvs), then the project itself,
# one virtualenv at a time (an editable install writes its metadata into the checkout).
define install_project
	$(PYTHON) scripts/requirements.py $(2) > $(dir $(1))../requirements.txt
	$(UV) pip install --quiet --python $(1) -r $(dir $(1))../requirements.txt $(3)
	flock $(CURDIR)/.venv-install.lock $(UV) pip install --quiet --python $(1) --no-deps -e .
endef

$(STAMP): pyproject.toml $(UV)
	$(PYTHON) -m venv $(VENV)
	$(call install_project,$(PY),classic test dev live)
	@touch $(STAMP)

venv: $(STAMP)

$(STAMP_AG2): pyproject.toml $(UV)
	$(PYTHON) -m venv $(VENV_AG2)
	$(call install_project,$(PY_AG2),ag2 test dev live)
	@touch $(STAMP_AG2)

venv-ag2: $(STAMP_AG2)

# Django 6.1 on Python 3.13 and 3.12: classic AG2, the test tools, the newest Django 6.1.
define new_django_venv
	@test -n "$(1)" -a -x "$(1)" || { echo "make: $(2) not found (set $(3)=/path/to/python$(2))" >&2; exit 1; }
	$(1) -m venv $(4)
	$(call install_project,$(4)/bin/python,classic test,"$(DJANGO_NEW)")
	@touch $(4)/.installed
endef

$(VENV_313)/.installed: pyproject.toml $(UV)
	$(call new_django_venv,$(PYTHON313),3.13,PYTHON313,$(VENV_313))

$(VENV_312)/.installed: pyproject.toml $(UV)
	$(call new_django_venv,$(PYTHON312),3.12,PYTHON312,$(VENV_312))

venv-django61: $(VENV_313)/.installed $(VENV_312)/.installed

# mysqlclient for the MariaDB run: it builds against libmariadb-dev (installed when missing).
$(VENV)/.mysql: $(STAMP)
	@command -v mariadb_config >/dev/null 2>&1 || command -v mysql_config >/dev/null 2>&1 || { \
	  echo "make: installing libmariadb-dev (Debian) to build mysqlclient"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq libmariadb-dev pkg-config >/dev/null; }
	$(UV) pip install --quiet --python $(PY) "mysqlclient>=2.2.1"
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
# Tests: lint and types, the whole suite on SQLite, then the other runs (see COMBO_TESTS above).
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

# Each run has a broker queue database of its own (AG2_TEST_BROKER_URL), so that a run beside
# another (the lanes of make test, a run started by hand) does not take its tasks; the SQLite and
# PostgreSQL runs, which both run the budget worker test, each have a Redis database for its
# ledger (AG2_TEST_BUDGET_REDIS_URL; the test empties it). Redis databases: 3 and 6 the
# benchmarks', 4 and 5 the ledgers, 7 test-lowest's, 10-15 the runs' brokers.
# Left out of the SQLite run: several hosts share a database server, never a SQLite file (the
# PostgreSQL run has them).
SQLITE_SKIP ?= tests/test_multihost.py
test-sqlite: $(STAMP) services chromium
	env -u DATABASE_URL AG2_TEST_BROKER_URL=redis://127.0.0.1:6379/11 AG2_TEST_BUDGET_REDIS_URL=redis://127.0.0.1:6379/4 \
	  $(PY) -m pytest -q -p no:cacheprovider $(BASETEMP) \
	  $(addprefix --ignore=,$(SQLITE_SKIP)) $(PYTEST_ARGS)

test-postgres: $(STAMP) services chromium
	DATABASE_URL=$(PG_URL) AG2_TEST_BROKER_URL=redis://127.0.0.1:6379/15 \
	  $(PY) -m pytest -q -p no:cacheprovider $(BASETEMP) $(PYTEST_ARGS) $(PG_TESTS)

# The whole suite on PostgreSQL (not part of make test: the modules left out of PG_TESTS do not
# depend on the database).
test-postgres-all: $(STAMP) services chromium
	DATABASE_URL=$(PG_URL) AG2_TEST_BROKER_URL=redis://127.0.0.1:6379/15 \
	  $(PY) -m pytest -q -p no:cacheprovider $(BASETEMP) $(PYTEST_ARGS)

# MariaDB, the third database: the integration, pipeline and report tests, the rollups under
# concurrent processes and the faults (a broker queue of its own: it may run beside another run).
test-mariadb: $(VENV)/.mysql services
	DATABASE_URL=$(MARIADB_URL) AG2_TEST_BROKER_URL=redis://127.0.0.1:6379/14 \
	  $(PY) -m pytest -q -p no:cacheprovider $(BASETEMP) $(PYTEST_ARGS) $(COMBO_DB_TESTS) \
	  tests/test_rollup_interleaving.py tests/test_faults.py

# Django 6.1: the integration, pipeline and report tests on Python 3.13, a shorter set on 3.12 (SQLite).
test-django61: $(VENV_313)/.installed services
	env -u DATABASE_URL AG2_TEST_BROKER_URL=redis://127.0.0.1:6379/13 \
	  $(VENV_313)/bin/python -m pytest -q -p no:cacheprovider $(BASETEMP) $(PYTEST_ARGS) $(COMBO_TESTS)

test-django61-py312: $(VENV_312)/.installed services
	env -u DATABASE_URL AG2_TEST_BROKER_URL=redis://127.0.0.1:6379/12 \
	  $(VENV_312)/bin/python -m pytest -q -p no:cacheprovider $(BASETEMP) $(PYTEST_ARGS) $(COMBO_TESTS_SHORT)

# The suites in two lanes side by side, each lane one suite after another. A run alone keeps
# about one of 2 cores busy (the SQLite run: 600 s of CPU, its children's included, in 640 s), so
# side by side each takes 1.2-1.75 times as long as alone (SQLite 640 -> 990-1140 s, PostgreSQL
# 580 -> 690-870 s on a 2-core AMD VM), together about 25 minutes where in a row they took 45. Runs that
# share a database (the PostgreSQL and RabbitMQ runs, both on PG_URL's test database) are in one
# lane; each run has its own broker queue database and pytest root. Each suite's output is printed
# as one block when it ends (--output-sync), and a lane stops at its first failing suite.
LANE_1 ?= typecheck test-sqlite test-mariadb test-django61-py312 bench-smoke-1
LANE_2 ?= test-postgres test-rabbitmq test-ag2 test-django61 test-lowest bench-smoke-2
test-suites: $(STAMP) $(STAMP_AG2) $(VENV)/.mysql $(VENV_313)/.installed $(VENV_312)/.installed services chromium
	$(MAKE) --no-print-directory -j2 --output-sync=target test-lane-1 test-lane-2

.PHONY: test-lane-1 test-lane-2
test-lane-1 test-lane-2:
	@for suite in $(LANE_$(subst test-lane-,,$@)); do \
	  start=$$(date +%s); $(MAKE) --no-print-directory $$suite || exit 1; \
	  echo "make: $$suite took $$(( $$(date +%s) - start )) s ($@)"; \
	done

# The pipeline tests that go through the broker once more with RabbitMQ as the broker: the stress
# test and the faults a broker sees (unreachable, a worker killed with a task unacknowledged, a
# task retried while journal storage is down); the database and disk faults do not involve it.
RABBITMQ_FAULTS ?= broker_unreachable or worker_killed or storage_down
test-rabbitmq: $(STAMP) services
	DATABASE_URL=$(PG_URL) AG2_TEST_BROKER_URL=amqp://guest:guest@127.0.0.1:5672// \
	  $(PY) -m pytest -q -p no:cacheprovider $(BASETEMP) $(PYTEST_ARGS) tests/test_stress.py \
	  tests/test_faults.py -k "$(RABBITMQ_FAULTS) or 64_concurrent"

# ag2 1.x in its own virtualenv: its type check, then AG2_TESTS on SQLite (tests that need
# classic autogen are not collected there; see tests/conftest.py).
typecheck-ag2: $(STAMP_AG2)
	$(VENV_AG2)/bin/mypy --follow-imports=silent ag2_logging/integrations/ag2.py

test-ag2: $(STAMP_AG2) typecheck-ag2
	env -u DATABASE_URL AG2_TEST_BROKER_URL=redis://127.0.0.1:6379/10 \
	  $(PY_AG2) -m pytest -q -p no:cacheprovider $(BASETEMP) -m "not classic" $(PYTEST_ARGS) $(AG2_TESTS)

# Each generation's integration tests on the lowest version its extra allows (a throwaway
# virtualenv, .venv-lowest-<generation>, only when that is not what the main virtualenvs run).
test-lowest: $(STAMP) $(STAMP_AG2)
	AG2_TEST_BROKER_URL=redis://127.0.0.1:6379/7 $(PY) scripts/test_lowest.py --python $(PYTHON) --uv $(UV)

# Every virtualenv at once: their installs wait mostly on the network and the disk.
venvs: $(UV)
	$(MAKE) --no-print-directory -j4 $(STAMP) $(STAMP_AG2) $(VENV_313)/.installed $(VENV_312)/.installed
	$(MAKE) --no-print-directory $(VENV)/.mysql

test: venvs lint test-suites
	@echo "make test: all green"

bench: $(STAMP) services
	$(PY) -m bench

# A short run of every benchmark: catches a broken benchmark, never fails on timings. make test
# runs it in two halves, one per lane: the modules named here, then all the others (--except).
BENCH_SMOKE_1 ?= pipeline hot_path ag2 export logging_off redaction pricing sanitize
bench-smoke: $(STAMP) services
	$(PY) -m bench --quick

.PHONY: bench-smoke-1 bench-smoke-2
bench-smoke-1: $(STAMP) services
	$(PY) -m bench --quick --only $(BENCH_SMOKE_1)

bench-smoke-2: $(STAMP) services
	$(PY) -m bench --quick --except $(BENCH_SMOKE_1)

clean:
	rm -rf $(TOOLS) $(VENV) $(VENV_AG2) $(VENV_313) $(VENV_312) .venv-lowest-* .pytest_cache .mypy_cache .ruff_cache example_project/db.sqlite3 example_project/logs
