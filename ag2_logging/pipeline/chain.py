"""One session's chain: sanitize -> publish -> ingest -> summarize, in that order, once.

Every step is idempotent and marks itself done on the Session row (``sanitized_at``,
``journal_published_at``, ``ingested_at``, ``summarized_at``), so re-running the chain (a
re-delivered task, recovery, a second host) does only what is left. A short lease on the row
(``lease_owner`` / ``lease_until``, taken with one conditional ``UPDATE`` that works on every
database) keeps two chains of one session from running at once, on any host.

Where a step needs the journal:

* sanitize and publish read the local file only: they belong to the writer's host. The sanitize
  pass never marks a journal it did not read; the runtime-log lines are cleaned only on the host
  that wrote them.
* ingest reads the local file when this host has it, else the copy published to
  ``JOURNAL_STORAGE``; when it can read neither it raises ``JournalUnavailable`` (retryable; never
  a success). A journal refused by ingest (its header names another session) fails at once.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db.models import F, Q

from ag2_logging.conf import conf
from ag2_logging.models import Session
from ag2_logging.pipeline import store
from ag2_logging.pipeline.store import JournalUnavailable

logger = logging.getLogger("ag2_logging.pipeline")

STEPS = ("sanitize", "publish", "ingest", "summarize")
#: A chain renews its lease between steps; a crashed holder's lease expires after this long.
LEASE_SECONDS = 600


class PipelineFailed(Exception):
    """A session's chain gave up (its retries are spent); the row carries the reason."""


@dataclass
class ChainResult:
    session_id: str
    #: Steps that did work in this run (a step already done, or not possible here, is left out).
    ran: list[str] = field(default_factory=list)
    #: Why the chain did not run at all: "unknown session", "leased by <owner>".
    skipped: str = ""
    ingest: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "ran": self.ran,
            "skipped": self.skipped,
            "ingest": self.ingest,
        }


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _owner() -> str:
    return f"{conf.resolved.host_name}:{os.getpid()}:{threading.get_ident()}:{uuid.uuid4().hex[:8]}"


def _take_lease(session_id: uuid.UUID, owner: str) -> bool:
    now = _now()
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now) | Q(lease_owner=owner)
    updated = (
        Session.objects.filter(pk=session_id)
        .filter(free)
        .update(lease_owner=owner, lease_until=now + dt.timedelta(seconds=LEASE_SECONDS))
    )
    return updated == 1


@contextmanager
def lease(session_id: uuid.UUID) -> Iterator[str | None]:
    """Hold the session's lease for the block; yields the owner token, or None when another
    chain holds it."""
    owner = _owner()
    if not _take_lease(session_id, owner):
        yield None
        return
    try:
        yield owner
    finally:
        Session.objects.filter(pk=session_id, lease_owner=owner).update(lease_owner="", lease_until=None)


def local_journal(session: Session) -> Path | None:
    """The session's journal file when this host has it (None otherwise)."""
    if not session.journal_path:
        return None
    path = Path(session.journal_path)
    return path if path.is_file() else None


def _written_here(session: Session) -> bool:
    return not session.host or session.host == conf.resolved.host_name


# -- the steps -------------------------------------------------------------------------------


def sanitize_step(session: Session) -> bool:
    from ag2_logging.pipeline import sanitize

    if session.sanitized_at is not None or local_journal(session) is None:
        return False
    sanitize.sanitize_session(session.pk, runtime_log=_written_here(session))
    return True


def publish_step(session: Session) -> bool:
    path = local_journal(session)
    if store.storage() is None or path is None or session.sanitized_at is None:
        return False
    if session.journal_published_at is not None and session.journal_published_at >= session.sanitized_at:
        return False
    name = store.publish(path, store.name_for(session.pk, session.started_at))
    Session.objects.filter(pk=session.pk).update(journal_storage_name=name, journal_published_at=_now())
    return True


def _where(session: Session) -> str:
    return (
        f"journal {session.journal_path or '(none)'} of session {session.pk} is not on host "
        f"{conf.resolved.host_name!r} (written on {session.host or 'an unknown host'!r})"
    )


@contextmanager
def readable_journal(session: Session) -> Iterator[Path]:
    """The journal to ingest: the local file, else a local copy of the published one."""
    path = local_journal(session)
    if path is not None:
        yield path
        return
    if not session.journal_storage_name:
        hint = (
            "and it was not published: set AG2_LOGGING['JOURNAL_STORAGE'] on every host"
            if store.storage() is None
            else "and it has not been published yet"
        )
        raise JournalUnavailable(f"{_where(session)} {hint}")
    with store.local_copy(session.journal_storage_name) as copy:
        yield copy


def ingest_step(
    session: Session, *, unfinished_status: str | None = None, force: bool = False
) -> dict[str, Any] | None:
    from ag2_logging.pipeline.ingest import ingest_journal

    if session.ingested_at is not None and not force:
        return None
    with readable_journal(session) as path:
        result = ingest_journal(path, unfinished_status=unfinished_status, expected_session_id=session.pk)
    return {
        "llm_calls": result.llm_calls,
        "agent_events": result.agent_events,
        "tool_calls": result.tool_calls,
        "bad_lines": len(result.bad_lines),
        "finished": result.finished,
    }


def summarize_step(session: Session) -> bool:
    from ag2_logging.pipeline import rollups

    if session.ingested_at is None or session.summarized_at is not None:
        return False
    return rollups.summarize_session(session.pk)


# -- the chain -------------------------------------------------------------------------------


def _fresh(session_id: uuid.UUID) -> Session:
    return Session.objects.get(pk=session_id)


def process_session(
    session_id: uuid.UUID | str, *, until: str = "summarize", unfinished_status: str | None = None
) -> ChainResult:
    """Run what is left of the session's chain, up to and including the step ``until``.

    Raises ``JournalUnavailable`` (retry later) when ingest cannot read the journal on this host
    nor a published copy; ``mark_failed`` records the reason once retries are spent. A journal
    that ingest refuses marks the session failed at once. Database errors propagate (retry).
    """
    key = session_id if isinstance(session_id, uuid.UUID) else uuid.UUID(str(session_id))
    result = ChainResult(session_id=str(key))
    if not Session.objects.filter(pk=key).exists():
        result.skipped = "unknown session"
        return result
    with lease(key) as owner:
        if owner is None:
            result.skipped = "leased by another chain"
            return result
        _run_steps(key, until, unfinished_status, result, owner)
    return result


def _run_steps(
    key: uuid.UUID, until: str, unfinished_status: str | None, result: ChainResult, owner: str
) -> None:
    from ag2_logging.pipeline.ingest import JournalRefused

    for step in STEPS[: STEPS.index(until) + 1]:
        session = _fresh(key)
        _take_lease(key, owner)  # renewed between steps
        try:
            if step == "sanitize":
                did = sanitize_step(session)
            elif step == "publish":
                did = publish_step(session)
            elif step == "ingest":
                result.ingest = ingest_step(session, unfinished_status=unfinished_status)
                did = result.ingest is not None
            else:
                did = summarize_step(session)
        except JournalUnavailable as exc:
            record_attempt(key, str(exc))
            raise
        except JournalRefused as exc:
            mark_failed(key, f"journal refused: {exc}")
            logger.error("ag2_logging refused the journal of session %s: %s", key, exc)
            return
        if did:
            result.ran.append(step)
    if "ingest" in STEPS[: STEPS.index(until) + 1]:
        Session.objects.filter(pk=key).exclude(pipeline_error="").update(
            pipeline_error="", pipeline_failed_at=None
        )


def record_attempt(session_id: uuid.UUID | str, reason: str) -> None:
    """Count one failed attempt and keep its reason on the row (visible while retries go on)."""
    Session.objects.filter(pk=session_id).update(
        pipeline_error=reason[:10_000], pipeline_attempts=F("pipeline_attempts") + 1
    )


def mark_failed(session_id: uuid.UUID | str, reason: str) -> None:
    """The chain gave up: the session carries the reason and shows as a pipeline failure."""
    Session.objects.filter(pk=session_id).update(pipeline_error=reason[:10_000], pipeline_failed_at=_now())
    logger.error("ag2_logging gave up on session %s: %s", session_id, reason)


def retry_delay(attempt: int) -> float:
    """Seconds before retry ``attempt`` (1-based): 2, 4, 8, ... capped at 5 minutes."""
    return float(min(300, 2**attempt))
