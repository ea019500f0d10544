"""Demo project for django-ag2-logging: real AG2 agents against a fake LLM, recorded in the admin."""

from __future__ import annotations

# Load the Celery app whenever Django starts, so ``shared_task`` (the app's ingest task) binds to it.
from example_project.celery import app as celery_app

__all__ = ["celery_app"]
