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
