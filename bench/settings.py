"""Django settings for the benchmarks: everything under one scratch directory, no network.

``AG2_BENCH_RUN_DIR`` (set by ``python -m bench``) is the scratch directory; the database is SQLite
in it unless ``AG2_BENCH_DATABASE_URL`` names another (the ingest benchmark points it at a
scratch PostgreSQL database on loopback).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import environ

env = environ.Env()
RUN_DIR = Path(os.environ.get("AG2_BENCH_RUN_DIR") or tempfile.mkdtemp(prefix="ag2-bench-"))
RUN_DIR.mkdir(parents=True, exist_ok=True)
BASE_DIR = RUN_DIR

SECRET_KEY = "bench-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "ag2_logging"]
if env.bool("AG2_BENCH_WITHOUT_APP", default=False):  # the start-up benchmark's reference
    INSTALLED_APPS.remove("ag2_logging")

DATABASES = {"default": env.db("AG2_BENCH_DATABASE_URL", default=f"sqlite:///{RUN_DIR / 'bench.sqlite3'}")}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"]["OPTIONS"] = {"timeout": 30, "init_command": "PRAGMA journal_mode=WAL;"}

CELERY_TASK_ALWAYS_EAGER = True
CELERY_BROKER_URL = "memory://"

AG2_LOGGING = {
    "ENABLED": env.str("AG2_BENCH_LOGGING", default="on") == "on",
    "LOG_FILE": str(RUN_DIR / "logs" / "ag2_runtime.log"),
    # The benchmarks measure recording, not the Celery hand-off (ingest is measured on its own).
    "INGEST_ON_SESSION_END": False,
    "PROVIDER_BASE_URLS": {"http://127.0.0.1": "openai"},
    # A background recovery scan at the first session would run beside what is measured.
    "RECOVER_ON_START": False,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {"ag2_logging": {"level": "ERROR"}},
}
