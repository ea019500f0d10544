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
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db.models import Q

from ag2_logging import rollups, sanitize
from ag2_logging.conf import conf
from ag2_logging.ingest import ingest_journal
from ag2_logging.journal import read_journal
from ag2_logging.models import Session

logger = logging.getLogger("ag2_logging.recovery")
HOST = socket.gethostname()


@dataclass
class RecoveryResult:
    interrupted: list[str] = field(default_factory=list)
    ingested: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    unattributed_files: int = 0
    sanitized: int = 0
    summarized: int = 0
    failures: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "interrupted": len(self.interrupted),
            "ingested": len(self.ingested),
            "orphan_journals": len(self.orphans),
            "unattributed_files": self.unattributed_files,
            "sanitized": self.sanitized,
            "summarized": self.summarized,
            "failures": self.failures,
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
    if host == HOST and pid and not pid_alive(pid):
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


def _journal_header(path: Path) -> dict[str, Any] | None:
    for line in read_journal(path):
        if line.event is not None and line.event.get("type") == "session_start":
            header = line.event.get("session")
            return header if isinstance(header, dict) else None
        break
    return None


def recover_sessions(*, stale_after: float | None = None, now: dt.datetime | None = None) -> RecoveryResult:
    settings = conf.resolved
    now = now or dt.datetime.now(dt.UTC)
    stale_before = now - dt.timedelta(
        seconds=stale_after if stale_after is not None else settings.recovery_after_seconds
    )
    result = RecoveryResult()

    # 1. running sessions whose process is gone or silent
    for session in Session.objects.filter(status=Session.Status.RUNNING):
        last_seen = session.last_heartbeat_at or session.started_at
        if not _writer_gone(session.host, session.pid, last_seen, stale_before):
            continue
        _recover_one(session, result, interrupted=True)

    # 2. finished but never ingested
    for session in Session.objects.exclude(status=Session.Status.RUNNING).filter(ingested_at__isnull=True):
        _recover_one(session, result, interrupted=False)

    # 3. journals without a row, 4. unattributed journals. A journal whose rows are past
    # RETENTION_DAYS was pruned on purpose: ingesting it again would resurrect the session and
    # count it twice in the rollups.
    journal_dir = settings.journal_dir
    rows_cutoff = now - dt.timedelta(days=settings.retention_days) if settings.retention_days else None
    if journal_dir.exists():
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
            header = _journal_header(path)
            if header is None:
                continue
            mtime = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
            if not _writer_gone(header.get("host") or "", header.get("pid"), mtime, stale_before):
                continue
            _ingest_file(path, result, unfinished=Session.Status.INTERRUPTED, orphan=True)

    # 5. the thorough redaction pass for finished sessions that never had it (broker down)
    for session_id in (
        Session.objects.exclude(status=Session.Status.RUNNING)
        .filter(sanitized_at__isnull=True, ingested_at__isnull=False)
        .values_list("id", flat=True)
    ):
        try:
            sanitize.sanitize_session(session_id)
            result.sanitized += 1
        except Exception:
            logger.exception("ag2_logging could not sanitize session %s", session_id)
            result.failures.append(str(session_id))

    # 6. roll up what is finished and ingested
    pending = Session.objects.exclude(status=Session.Status.RUNNING).filter(
        Q(ingested_at__isnull=False) & Q(summarized_at__isnull=True)
    )
    for session_id in pending.values_list("id", flat=True):
        try:
            result.summarized += rollups.summarize_session(session_id)
        except Exception:
            logger.exception("ag2_logging could not roll up session %s", session_id)
            result.failures.append(str(session_id))
    return result


def _recover_one(session: Session, result: RecoveryResult, *, interrupted: bool) -> None:
    path = Path(session.journal_path) if session.journal_path else None
    if path is None or not path.exists():
        if interrupted:
            Session.objects.filter(pk=session.pk, status=Session.Status.RUNNING).update(
                status=Session.Status.INTERRUPTED,
                ended_at=session.last_heartbeat_at or session.started_at,
                error="interrupted; journal missing",
            )
            result.interrupted.append(str(session.pk))
        logger.error("ag2_logging: journal of session %s is missing (%s)", session.pk, path)
        result.failures.append(str(session.pk))
        return
    ingested = _ingest_file(
        path, result, unfinished=Session.Status.INTERRUPTED if interrupted else None, orphan=False
    )
    if ingested:
        (result.interrupted if interrupted else result.ingested).append(str(session.pk))


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


# -- heartbeats ----------------------------------------------------------------------------------


def beat(session_ids: list[uuid.UUID]) -> None:
    """Touch the running sessions' rows (called on the app's database thread)."""
    if session_ids:
        Session.objects.filter(pk__in=session_ids, status=Session.Status.RUNNING).update(
            last_heartbeat_at=dt.datetime.now(dt.UTC)
        )
