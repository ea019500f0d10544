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
    if result.finished:
        from ag2_logging.sessions import enqueue

        enqueue(summarize_session, session_id)
    return {
        "session_id": str(result.session_id),
        "llm_calls": result.llm_calls,
        "agent_events": result.agent_events,
        "tool_calls": result.tool_calls,
        "bad_lines": result.bad_lines,
    }


@shared_task(
    name="ag2_logging.summarize_session",
    autoretry_for=TRANSIENT,
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=10,
    acks_late=True,
)
def summarize_session(session_id: str) -> bool:
    """Add a finished session to the daily rollups (exactly once)."""
    from ag2_logging import rollups

    return rollups.summarize_session(session_id)


@shared_task(name="ag2_logging.rebuild_rollups", autoretry_for=TRANSIENT, retry_backoff=True, max_retries=5)
def rebuild_rollups() -> int:
    """Recompute the daily rollups from the raw rows."""
    from ag2_logging import rollups

    return rollups.rebuild_rollups()


@shared_task(name="ag2_logging.reprice", autoretry_for=TRANSIENT, retry_backoff=True, max_retries=5)
def reprice(
    since: str | None = None, model: str | None = None, enterprise: str | None = None, dry_run: bool = False
) -> dict[str, Any]:
    """Recompute call costs (see ``manage.py ag2_logging_reprice``); returns the summary."""
    import datetime as dt

    from ag2_logging import reprice as repricing

    result = repricing.reprice(
        since=dt.date.fromisoformat(since) if since else None,
        model=model,
        enterprise=enterprise,
        dry_run=dry_run,
    )
    return result.as_dict()


@shared_task(name="ag2_logging.recover_sessions", autoretry_for=TRANSIENT, retry_backoff=True, max_retries=5)
def recover_sessions() -> dict[str, Any]:
    """Periodic: ingest what crashes and outages left behind (see ``manage.py ag2_logging_recover``)."""
    from ag2_logging.recovery import recover_sessions as recover

    return recover().as_dict()


@shared_task(
    name="ag2_logging.apply_retention",
    autoretry_for=TRANSIENT,
    retry_backoff=True,
    max_retries=5,
    acks_late=True,
)
def apply_retention(dry_run: bool = False, batch_size: int = 1000) -> dict[str, Any]:
    """Apply RETENTION_DAYS and JOURNAL_RETENTION_DAYS (see ``manage.py ag2_logging_prune``)."""
    from ag2_logging import retention

    return retention.apply_retention(dry_run=dry_run, batch_size=batch_size).as_dict()


@shared_task(
    name="ag2_logging.sanitize_log",
    autoretry_for=TRANSIENT,
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=10,
    acks_late=True,
)
def sanitize_log(session_id: str) -> dict[str, Any] | None:
    """Second, thorough redaction pass over one session's journal, runtime-log lines and rows.

    Idempotent; returns what it removed (counts by kind, never values).
    """
    from ag2_logging import sanitize

    result = sanitize.sanitize_session(session_id)
    return None if result is None else result.as_dict()
