"""64 concurrent sessions never mix: threads, asyncio tasks and a real Celery prefork worker on Redis."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import autogen
import pytest
from celery import Celery

from ag2_logging import ag2_logging_session, flush
from ag2_logging.models import DailyRollup, LLMCall, Session
from ag2_logging.pipeline.rollups import rebuild_rollups
from ag2_logging.testing import FakeLLMServer
from tests.conftest import llm_config
from tests.support import BROKER_URL, celery_worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

THREADS, TASKS, CELERY = 16, 16, 32


@pytest.fixture
def worker_queue(tmp_path: Path) -> Iterator[str]:
    with celery_worker(tmp_path) as (queue, _log):
        yield queue


def chat(server: FakeLLMServer, marker: str, turns: int) -> None:
    assistant = autogen.AssistantAgent("assistant", llm_config=llm_config(server))
    user = autogen.UserProxyAgent(
        "user", human_input_mode="NEVER", code_execution_config=False, max_consecutive_auto_reply=turns
    )
    user.initiate_chat(assistant, message=f"task [[marker:{marker}]]", max_turns=turns, silent=True)


async def achat(server: FakeLLMServer, marker: str, turns: int) -> None:
    assistant = autogen.AssistantAgent("assistant", llm_config=llm_config(server))
    user = autogen.UserProxyAgent(
        "user", human_input_mode="NEVER", code_execution_config=False, max_consecutive_auto_reply=turns
    )
    await user.a_initiate_chat(assistant, message=f"task [[marker:{marker}]]", max_turns=turns, silent=True)


def test_64_concurrent_sessions_never_mix(llm: FakeLLMServer, worker_queue: str) -> None:
    expected: dict[str, tuple[str, int]] = {}  # chat id -> (marker, calls)
    sender = Celery(broker=BROKER_URL, set_as_current=False)
    for n in range(CELERY):
        marker, turns = f"celery{n}", 1 + n % 3
        expected[f"celery-{n}"] = (marker, turns)
        sender.send_task(
            "tests.run_chat",
            kwargs={
                "marker": marker,
                "llm_url": llm.base_url,
                "enterprise_id": f"ent-{n % 5}",
                "chat_id": f"celery-{n}",
                "turns": turns,
            },
            queue=worker_queue,
        )

    errors: list[BaseException] = []

    def in_thread(n: int) -> None:
        marker, turns = f"thread{n}", 1 + n % 3
        try:
            with ag2_logging_session(f"thread-{n}", "stress", f"ent-{n % 5}"):
                chat(llm, marker, turns)
        except BaseException as exc:  # pragma: no cover - asserted below
            errors.append(exc)

    async def in_task(n: int) -> None:
        marker, turns = f"task{n}", 1 + n % 3
        async with ag2_logging_session(f"task-{n}", "stress", f"ent-{n % 5}"):
            await achat(llm, marker, turns)

    async def all_tasks() -> None:
        await asyncio.gather(*(in_task(n) for n in range(TASKS)))

    threads = [threading.Thread(target=in_thread, args=(n,)) for n in range(THREADS)]
    for n in range(THREADS):
        expected[f"thread-{n}"] = (f"thread{n}", 1 + n % 3)
    for n in range(TASKS):
        expected[f"task-{n}"] = (f"task{n}", 1 + n % 3)
    for thread in threads:
        thread.start()
    asyncio.run(all_tasks())
    for thread in threads:
        thread.join()
    flush()
    assert not errors

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        done = Session.objects.filter(status="completed", ingested_at__isnull=False).count()
        if done == len(expected):
            break
        time.sleep(0.5)
    sessions = {s.chat_id: s for s in Session.objects.all()}
    assert set(sessions) == set(expected)
    assert all(s.status == "completed" and s.ingested_at is not None for s in sessions.values())

    served_by_marker: dict[str, int] = {}
    for request in llm.successful():
        served_by_marker[request.marker or ""] = served_by_marker.get(request.marker or "", 0) + 1
    for chat_id, (marker, turns) in expected.items():
        session = sessions[chat_id]
        calls: list[Any] = list(LLMCall.objects.filter(session=session))
        assert len(calls) == turns == session.call_count == served_by_marker[marker], chat_id
        for call in calls:
            text = str(call.request) + str(call.response)
            assert f"[[marker:{marker}]]" in text, chat_id
            others = [m for m, _ in expected.values() if m != marker and f"[[marker:{m}]]" in text]
            assert others == [], chat_id
    assert LLMCall.objects.unattributed().count() == 0
    assert LLMCall.objects.count() == sum(turns for _, turns in expected.values())
    worker_sessions = [s for c, s in sessions.items() if c.startswith("celery-")]
    assert {s.pid for s in worker_sessions}.isdisjoint({os.getpid()})

    # 64 sessions ended at once: the incrementally kept rollups equal a rebuild, cent for cent.
    wait_for(lambda: Session.objects.filter(summarized_at__isnull=True).count() == 0, what="rollups")
    incremental = rollup_table()
    assert sum(row[3] for row in incremental) == LLMCall.objects.count()
    rebuild_rollups()
    assert rollup_table() == incremental


def rollup_table() -> list[tuple[Any, ...]]:
    return sorted(
        DailyRollup.objects.values_list(
            "day", "enterprise_id", "workflow_name", "call_count", "prompt_tokens", "completion_tokens",
            "cached_tokens", "reasoning_tokens", "total_tokens", "cost", "model", "agent_name", "provider",
        )
    )  # fmt: skip
