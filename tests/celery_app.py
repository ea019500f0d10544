"""The Celery app the tests (and a test worker) use; the app itself only uses shared_task."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

app = Celery("ag2_logging_tests")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["ag2_logging", "tests"])
