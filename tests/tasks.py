"""Celery tasks for the tests (autodiscovered by tests.celery_app, also in a real worker)."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from ag2_logging import ag2_logged
from ag2_logging.capture.context import current_session


def state() -> dict[str, Any]:
    recorder = current_session.get()
    if recorder is None:
        return {}
    return {
        "session_id": str(recorder.session_id),
        "chat_id": recorder.chat_id,
        "workflow_name": recorder.workflow_name,
        "enterprise_id": recorder.enterprise_id,
        "parent_id": str(recorder.parent_id) if recorder.parent_id else None,
    }


@shared_task(name="tests.plain_task")
@ag2_logged
def plain_task(enterprise_id: str, chat_id: str | None = None) -> dict[str, Any]:
    return state()


@shared_task(name="tests.bound_task", bind=True)
@ag2_logged(workflow_name="bound")
def bound_task(self: Any, enterprise_id: str) -> dict[str, Any]:
    return {**state(), "task_name": self.name}


@shared_task(name="tests.joining_task")
@ag2_logged(join=True)
def joining_task() -> dict[str, Any]:
    return state()


@shared_task(name="tests.run_chat")
@ag2_logged(workflow_name="stress")
def run_chat(marker: str, llm_url: str, enterprise_id: str, chat_id: str, turns: int = 1) -> str:
    """A real classic AG2 chat with a marker the fake server echoes (the concurrency stress test)."""
    import autogen

    config = {
        "config_list": [{"model": "gpt-4o-mini", "api_key": "sk-stress", "base_url": llm_url}],
        "cache_seed": None,
    }
    assistant = autogen.AssistantAgent("assistant", llm_config=config)
    user = autogen.UserProxyAgent(
        "user", human_input_mode="NEVER", code_execution_config=False, max_consecutive_auto_reply=turns
    )
    user.initiate_chat(assistant, message=f"task [[marker:{marker}]]", max_turns=turns, silent=True)
    return state()["session_id"]


@shared_task(name="tests.joined")
@ag2_logged(join=True)
def joined(*results: Any) -> dict[str, Any]:
    """A task that joins the enqueuing session (a group's or chord's member, a chord's body)."""
    return state()


@shared_task(name="tests.joined_retrying", bind=True, max_retries=5)
@ag2_logged(join=True)
def joined_retrying(self: Any, fails: int) -> dict[str, Any]:
    """Retries ``fails`` times (no delay), then succeeds: one session per attempt."""
    if self.request.retries < fails:
        raise self.retry(countdown=0)
    return {**state(), "attempt": self.request.retries + 1}


def wait_for_all(redis_url: str, key: str, parties: int, timeout: float = 120) -> None:
    """A barrier across processes: count this party in at ``key`` (Redis), then wait until
    ``parties`` have (so sessions in a worker and in threads elsewhere really run at once)."""
    import time

    import redis

    client = redis.Redis.from_url(redis_url)
    client.incr(key)
    client.expire(key, 600)
    deadline = time.monotonic() + timeout
    while int(client.get(key) or 0) < parties and time.monotonic() < deadline:
        time.sleep(0.02)


@shared_task(name="tests.budget_chat")
@ag2_logged(workflow_name="budget")
def budget_chat(
    llm_url: str, enterprise_id: str, chat_id: str, turns: int, barrier: tuple[str, str, int]
) -> str:
    """A real classic AG2 chat of ``turns`` calls (each reports 10 prompt and 1000 completion
    tokens, max_tokens 1000) under the budgets; ``BudgetExceeded`` propagates: the task fails and
    its session ends ``blocked`` (the cross-process budget test)."""
    import autogen

    config = {
        "config_list": [
            {"model": "gpt-4o-mini", "api_key": "sk-budget", "base_url": llm_url, "max_tokens": 1000}
        ],
        "cache_seed": None,
    }
    assistant = autogen.AssistantAgent("assistant", llm_config=config)
    user = autogen.UserProxyAgent(
        "user", human_input_mode="NEVER", code_execution_config=False, max_consecutive_auto_reply=turns
    )
    wait_for_all(*barrier)
    message = "go on [[usage:prompt=10,completion=1000,cached=0,reasoning=0]]"
    user.initiate_chat(assistant, message=message, max_turns=turns, silent=True)
    return "completed"


@shared_task(name="tests.ag2_inherited")
def ag2_inherited(out: str) -> None:
    """Write which AG2 packages this prefork child has before it runs any chat (its main process
    imported them before the fork, or nothing did), and whether classic AG2 is attached."""
    import json
    import os
    import sys
    from pathlib import Path

    classic = sys.modules.get("ag2_logging.integrations.classic")
    loaded = {name: name in sys.modules for name in ("autogen", "ag2")}
    attached = classic is not None and classic.is_installed()
    Path(out).write_text(json.dumps({"loaded": loaded, "classic_attached": attached, "pid": os.getpid()}))
