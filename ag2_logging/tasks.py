"""Celery tasks: thin, idempotent wrappers; the logic lives in plain functions elsewhere."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.db import DatabaseError, InterfaceError, OperationalError

from ag2_logging import ingest

TRANSIENT = (OperationalError, InterfaceError, DatabaseError, ConnectionError, TimeoutError)


@shared_task(
    name="ag2_logging.ingest_session",
    autoretry_for=TRANSIENT,
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=10,
    acks_late=True,
)
def ingest_session(session_id: str) -> dict[str, Any] | None:
    """Journal of one session -> LLMCall / AgentEvent / ToolCall rows and session totals."""
    result = ingest.ingest_session(session_id)
    if result is None:
        return None
    return {
        "session_id": str(result.session_id),
        "llm_calls": result.llm_calls,
        "agent_events": result.agent_events,
        "tool_calls": result.tool_calls,
        "bad_lines": result.bad_lines,
    }
