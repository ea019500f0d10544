"""Settings for the test suite: SQLite by default, PostgreSQL when DATABASE_URL says so."""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path

import environ

env = environ.Env()
BASE_DIR = Path(__file__).resolve().parent
_RUN_DIR = Path(os.environ.get("AG2_TEST_RUN_DIR") or tempfile.mkdtemp(prefix="ag2-logging-tests-"))
_RUN_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "ag2_logging",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "ag2_logging.middleware.Ag2LoggingMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
STATIC_URL = "/static/"

DATABASES = {
    "default": env.db(
        "DATABASE_URL",
        default=f"sqlite:///{_RUN_DIR / 'db.sqlite3'}",
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend but for the flush after a transactional test (DELETE, not TRUNCATE).
    DATABASES["default"]["ENGINE"] = "tests.backends.postgresql"
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not :memory:, so that the app's database thread and the test share one database.
    DATABASES["default"]["TEST"] = {"NAME": str(_RUN_DIR / "test-db.sqlite3")}
    # IMMEDIATE: concurrent writers (the app's database thread, a worker) wait for the lock instead
    # of failing with "database is locked" when a read transaction upgrades to a write.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL;",
        "transaction_mode": "IMMEDIATE",
    }

CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=True)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="memory://localhost/")
CELERY_RESULT_BACKEND = None

AG2_LOGGING = {
    "ENABLED": True,
    "LOG_FILE": str(_RUN_DIR / "logs" / "ag2_runtime.log"),
    # The fake LLM server listens on loopback; price its calls as OpenAI's.
    "PROVIDER_BASE_URLS": {"http://127.0.0.1": "openai", "http://localhost": "openai"},
    "MIDDLEWARE_PATHS": [r"^/api/"],
    # A real worker in the stress test listens on its own queue.
    "CELERY_QUEUE": env.str("AG2_TEST_CELERY_QUEUE", default="") or None,
    # Recovery in the background at the first session would race the tests' own recovery calls;
    # the tests that are about it turn it on (a child process's environment can, too).
    "RECOVER_ON_START": env.bool("AG2_TEST_RECOVER_ON_START", default=False),
}

# The live dashboard's WebSocket (tests/asgi.py; extra "live"): the in-memory channel layer.
if importlib.util.find_spec("channels") is not None:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
if env.str("AG2_TEST_LIVE_SECONDS", default=""):
    AG2_LOGGING["LIVE_SECONDS"] = env.float("AG2_TEST_LIVE_SECONDS")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "loggers": {"ag2_logging": {"handlers": ["null"], "level": "DEBUG", "propagate": True}},
}

# Multi-host tests (tests/test_multihost.py): each process of a "host" gets these from its
# environment; unset, nothing changes. AG2_TEST_JOURNAL_STORAGE is "fs:<directory>" (a directory
# both hosts see) or "s3:<endpoint url>|<bucket>" (an S3-compatible server on loopback).
_journal_storage = env.str("AG2_TEST_JOURNAL_STORAGE", default="")
if _journal_storage:
    _kind, _, _where = _journal_storage.partition(":")
    if _kind == "fs":
        _backend: dict[str, object] = {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": _where},
        }
    else:
        _endpoint, _, _bucket = _where.partition("|")
        _backend = {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": _bucket,
                "endpoint_url": _endpoint,
                "access_key": "testing",
                "secret_key": "testing",
                "region_name": "us-east-1",
                "addressing_style": "path",
            },
        }
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        "ag2_journals": _backend,
    }
    AG2_LOGGING["JOURNAL_STORAGE"] = "ag2_journals"
if env.str("AG2_TEST_PIPELINE_MAX_RETRIES", default=""):
    AG2_LOGGING["PIPELINE_MAX_RETRIES"] = env.int("AG2_TEST_PIPELINE_MAX_RETRIES")
if env.str("AG2_TEST_RECOVER_ON_START", default=""):
    AG2_LOGGING["RECOVER_ON_START"] = env.bool("AG2_TEST_RECOVER_ON_START")

# The suite creates a user for most admin tests; the default PBKDF2 hasher spends a quarter of
# a second on each (Django's "Speeding up the tests"). Nothing here tests password strength.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
