"""Settings of the demo project. Everything that differs between machines comes from the environment.

AG2 logging itself is switched on by the environment, not here: ``AG2_RUNTIME_LOGGING=true``
(``AG2_RUNTIME_LOG_FILE`` / ``LOGS_BASE_DIR`` move the log files). Without it the demo's agents run
but nothing is recorded. By default the runtime log and the session journals go to
``example_project/logs/logs/`` (``LOG_FILE`` is resolved against ``BASE_DIR``).
"""

from __future__ import annotations

from pathlib import Path

import environ

#: The ``example_project`` directory: the SQLite file and the default logs live under it.
BASE_DIR = Path(__file__).resolve().parent

env = environ.Env()

# Demo defaults: DEBUG on and a throwaway key, for ``manage.py runserver`` on a laptop.
DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env.str("SECRET_KEY", default="django-insecure-ag2-logging-demo-only")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "ag2_logging",
    "example_project.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"
ASGI_APPLICATION = "example_project.asgi.application"

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

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # ag2_logging writes from its own database thread: let SQLite wait for locks instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 30, "init_command": "PRAGMA journal_mode=WAL;", "transaction_mode": "IMMEDIATE"}
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
USE_I18N = True
STATIC_URL = "static/"

# -- Celery: the app's ingest task runs in-process unless a broker and a worker are configured. --
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=True)
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="memory://localhost/")
CELERY_RESULT_BACKEND = None

# -- ag2_logging: ENABLED/LOG_FILE come from the environment (AG2_RUNTIME_LOGGING, ...). --
AG2_LOGGING = {
    # The fake LLM server listens on loopback and serves OpenAI model names: price them as OpenAI's.
    "PROVIDER_BASE_URLS": {"http://127.0.0.1": "openai", "http://localhost": "openai"},
}

# -- The demo's agents. Point DEMO_LLM_BASE_URL at `python -m ag2_logging.testing.fake_llm`. --
DEMO_LLM_BASE_URL = env.str("DEMO_LLM_BASE_URL", default="http://127.0.0.1:8800/v1")
DEMO_LLM_MODEL = env.str("DEMO_LLM_MODEL", default="gpt-4o-mini")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"ag2_session": {"()": "ag2_logging.log.SessionContextFilter"}},
    "formatters": {
        "session": {
            "format": (
                "%(asctime)s %(levelname)s %(name)s "
                "[session=%(session_id)s enterprise=%(enterprise_id)s] %(message)s"
            )
        }
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["ag2_session"],
            "formatter": "session",
        }
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "ag2_logging": {"level": env.str("AG2_LOGGING_LOG_LEVEL", default="INFO")},
        "example_project": {"level": "INFO"},
        # Django's own console handler would print its records a second time (they propagate to root).
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # AG2 gives this logger its own stdout handler unless it already has one: route it through
        # ours instead, so its warnings carry the session context too and are not printed twice.
        "autogen.oai.client": {"handlers": ["console"], "level": "WARNING", "propagate": False},
    },
}
