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
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db.models import Count, F, Max, Min, Q

from ag2_logging.conf import conf
from ag2_logging.models import Session, SpilledEvent
from ag2_logging.pipeline import store
from ag2_logging.pipeline.db import give_way
from ag2_logging.pipeline.store import JournalUnavailable

logger = logging.getLogger("ag2_logging.pipeline")

STEPS = ("sanitize", "publish", "ingest", "summarize")
#: A chain renews its lease between steps; a crashed holder's lease expires after this long.
LEASE_SECONDS = 600
#: ``process_sessions`` adds at most this many sessions to the rollups in one transaction: the
#: rows they share move once, and a caller waiting for SQLite's write lock waits for one
#: transaction of this size at most (see ``pipeline.db.give_way``).
SUMMARIZE_BATCH = 8
#: The same on SQLite: one session per transaction. A caller leaving a session waits for its row,
#: which SQLite's single write lock holds back while the pipeline writes; in the pipeline
#: benchmark (300 one-call sessions, inline) leaving took 13.0-13.8 ms at p50 with 1, against
#: 16.3-17.5 ms with 2 or 8.
SQLITE_SUMMARIZE_BATCH = 1


def summarize_batch() -> int:
    """How many sessions ``process_sessions`` summarizes per transaction on this database."""
    from django.db import connections, router

    vendor = connections[router.db_for_write(Session)].vendor
    return SQLITE_SUMMARIZE_BATCH if vendor == "sqlite" else SUMMARIZE_BATCH


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


def _lease(session_ids: list[uuid.UUID], owner: str) -> int:
    """Lease those of ``session_ids`` that are free (or ``owner``'s already) to ``owner``, in one
    conditional ``UPDATE`` that works on every database; the number of rows leased."""
    now = _now()
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now) | Q(lease_owner=owner)
    return (
        Session.objects.filter(pk__in=session_ids)
        .filter(free)
        .update(lease_owner=owner, lease_until=now + dt.timedelta(seconds=LEASE_SECONDS))
    )


def _take_lease(session_id: uuid.UUID, owner: str) -> bool:
    return _lease([session_id], owner) == 1


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
    try:
        return path if path.is_file() else None
    except OSError:  # a directory on the way this user may not search
        return None


def _written_here(session: Session) -> bool:
    return not session.host or session.host == conf.resolved.host_name


# -- the steps -------------------------------------------------------------------------------


def sanitize_step(session: Session) -> bool:
    from ag2_logging.pipeline import sanitize

    if session.sanitized_at is not None or local_journal(session) is None:
        return False
    # The row read under the lease, brought up to date by the pass (not read again).
    sanitize.sanitize_session(session.pk, runtime_log=_written_here(session), session=session)
    return True


def publish_step(session: Session) -> bool:
    path = local_journal(session)
    if store.storage() is None or path is None or session.sanitized_at is None:
        return False
    if session.journal_published_at is not None and session.journal_published_at >= session.sanitized_at:
        return False
    name = store.publish(path, store.name_for(session.pk, session.started_at))
    session.journal_storage_name, session.journal_published_at = name, _now()
    Session.objects.filter(pk=session.pk).update(
        journal_storage_name=name, journal_published_at=session.journal_published_at
    )
    return True


def _where(session: Session) -> str:
    return (
        f"journal {session.journal_path or '(none)'} of session {session.pk} is not on host "
        f"{conf.resolved.host_name!r} (written on {session.host or 'an unknown host'!r})"
    )


#: How a journal's first and last lines begin (the recorder writes ``type`` first).
_START_LINE = '{"type":"session_start"'
_END_LINE = '{"type":"session_end"'


def spilled_whole(session: Session) -> bool:
    """True when the session's journal lines are all in the database (``SpilledEvent``) and no
    file holds any of them: the journal could not be created (its directory unwritable, under
    ``/proc``, a path through a regular file) or the disk refused it from its first line on.

    Asked only when no journal file or published copy can be read here. The header line must be
    among the spilled lines. On the writer's host a missing file then never held a line; on
    another host the spilled lines must also run without a gap from the header to the closing
    line (a line numbered in between might be in a file only the writer's host has).
    """
    rows = SpilledEvent.objects.filter(session_id=session.pk)
    if not rows.filter(line__startswith=_START_LINE).exists():
        return False
    if _written_here(session):
        return True
    if not rows.filter(line__startswith=_END_LINE).exists():
        return False
    seqs = rows.aggregate(n=Count("seq", distinct=True), lo=Min("seq"), hi=Max("seq"))
    return bool(seqs["n"]) and seqs["n"] == seqs["hi"] - seqs["lo"] + 1


def _unavailable(session: Session) -> str:
    """Why the session's journal cannot be read here, and what to do about it."""
    if _written_here(session):
        # Its own host: publishing could not have helped; the file is gone (or never was).
        return (
            f"journal {session.journal_path or '(none)'} of session {session.pk} is missing on "
            f"{conf.resolved.host_name!r}, the host that wrote it, and its lines are not in the "
            "database either (the journal was removed, or its header was never spilled)"
        )
    hint = (
        "and it was not published: set AG2_LOGGING['JOURNAL_STORAGE'] on every host"
        if store.storage() is None
        else "and it has not been published yet"
    )
    return f"{_where(session)} {hint}"


@contextmanager
def readable_journal(session: Session) -> Iterator[Path | None]:
    """The journal to ingest: the local file, else a local copy of the published one, else None
    when every line of it is in the database (``spilled_whole``). Raises ``JournalUnavailable``
    when none of these holds."""
    path = local_journal(session)
    if path is not None:
        yield path
        return
    if session.journal_storage_name:
        with store.local_copy(session.journal_storage_name) as copy:
            yield copy
        return
    if spilled_whole(session):
        yield None
        return
    raise JournalUnavailable(_unavailable(session))


def ingest_step(
    session: Session, *, unfinished_status: str | None = None, force: bool = False
) -> dict[str, Any] | None:
    from ag2_logging.pipeline.ingest import ingest_journal

    if session.ingested_at is not None and not force:
        return None
    with readable_journal(session) as path:
        result = ingest_journal(
            path if path is not None else Path(session.journal_path or f"{session.pk}.jsonl"),
            unfinished_status=unfinished_status,
            expected_session_id=session.pk,
            spilled_only=path is None,
        )
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
    with lease(key) as owner:
        if owner is None:
            # The lease's UPDATE found no free row: no row at all, or another chain's.
            exists = Session.objects.filter(pk=key).exists()
            result.skipped = "leased by another chain" if exists else "unknown session"
            return result
        _run_steps(key, until, unfinished_status, result, owner)
    if "summarize" in result.ran:
        # Outside the lease, so a slow collector never holds the session's row. A no-op while
        # AG2_LOGGING["OTEL"] is off; never raises (a failed export waits for the next one).
        from ag2_logging.export import after_summarize

        after_summarize(key)
    return result


def _run_steps(
    key: uuid.UUID,
    until: str,
    unfinished_status: str | None,
    result: ChainResult,
    owner: str,
    session: Session | None = None,
) -> Session:
    """The steps up to ``until``; the row is read again only after ingest changed it (sanitize
    and publish bring the row in hand up to date themselves) and a step follows, and the lease
    renewed once a quarter of it has passed. Returns the row as the last step left it."""
    from ag2_logging.pipeline.ingest import JournalRefused

    if session is None:
        session = _fresh(key)
    leased_at = time.monotonic()
    steps = STEPS[: STEPS.index(until) + 1]
    for step in steps:
        if time.monotonic() - leased_at > LEASE_SECONDS / 4:
            _take_lease(key, owner)
            leased_at = time.monotonic()
        give_way()
        try:
            did = _step(step, session, unfinished_status, result)
        except JournalUnavailable as exc:
            record_attempt(key, str(exc))
            raise
        except JournalRefused as exc:
            mark_failed(key, f"journal refused: {exc}")
            logger.error("ag2_logging refused the journal of session %s: %s", key, exc)
            return session
        if did:
            result.ran.append(step)
            if step == "ingest" and step != steps[-1]:
                session = _fresh(key)  # its totals, which the row in hand does not show
    if "ingest" in steps and session.pipeline_error:
        _clear_error(key)
    return session


def _clear_error(key: uuid.UUID) -> None:
    """The session's journal was ingested: an earlier attempt's error no longer stands."""
    Session.objects.filter(pk=key).exclude(pipeline_error="").update(
        pipeline_error="", pipeline_failed_at=None
    )


def _step(step: str, session: Session, unfinished_status: str | None, result: ChainResult) -> bool:
    """Run one step; True when it did work (and so changed the session's row)."""
    if step == "sanitize":
        return sanitize_step(session)
    if step == "publish":
        return publish_step(session)
    if step == "ingest":
        result.ingest = ingest_step(session, unfinished_status=unfinished_status)
        return result.ingest is not None
    return summarize_step(session)


# -- several sessions at once ---------------------------------------------------------------


def process_sessions(
    session_ids: Sequence[uuid.UUID | str], *, unfinished_status: str | None = None
) -> list[uuid.UUID]:
    """Run the whole chains of several ended sessions, their ingests together in batches
    (``ingest.ingest_journals``: one transaction, one COPY per table); returns the sessions
    whose chain this call ran to the end (summarized).

    Each session keeps its own lease, sanitize, publish and summarize. A session this call does
    not finish (leased by another chain, no journal on this host, already ingested, or any
    failure of its own: refused journal, unreadable file, database error) is left as it was for
    ``process_session`` alone, which does what is left and records its failure its own way.
    ``unfinished_status`` is ``process_session``'s (recovery: ``"interrupted"``).
    """
    from ag2_logging.pipeline import rollups

    keys = list(dict.fromkeys(k if isinstance(k, uuid.UUID) else uuid.UUID(str(k)) for k in session_ids))
    owner = _owner()
    leased: dict[uuid.UUID, Session] = {}
    done: list[uuid.UUID] = []
    try:
        leased = _take_leases(keys, owner)
        with_error: set[uuid.UUID] = set()
        journals = _prepare_all(leased, owner, with_error)
        give_way()
        ingested = _ingest_all(journals, with_error, unfinished_status)
        batch = summarize_batch()
        for start in range(0, len(ingested), batch):
            give_way()
            # Just ingested under these leases; summarize checks the rest under the row locks.
            done += rollups.summarize_sessions(ingested[start : start + batch])
    finally:
        if leased:
            Session.objects.filter(pk__in=list(leased), lease_owner=owner).update(
                lease_owner="", lease_until=None
            )
    from ag2_logging.export import after_summarize  # outside the leases, as process_session does

    for key in done:
        after_summarize(key)
    return done


def _take_leases(keys: list[uuid.UUID], owner: str) -> dict[uuid.UUID, Session]:
    """Lease every session of ``keys`` that is free, for ``owner``, in one ``UPDATE``; the rows
    leased, read once (in the order of ``keys``)."""
    _lease(keys, owner)
    rows = Session.objects.in_bulk(keys)
    return {key: rows[key] for key in keys if key in rows and rows[key].lease_owner == owner}


def _prepare_all(
    leased: dict[uuid.UUID, Session], owner: str, _with_error: set[uuid.UUID]
) -> dict[uuid.UUID, Path]:
    """Sanitize and publish each leased session (``leased``: the rows as the lease read them);
    the local journals of those left to ingest (those with an earlier attempt's error added to
    ``_with_error``)."""
    journals: dict[uuid.UUID, Path] = {}
    for key, row in leased.items():
        try:
            session = _run_steps(key, "publish", None, ChainResult(session_id=str(key)), owner, row)
        except Exception:  # left for process_session alone, which reports it
            logger.debug("ag2_logging: session %s left out of a batch", key, exc_info=True)
            continue
        path = local_journal(session)
        if session.ingested_at is None and session.pipeline_failed_at is None and path is not None:
            journals[key] = path
            if session.pipeline_error:
                _with_error.add(key)
    return journals


def _ingest_all(
    journals: dict[uuid.UUID, Path], with_error: set[uuid.UUID], unfinished_status: str | None
) -> list[uuid.UUID]:
    """Ingest the journals together; the sessions ingested (errors of earlier attempts cleared)."""
    from ag2_logging.pipeline.ingest import IngestResult, ingest_journals

    if not journals:
        return []
    keys = list(journals)
    results = ingest_journals(
        [journals[key] for key in keys], unfinished_status=unfinished_status, expected_session_ids=keys
    )
    ingested = [key for key, result in zip(keys, results, strict=True) if isinstance(result, IngestResult)]
    for key in with_error.intersection(ingested):
        _clear_error(key)
    return ingested


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
