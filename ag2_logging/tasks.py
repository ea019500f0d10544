"""Celery tasks: thin, idempotent wrappers; the logic lives in plain functions elsewhere.

``ag2_logging.process_session`` is the one chain a session end sends (sanitize -> publish ->
ingest -> summarize, see ``ag2_logging.pipeline.chain``). The single-step tasks remain for
messages queued by earlier releases and for manual use. The pipeline sends the chain by name
(``app.send_task``), so nothing below this module imports it.
"""

from __future__ import annotations

import uuid
from typing import Any

from celery import shared_task

from ag2_logging.conf import conf
from ag2_logging.pipeline.db import TRANSIENT
from ag2_logging.pipeline.store import JournalUnavailable


@shared_task(bind=True, name="ag2_logging.process_session", acks_late=True, max_retries=None)
def process_session(self: Any, session_id: str, unfinished_status: str | None = None) -> dict[str, Any]:
    """What is left of one session's chain: sanitize -> publish -> ingest -> summarize.

    Retries (with backoff) while the journal cannot be read here nor from ``JOURNAL_STORAGE``,
    or the database is unavailable; after ``PIPELINE_MAX_RETRIES`` the session is marked failed
    (``Session.pipeline_failed_at``) with the reason: never a silent success.
    """
    from ag2_logging.pipeline import chain

    try:
        result = chain.process_session(session_id, unfinished_status=unfinished_status)
    except (JournalUnavailable, *TRANSIENT) as exc:
        attempt = self.request.retries + 1
        if self.request.is_eager or attempt > conf.resolved.pipeline_max_retries:
            chain.mark_failed(session_id, f"{exc} (after {attempt} attempt(s))")
            if self.request.is_eager:  # the session's end must not raise into the caller
                return {"session_id": session_id, "failed": str(exc)}
            # A task that gave up is a FAILURE in Celery's eyes too (flower, result backends).
            raise chain.PipelineFailed(f"session {session_id}: {exc}") from exc
        raise self.retry(exc=exc, countdown=chain.retry_delay(attempt)) from exc
    if result.skipped.startswith("leased") and not self.request.is_eager:
        # Another chain of this session is running; if its holder dies, the lease expires.
        raise self.retry(countdown=chain.LEASE_SECONDS // 4)
    return result.as_dict()


@shared_task(
    name="ag2_logging.ingest_session",
    autoretry_for=(*TRANSIENT, JournalUnavailable),
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=10,
    acks_late=True,
)
def ingest_session(session_id: str) -> dict[str, Any] | None:
    """Ingest one session's journal again (the local file or its published copy), then roll it up."""
    from ag2_logging.models import Session
    from ag2_logging.pipeline import chain, rollups

    session = Session.objects.filter(pk=uuid.UUID(str(session_id))).first()
    if session is None:
        return None
    outcome = chain.ingest_step(session, force=True)
    if outcome is not None and outcome["finished"]:
        rollups.summarize_session(session.pk)
    return outcome


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
    from ag2_logging.pipeline import rollups

    return rollups.summarize_session(session_id)


@shared_task(name="ag2_logging.rebuild_rollups", autoretry_for=TRANSIENT, retry_backoff=True, max_retries=5)
def rebuild_rollups() -> int:
    """Recompute the daily rollups from the raw rows."""
    from ag2_logging.pipeline import rollups

    return rollups.rebuild_rollups()


@shared_task(name="ag2_logging.reprice", autoretry_for=TRANSIENT, retry_backoff=True, max_retries=5)
def reprice(
    since: str | None = None,
    model: str | None = None,
    enterprise: str | None = None,
    dry_run: bool = False,
    until: str | None = None,
    provider: str | None = None,
) -> dict[str, Any]:
    """Recompute call costs (see ``manage.py ag2_logging_reprice``); returns the summary
    (``RepriceResult.as_dict``). ``since`` / ``until``: ISO dates (``YYYY-MM-DD``, UTC days of the
    calls' end, both inclusive); ``provider``: as a ``ModelPrice`` names it (any case, aliases;
    None or "" for any). A malformed date raises ValueError (not retried)."""
    import datetime as dt

    from ag2_logging.pipeline import reprice as repricing

    result = repricing.reprice(
        since=dt.date.fromisoformat(since) if since else None,
        until=dt.date.fromisoformat(until) if until else None,
        model=model,
        provider=provider,
        enterprise=enterprise,
        dry_run=dry_run,
    )
    return result.as_dict()


@shared_task(name="ag2_logging.recover_sessions", autoretry_for=TRANSIENT, retry_backoff=True, max_retries=5)
def recover_sessions(local: bool = False) -> dict[str, Any]:
    """Periodic: finish what crashes and outages left behind (see ``manage.py ag2_logging_recover``)."""
    from ag2_logging.pipeline.recovery import recover_sessions as recover

    return recover(local=local).as_dict()


@shared_task(
    name="ag2_logging.apply_retention",
    autoretry_for=TRANSIENT,
    retry_backoff=True,
    max_retries=5,
    acks_late=True,
)
def apply_retention(dry_run: bool = False, batch_size: int = 1000) -> dict[str, Any]:
    """Apply RETENTION_DAYS and JOURNAL_RETENTION_DAYS (see ``manage.py ag2_logging_prune``)."""
    from ag2_logging.pipeline import retention

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

    Idempotent; returns what it removed (counts by kind, never values). Runs on the host that
    wrote the journal (elsewhere it finds no journal and marks nothing).
    """
    from ag2_logging.pipeline import sanitize

    result = sanitize.sanitize_session(session_id)
    return None if result is None else result.as_dict()
