"""16 concurrent sessions of one enterprise across a real Celery prefork worker on Redis and
threads of this process, under one ``block`` budget (issue 17): the limit is never passed by
more than one call per session (the issue's bound; with worst-case reservations, not at all), the
shared ledger (the database, or Redis) holds every call each process sent, and the sessions the
budget stopped end ``blocked`` with ``BudgetExceeded``, in the worker and here.

Real classic chats against the fake LLM server; costs from genai-prices' own ``calc_price``."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import autogen  # noqa: F401 - the sessions are classic AG2 chats: collected only where it is installed
import pytest
from celery import Celery
from django.db import connection

from ag2_logging import BudgetExceeded, flush
from ag2_logging.budgets import enforce
from ag2_logging.budgets.figures import figures
from ag2_logging.conf import conf
from ag2_logging.models import Budget, Session
from ag2_logging.testing import FakeLLMServer
from tests.conftest import expected_cost
from tests.support import BROKER_URL, celery_worker, wait_for
from tests.tasks import budget_chat

pytestmark = pytest.mark.django_db(transaction=True)

#: The budget ledger's Redis database (the broker has its own): ``AG2_TEST_BUDGET_REDIS_URL``.
BUDGET_REDIS = "redis://127.0.0.1:6379/5"
CALL = expected_cost("gpt-4o-mini", 10, 1000, 0, 0)
IN_WORKER, IN_THREADS, TURNS, FITS = 8, 8, 10, 40
SESSIONS = IN_WORKER + IN_THREADS


def budget_redis_url() -> str:
    import os

    return os.environ.get("AG2_TEST_BUDGET_REDIS_URL", BUDGET_REDIS)


@pytest.mark.parametrize("ledger", ["db", "redis"])
def test_sixteen_sessions_across_a_worker_and_threads_never_pass_the_limit(
    llm: FakeLLMServer, tmp_path: Path, settings: Any, ledger: str
) -> None:
    import redis

    url = budget_redis_url()
    redis.Redis.from_url(url).flushdb()
    extra = {}
    if ledger == "redis":
        extra["AG2_LOGGING_BUDGET_REDIS_URL"] = url
        settings.AG2_LOGGING = {**settings.AG2_LOGGING, "BUDGET_REDIS_URL": url}
        conf.reload()
    enforce.reset()
    limit = CALL * FITS + CALL / 2
    budget = Budget.objects.create(scope="enterprise", enterprise_id="many", period="day", limit=limit)
    barrier = (url, f"barrier:{uuid.uuid4().hex}", SESSIONS)
    outcomes: list[str] = []

    def in_thread(n: int) -> None:
        try:
            budget_chat(llm.base_url, "many", f"thread-{n}", TURNS, barrier)
            outcomes.append("completed")
        except BudgetExceeded:
            outcomes.append("blocked")
        finally:
            connection.close()

    try:
        with celery_worker(tmp_path, concurrency=IN_WORKER, extra_env=extra) as (queue, log_path):
            sender = Celery(broker=BROKER_URL, set_as_current=False)
            for n in range(IN_WORKER):
                sender.send_task(
                    "tests.budget_chat",
                    kwargs={
                        "llm_url": llm.base_url,
                        "enterprise_id": "many",
                        "chat_id": f"worker-{n}",
                        "turns": TURNS,
                        "barrier": barrier,
                    },
                    queue=queue,
                )
            threads = [threading.Thread(target=in_thread, args=(n,)) for n in range(IN_THREADS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            flush()

            def all_ended() -> bool:
                return (
                    Session.objects.filter(enterprise_id="many", ingested_at__isnull=False)
                    .exclude(status="running")
                    .count()
                    == SESSIONS
                )

            wait_for(all_ended, timeout=240, what=f"the 16 sessions to end ({log_path})")
        enforce.flush()
        served = len(llm.served)
        sessions = list(Session.objects.filter(enterprise_id="many"))
        found = figures(budget)
    finally:
        enforce.reset()

    # the bound: at most one call per session past the limit...
    assert CALL * served <= limit + CALL * SESSIONS
    # ...and with worst-case reservations (real cost <= reserved) none at all; the ledger shared
    # by the worker's processes and this one holds every call that was sent, at its real cost
    assert found.spent == CALL * served <= limit and found.reserved == 0
    # leases other processes still held refuse a call early by less than one call per process
    assert served >= FITS - SESSIONS
    assert {s.chat_id for s in sessions} == {f"worker-{n}" for n in range(IN_WORKER)} | {
        f"thread-{n}" for n in range(IN_THREADS)
    }
    assert sum(s.call_count for s in sessions) == served
    blocked = [s for s in sessions if s.status == Session.Status.BLOCKED]
    assert all(s.status in ("completed", "blocked") for s in sessions)
    assert len(blocked) >= SESSIONS - FITS // TURNS  # 160 calls wanted, about 40 fit
    assert all(
        s.error.startswith(f"BudgetExceeded: budget #{budget.pk} (enterprise many, day)") for s in blocked
    )
    assert any(s.chat_id.startswith("worker-") for s in blocked)
    assert outcomes.count("blocked") == sum(1 for s in blocked if s.chat_id.startswith("thread-"))
