"""The override's "Reprice the calls it covers" with a real Celery worker (issue 15, item 5).

An editor saves an override in the admin (test client), asks for the reprice; the admin, in the
pipeline's Celery mode, sends the ``ag2_logging.reprice`` task (with the override's provider and
period) to a real prefork worker on Redis (``AG2_TEST_BROKER_URL``), which reprices exactly the
calls the override covers in the shared test database. The calls come from real classic AG2
chats against the fake LLM server.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import autogen  # noqa: F401 - the calls are recorded by classic AG2: collected only where it is installed
import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from ag2_logging.conf import conf
from ag2_logging.models import LLMCall, ModelPrice
from ag2_logging.pricing import cache as price_overrides
from ag2_logging.testing import FakeLLMServer
from tests.support import BROKER_URL, celery_worker, wait_for
from tests.test_reprice import assert_repriced_exactly, day, spread_calls

pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def sending_to_a_worker(tmp_path: Path, settings: Any) -> Iterator[str]:
    """A real worker on its own queue, and this process sending to it: PIPELINE "celery",
    CELERY_QUEUE that queue, the tests' Celery app on the Redis broker, not eager."""
    from tests.celery_app import app

    with celery_worker(tmp_path, concurrency=1) as (queue, _log):
        settings.AG2_LOGGING = {**settings.AG2_LOGGING, "PIPELINE": "celery", "CELERY_QUEUE": queue}
        conf.reload()
        saved = (app.conf.task_always_eager, app.conf.broker_url, app._pool, app.amqp._producer_pool)
        app.conf.task_always_eager, app.conf.broker_url = False, BROKER_URL
        # no connection or producer pool of the in-memory broker (an earlier test may have sent
        # through it; the producer pool keeps its connections, so the tasks went nowhere)
        app._pool = app.amqp._producer_pool = None
        try:
            yield queue
        finally:
            (app.conf.task_always_eager, app.conf.broker_url, app._pool, app.amqp._producer_pool) = saved


def test_the_admin_reprice_runs_on_a_real_worker(llm: FakeLLMServer, tmp_path: Path, settings: Any) -> None:
    price_overrides.invalidate()
    calls = spread_calls(llm)  # recorded and ingested here (eager Celery), before the worker mode
    with sending_to_a_worker(tmp_path, settings):
        reprice_in_the_admin(calls)


def reprice_in_the_admin(calls: list[LLMCall]) -> None:
    editor = get_user_model().objects.create_superuser("ed", "ed@example.com", "pw")
    client = Client()
    client.force_login(editor)

    # An OpenAI price for the days 5 to 2 ago (effective_to is exclusive): of the five calls,
    # only the OpenAI call of 3 days ago is covered; the OpenAI calls of today and of 10 days ago
    # and the Azure call of 3 days ago keep their price.
    data = {
        "provider": "openai",
        "model": "gpt-4o-mini",
        "currency_note": "",
        "input_per_mtok": "1.00",
        "cached_input_per_mtok": "0.10",
        "cache_write_per_mtok": "",
        "output_per_mtok": "4.00",
        "reasoning_per_mtok": "8.00",
        "effective_from": day(5).isoformat(),
        "effective_to": day(1).isoformat(),
        "_save": "Save",
    }
    saved = client.post(reverse("admin:ag2_logging_modelprice_add"), data, follow=True)
    assert saved.status_code == 200
    price = ModelPrice.objects.get()
    notes = [str(m) for m in get_messages(saved.wsgi_request)]
    assert any("1 call already recorded that this override covers keeps its old price" in n for n in notes), (
        notes
    )
    assert [c.cost for c in LLMCall.objects.order_by("pk")] == [
        c.cost for c in sorted(calls, key=lambda c: c.pk)
    ]

    url = reverse("admin:ag2_logging_modelprice_reprice", args=[price.pk])
    page = client.get(url).content.decode()
    assert "1 call already recorded" in page and "celery" in page

    response = client.post(url, follow=True)
    (message,) = [str(m) for m in get_messages(response.wsgi_request)]
    assert "Sent 1 reprice task to Celery; the costs change once a worker has run it." in message
    last = (day(1) - dt.timedelta(days=1)).isoformat()
    assert f"(openai, {day(5).isoformat()} to {last})" in message

    covered = calls[1]
    wait_for(
        lambda: LLMCall.objects.get(pk=covered.pk).price_status == "override",
        timeout=120,
        what="the worker to reprice the covered call",
    )
    assert_repriced_exactly(calls, {1}, price)
