"""The demo's Celery app (standard Django layout): ``celery -A example_project worker``.

Tasks run eagerly in-process by default (``CELERY_TASK_ALWAYS_EAGER=true``), so the demo needs no
broker; set ``CELERY_TASK_ALWAYS_EAGER=false`` and ``CELERY_BROKER_URL=redis://...`` to use a worker.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")

app = Celery("example_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
