"""Recovery: nothing a crash, a database outage or a dead broker left behind stays lost.

``recover_sessions()`` (``manage.py ag2_logging_recover``, task ``ag2_logging.recover_sessions``)
finds, in this order:

1. running sessions whose process is gone (same host, pid not alive) or that sent no heartbeat
   for ``RECOVERY_AFTER_SECONDS``: their journal is ingested and they become ``interrupted``
   (or take the status their journal's closing line gives, if the process died just after it);
2. finished sessions whose journal was never ingested (the broker was down at session end);
3. journals with no Session row at all (the database was down for the whole session), once
   their writer is gone or quiet for ``RECOVERY_AFTER_SECONDS``;
4. unattributed journals (ingest is idempotent, so re-reading them adds only new calls);
5. finished, ingested sessions that never had the thorough redaction pass (``sanitize_log``);
6. finished, ingested sessions not yet rolled up.

Each step is idempotent and each journal is handled on its own, so one bad file never blocks
the rest.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db.models import Q

from ag2_logging.conf import conf
from ag2_logging.models import Session
from ag2_logging.pipeline import rollups, sanitize
from ag2_logging.pipeline.chain import ChainResult, mark_failed, process_session, process_sessions
from ag2_logging.pipeline.ingest import ingest_journal, journal_header
from ag2_logging.pipeline.store import JournalUnavailable

logger = logging.getLogger("ag2_logging.recovery")


@dataclass
class RecoveryResult:
    interrupted: list[str] = field(default_factory=list)
    ingested: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    unattributed_files: int = 0
    sanitized: int = 0
    summarized: int = 0
    failures: list[str] = field(default_factory=list)
    #: Sessions whose journal is on another host that has not published it yet.
    waiting: list[str] = field(default_factory=list)
    #: Journals in the journal directory with no readable session header.
    unreadable: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "interrupted": len(self.interrupted),
            "ingested": len(self.ingested),
            "orphan_journals": len(self.orphans),
            "unattributed_files": self.unattributed_files,
            "sanitized": self.sanitized,
            "summarized": self.summarized,
            "failures": self.failures,
            "waiting_for_host": self.waiting,
            "unreadable_journals": self.unreadable,
        }


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _writer_gone(
    host: str, pid: int | None, last_seen: dt.datetime | None, stale_before: dt.datetime
) -> bool:
    if host == conf.resolved.host_name and pid and not pid_alive(pid):
        return True
    return last_seen is None or last_seen < stale_before


def _past_retention(day_dir: str, rows_cutoff: dt.datetime | None) -> bool:
    """True when every session a date directory can hold started before the row cutoff."""
    if rows_cutoff is None:
        return False
    try:
        day = dt.date.fromisoformat(day_dir)
    except ValueError:
        return False
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC) <= rows_cutoff


def recover_sessions(
    *,
    stale_after: float | None = None,
    now: dt.datetime | None = None,
    local: bool = False,
    settled_only: bool = False,
) -> RecoveryResult:
    """Finish what crashes and outages left behind (see the module docstring).

    ``local``: only this host's sessions and journals (``ag2_logging_recover --local``, and the
    recovery a process runs when its first session opens): crashed writers' journals are
    sanitized, published and ingested here. Without it, sessions of any host whose journal was
    published are taken too. ``settled_only`` (the recovery a process runs at its first session):
    finished sessions are taken only once they ended ``RECOVERY_AFTER_SECONDS`` ago, so a live
    process's own hand-over is left to it.
    """
    settings = conf.resolved
    now = now or dt.datetime.now(dt.UTC)
    stale_before = now - dt.timedelta(
        seconds=stale_after if stale_after is not None else settings.recovery_after_seconds
    )
    result = RecoveryResult()
    scope = Session.objects.filter(host=settings.host_name) if local else Session.objects.all()
    handled = _recover_unfinished(scope, stale_before, result)
    _recover_not_ingested(scope, handled, stale_before if settled_only else None, result)
    if not settled_only:  # a scan of the whole journal directory: for recover commands, not at start-up
        _recover_files(settings, now, stale_before, result)
    _sanitize_left(scope, result)
    _summarize_left(scope, result)
    return result


def _recover_unfinished(scope: Any, stale_before: dt.datetime, result: RecoveryResult) -> set[uuid.UUID]:
    """1. Running sessions whose process is gone or silent; returns their ids."""
    gone = [
        session
        for session in scope.filter(status=Session.Status.RUNNING)
        if _writer_gone(
            session.host, session.pid, session.last_heartbeat_at or session.started_at, stale_before
        )
    ]
    _recover_many(gone, result, interrupted=True)
    return {session.pk for session in gone}


def _recover_not_ingested(
    scope: Any, handled: set[uuid.UUID], ended_before: dt.datetime | None, result: RecoveryResult
) -> None:
    """2. Finished but never ingested (the broker was down, the worker could not read the
    journal); with ``ended_before``, only those that ended before it (a live process on this
    host may still be handing over one that just ended)."""
    unfinished = (
        scope.exclude(status=Session.Status.RUNNING).filter(ingested_at__isnull=True).exclude(pk__in=handled)
    )
    if ended_before is not None:
        unfinished = unfinished.filter(ended_at__lt=ended_before)
    _recover_many(list(unfinished), result, interrupted=False)


def _sanitize_left(scope: Any, result: RecoveryResult) -> None:
    """5. The thorough redaction pass for ingested sessions that never had it, where the journal is."""
    for session in scope.exclude(status=Session.Status.RUNNING).filter(
        sanitized_at__isnull=True, ingested_at__isnull=False
    ):
        if not session.journal_path or not Path(session.journal_path).is_file():
            continue
        try:
            sanitize.sanitize_session(session.pk)
            result.sanitized += 1
        except Exception:
            logger.exception("ag2_logging could not sanitize session %s", session.pk)
            result.failures.append(str(session.pk))


def _summarize_left(scope: Any, result: RecoveryResult) -> None:
    """6. Roll up what is finished and ingested."""
    pending = scope.exclude(status=Session.Status.RUNNING).filter(
        Q(ingested_at__isnull=False) & Q(summarized_at__isnull=True)
    )
    for session_id in pending.values_list("id", flat=True):
        try:
            result.summarized += rollups.summarize_session(session_id)
        except Exception:
            logger.exception("ag2_logging could not roll up session %s", session_id)
            result.failures.append(str(session_id))


def _recover_files(
    settings: Any, now: dt.datetime, stale_before: dt.datetime, result: RecoveryResult
) -> None:
    """3. journals with no Session row, 4. unattributed journals (this host's journal directory).

    A journal whose rows are past RETENTION_DAYS was pruned on purpose: ingesting it again would
    resurrect the session and count it twice in the rollups."""
    journal_dir = settings.journal_dir
    if not journal_dir.exists():
        return
    rows_cutoff = now - dt.timedelta(days=settings.retention_days) if settings.retention_days else None
    known = {str(i) for i in Session.objects.values_list("id", flat=True)}
    for path in sorted(journal_dir.glob("*/*.jsonl")):
        if path.parent.name == "unattributed":
            mtime = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
            if rows_cutoff is not None and mtime < rows_cutoff:
                continue
            _ingest_file(path, result, unfinished=None, orphan=False)
            result.unattributed_files += 1
            continue
        if path.stem in known or _past_retention(path.parent.name, rows_cutoff):
            continue
        try:
            header = journal_header(path)
        except FileNotFoundError:  # retention (or its own process's chain) removed it meanwhile
            continue
        if header is None:
            result.unreadable.append(str(path))
            continue
        mtime = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
        if not _writer_gone(header.get("host") or "", header.get("pid"), mtime, stale_before):
            continue
        # Sanitize before the rows exist, then ingest (which creates the Session row), then the
        # rest of the chain (publish, rollups).
        try:
            sanitize.sanitize_journal(path)
        except OSError:
            logger.exception("ag2_logging could not sanitize orphan journal %s", path)
        if _ingest_file(path, result, unfinished=Session.Status.INTERRUPTED, orphan=True):
            outcome = _run_chain(
                uuid.UUID(path.stem) if _is_uuid(path.stem) else None, result, interrupted=True
            )
            result.summarized += outcome is not None and "summarize" in outcome.ran


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


#: Sessions whose chains ``_recover_many`` runs together (``chain.process_sessions``).
RECOVERY_BATCH = 64


def _recover_many(sessions: list[Session], result: RecoveryResult, *, interrupted: bool) -> None:
    """The chains of ``sessions``, their ingests batched (``chain.process_sessions``); each one
    the batch did not finish then runs alone (``_recover_one``), with its own failure handling."""
    status = Session.Status.INTERRUPTED if interrupted else None
    for start in range(0, len(sessions), RECOVERY_BATCH):
        chunk = sessions[start : start + RECOVERY_BATCH]
        done: set[uuid.UUID] = set()
        if len(chunk) > 1:
            try:
                done = set(process_sessions([s.pk for s in chunk], unfinished_status=status))
            except Exception:  # each chain again on its own, where its failure is its own
                logger.debug("ag2_logging: a recovery batch of %d chains failed", len(chunk), exc_info=True)
        after = {
            row[0]: row[1:]
            for row in Session.objects.filter(pk__in=[s.pk for s in chunk]).values_list(
                "pk", "sanitized_at", "ingested_at"
            )
        }
        for session in chunk:
            sanitized_at, ingested_at = after.get(session.pk, (None, None))
            ran = {
                "sanitize": session.sanitized_at is None and sanitized_at is not None,
                "ingest": session.ingested_at is None and ingested_at is not None,
            }
            if session.pk in done:
                result.sanitized += ran["sanitize"]
                result.summarized += 1
                (result.interrupted if interrupted else result.ingested).append(str(session.pk))
            else:
                _recover_one(session, result, interrupted=interrupted, ran=ran)


def _recover_one(
    session: Session, result: RecoveryResult, *, interrupted: bool, ran: dict[str, bool] | None = None
) -> None:
    """One session's chain; ``ran``: steps a batch already did for it (counted here too)."""
    ran = ran or {}
    outcome = _run_chain(session.pk, result, interrupted=interrupted)
    if outcome is None:
        return
    result.sanitized += "sanitize" in outcome.ran or ran.get("sanitize", False)
    result.summarized += "summarize" in outcome.ran
    if "ingest" not in outcome.ran and not ran.get("ingest"):
        return
    (result.interrupted if interrupted else result.ingested).append(str(session.pk))


def _run_chain(
    session_id: uuid.UUID | None, result: RecoveryResult, *, interrupted: bool
) -> ChainResult | None:
    if session_id is None:
        return None
    try:
        return process_session(
            session_id, unfinished_status=Session.Status.INTERRUPTED if interrupted else None
        )
    except JournalUnavailable as exc:
        _journal_unavailable(session_id, str(exc), result, interrupted=interrupted)
    except Exception:
        logger.exception("ag2_logging could not recover session %s", session_id)
        result.failures.append(str(session_id))
    return None


def _journal_unavailable(
    session_id: uuid.UUID, reason: str, result: RecoveryResult, *, interrupted: bool
) -> None:
    """Neither the journal nor a published copy can be read here. On its own host the journal is
    gone for good: the session is marked failed with the reason, its totals kept. Elsewhere its
    host may still publish it (``ag2_logging_recover --local`` there): it waits, visibly."""
    session = Session.objects.get(pk=session_id)
    here = not session.host or session.host == conf.resolved.host_name
    if interrupted and session.status == Session.Status.RUNNING:
        Session.objects.filter(pk=session_id, status=Session.Status.RUNNING).update(
            status=Session.Status.INTERRUPTED, ended_at=session.last_heartbeat_at or session.started_at
        )
        result.interrupted.append(str(session_id))
    if here:
        mark_failed(session_id, reason)
        result.failures.append(str(session_id))
    else:
        result.waiting.append(str(session_id))
    logger.error("ag2_logging: %s", reason)


def _ingest_file(path: Path, result: RecoveryResult, *, unfinished: str | None, orphan: bool) -> bool:
    try:
        outcome = ingest_journal(path, unfinished_status=unfinished)
    except Exception:
        logger.exception("ag2_logging could not ingest journal %s", path)
        result.failures.append(str(path))
        return False
    if orphan and outcome.session_id is not None:
        result.orphans.append(str(outcome.session_id))
    return True
