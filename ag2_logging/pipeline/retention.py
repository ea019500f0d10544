"""Retention: delete raw rows past ``RETENTION_DAYS`` and journals past ``JOURNAL_RETENTION_DAYS``.

``manage.py ag2_logging_prune`` and the ``ag2_logging.apply_retention`` task are both thin over
``apply_retention()``. Rows go through ``SessionQuerySet.older_than()`` and
``delete_in_batches()``: finished sessions (never running ones) with their calls, events and
tool calls, one transaction per batch, plus unattributed calls, events and tool calls of the same
age. ``DailyRollup`` and ``ModelDayRollup`` rows are kept: that is what rollups are for; a session
not yet rolled up is rolled up before its rows go, so the reports never lose it. A session whose
journal has not reached the database yet (``ingested_at`` empty) is kept, with its journal: the
journal is its only record.

Journals are pruned on the host that runs retention (they live on its disk): the date directories
under ``JOURNAL_DIR`` old enough to matter are walked, and a journal goes when its session is
finished, ingested and older than the limit; with ``JOURNAL_ARCHIVE_STORAGE`` it is copied to that
``STORAGES`` alias first (``ag2_logging/journals/<YYYY-MM-DD>/<session>.jsonl``) and stays when the
copy fails. A journal whose session row is gone (pruned by row retention) goes once it is past
both limits; a journal of a running or not yet ingested session never goes. Empty date
directories are removed. Unattributed journals (``JOURNAL_DIR/unattributed``) are not touched.

Everything is idempotent: a second run finds nothing more to do, and an interrupted run is
finished by the next one.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from django.core.files import File
from django.core.files.storage import Storage, storages
from django.db.models import Q
from django.utils import timezone

from ag2_logging.conf import conf
from ag2_logging.models import AgentEvent, LLMCall, Session, SpilledEvent, ToolCall
from ag2_logging.pipeline import rollups
from ag2_logging.querysets import BatchDeletion, SessionQuerySet, delete_in_batches

logger = logging.getLogger("ag2_logging.retention")

ARCHIVE_PREFIX = "ag2_logging/journals"
#: Journals looked up in the database per query.
LOOKUP_CHUNK = 500

#: ``progress(label)`` returns the ``(done, total)`` callback of one phase (e.g. a ProgressBar).
ProgressFactory = Callable[[str], Callable[[int, int], None]]


@dataclass
class RetentionResult:
    """What was deleted (or, with ``dry_run``, would be)."""

    dry_run: bool = False
    rows_cutoff: dt.datetime | None = None
    journals_cutoff: dt.datetime | None = None
    sessions: int = 0
    #: All deleted calls: those of the sessions plus the unattributed ones.
    llm_calls: int = 0
    unattributed_calls: int = 0
    agent_events: int = 0
    tool_calls: int = 0
    #: Sessions rolled up just before their rows were deleted (the pipeline had not done it yet).
    summarized: int = 0
    #: Finished sessions past the limit kept because their journal is not ingested yet.
    not_ingested: int = 0
    #: Transactions the row deletions ran in.
    batches: int = 0
    #: Journal lines kept in the database (``SpilledEvent``) of sessions deleted before.
    spilled_lines: int = 0
    journals: int = 0
    #: Of ``journals``, those copied to JOURNAL_ARCHIVE_STORAGE first.
    archived: int = 0
    archive_failures: int = 0
    #: Journals past the limit kept: session running, not ingested, or ended within the limit.
    journals_kept: int = 0
    directories: int = 0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("rows_cutoff", "journals_cutoff"):
            out[key] = out[key].isoformat() if out[key] is not None else None
        return out


def apply_retention(
    *,
    dry_run: bool = False,
    batch_size: int = 1_000,
    now: dt.datetime | None = None,
    progress: ProgressFactory | None = None,
) -> RetentionResult:
    """Apply ``RETENTION_DAYS`` and ``JOURNAL_RETENTION_DAYS`` (each ``None``: keep forever)."""
    settings = conf.resolved
    now = now or timezone.now()
    result = RetentionResult(dry_run=dry_run)
    # Journals first: deciding about a journal needs its session row, which row retention may delete.
    if settings.journal_retention_days is not None:
        prune_journals(
            settings.journal_retention_days,
            rows_days=settings.retention_days,
            storage_alias=settings.journal_archive_storage,
            now=now,
            dry_run=dry_run,
            progress=progress,
            result=result,
        )
    if settings.retention_days is not None:
        prune_rows(
            settings.retention_days,
            now=now,
            batch_size=batch_size,
            dry_run=dry_run,
            progress=progress,
            result=result,
        )
    return result


# -- rows ------------------------------------------------------------------------------------------


def expired_sessions(days: float, *, now: dt.datetime | None = None) -> SessionQuerySet:
    """The sessions row retention deletes: finished, ingested, ended more than ``days`` ago."""
    return Session.objects.older_than(days, now=now).ingested()


def _unattributed(days: float, now: dt.datetime) -> tuple[Any, Any, Any]:
    cutoff = now - dt.timedelta(days=days)
    calls = LLMCall.objects.unattributed().older_than(days, now=now)
    events = AgentEvent.objects.filter(session__isnull=True, created_at__lt=cutoff)
    tools = ToolCall.objects.filter(session__isnull=True).filter(
        Q(ended_at__lt=cutoff) | Q(ended_at__isnull=True, started_at__lt=cutoff)
    )
    return calls, events, tools


def prune_rows(
    days: float,
    *,
    now: dt.datetime | None = None,
    batch_size: int = 1_000,
    dry_run: bool = False,
    progress: ProgressFactory | None = None,
    result: RetentionResult | None = None,
) -> RetentionResult:
    """Delete finished sessions older than ``days`` with their rows, and unattributed rows."""
    now = now or timezone.now()
    result = result if result is not None else RetentionResult(dry_run=dry_run)
    result.rows_cutoff = now - dt.timedelta(days=days)
    sessions = expired_sessions(days, now=now)
    calls, events, tools = _unattributed(days, now)
    result.not_ingested = Session.objects.older_than(days, now=now).filter(ingested_at__isnull=True).count()
    if dry_run:
        ids = sessions.values("pk")
        result.sessions = sessions.count()
        result.summarized = sessions.filter(summarized_at__isnull=True).count()
        result.unattributed_calls = calls.count()
        result.llm_calls = LLMCall.objects.filter(session__in=ids).count() + result.unattributed_calls
        result.agent_events = AgentEvent.objects.filter(session__in=ids).count() + events.count()
        result.tool_calls = ToolCall.objects.filter(session__in=ids).count() + tools.count()
        return result

    # Roll up what the pipeline has not (a failed summarize task): the totals outlive the rows.
    for session_id in list(sessions.filter(summarized_at__isnull=True).values_list("pk", flat=True)):
        if rollups.summarize_session(session_id):
            result.summarized += 1

    def run(label: str, deletion: Callable[[Callable[[int, int], None] | None], BatchDeletion]) -> None:
        done = deletion(progress(label) if progress is not None else None)
        result.batches += done.batches
        result.sessions += done.deleted[Session._meta.label]
        result.llm_calls += done.deleted[LLMCall._meta.label]
        result.agent_events += done.deleted[AgentEvent._meta.label]
        result.tool_calls += done.deleted[ToolCall._meta.label]

    # Only rolled-up sessions: one ingested after the loop above waits for the next run, rather
    # than leaving the rollups without it.
    rolled_up = sessions.filter(summarized_at__isnull=False)
    run("sessions", lambda bar: rolled_up.delete_in_batches(batch_size, progress=bar))
    before = result.llm_calls
    run("unattributed calls", lambda bar: calls.delete_in_batches(batch_size, progress=bar))
    result.unattributed_calls = result.llm_calls - before
    run("unattributed events", lambda bar: delete_in_batches(events, batch_size, progress=bar))
    run("unattributed tool calls", lambda bar: delete_in_batches(tools, batch_size, progress=bar))
    # Journal lines that went to the database (a full disk) go with their session's rows.
    orphaned = SpilledEvent.objects.filter(created_at__lt=result.rows_cutoff).exclude(
        session_id__in=Session.objects.values("pk")
    )
    result.spilled_lines = delete_in_batches(orphaned, batch_size).deleted.get(SpilledEvent._meta.label, 0)
    return result


# -- journals --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Journal:
    day: dt.date
    path: Path
    session_id: uuid.UUID


def _date_dirs(root: Path, last_day: dt.date) -> list[tuple[dt.date, Path]]:
    """``JOURNAL_DIR/<YYYY-MM-DD>`` directories up to ``last_day``, oldest first."""
    found = []
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return []
    for entry in entries:
        try:
            day = dt.date.fromisoformat(entry.name)
        except ValueError:
            continue  # "unattributed" and anything else that is not a date directory
        if len(entry.name) == 10 and day <= last_day and entry.is_dir(follow_symlinks=False):
            found.append((day, Path(entry.path)))
    return sorted(found)


def _journals(directory: Path, day: dt.date) -> Iterator[_Journal]:
    for entry in os.scandir(directory):
        if not entry.name.endswith(".jsonl") or not entry.is_file(follow_symlinks=False):
            continue  # temporary files of the sanitize pass, anything not a journal
        try:
            session_id = uuid.UUID(entry.name[: -len(".jsonl")])
        except ValueError:
            continue
        yield _Journal(day, Path(entry.path), session_id)


def archive_name(journal: Path, day: dt.date) -> str:
    return f"{ARCHIVE_PREFIX}/{day.isoformat()}/{journal.name}"


def archive_journal(storage: Storage, journal: Path, day: dt.date) -> str:
    """Copy a journal to ``storage``; idempotent (a copy of the same size is not made twice)."""
    name = archive_name(journal, day)
    size = journal.stat().st_size
    if storage.exists(name) and storage.size(name) == size:
        return name
    with open(journal, "rb") as fh:
        # A different file under that name is kept: the storage picks another name for this one.
        return storage.save(name, File(fh, name=journal.name))


def prune_journals(
    days: float,
    *,
    rows_days: float | None = None,
    storage_alias: str | None = None,
    now: dt.datetime | None = None,
    dry_run: bool = False,
    progress: ProgressFactory | None = None,
    result: RetentionResult | None = None,
) -> RetentionResult:
    """Delete (after archiving, with ``storage_alias``) this host's journals of sessions older
    than ``days``; ``rows_days`` is the row retention, for journals whose session row is gone."""
    now = now or timezone.now()
    result = result if result is not None else RetentionResult(dry_run=dry_run)
    cutoff = now - dt.timedelta(days=days)
    result.journals_cutoff = cutoff
    # A session in directory D started on day D (UTC), so it ended after D's midnight: only
    # directories up to the cutoff's day can hold journals old enough.
    dirs = _date_dirs(conf.resolved.journal_dir, cutoff.date())
    # A journal without a session row is deleted only when its whole day is past both limits: its
    # row, if it ever had one, was then deleted by row retention (which keeps non-ingested sessions).
    orphan_cutoff = min(cutoff, now - dt.timedelta(days=rows_days)) if rows_days is not None else None
    storage = storages[storage_alias] if storage_alias else None  # a bad alias fails here, loudly
    bar = progress("journals (days)") if progress is not None and dirs else None
    if bar is not None:
        bar(0, len(dirs))
    for done, (day, directory) in enumerate(dirs, start=1):
        # Directory by directory (listed before anything in it is deleted), LOOKUP_CHUNK journals
        # per query: a backlog of millions of journals is never held in memory at once.
        for chunk in _chunks(iter(list(_journals(directory, day))), LOOKUP_CHUNK):
            _prune_chunk(chunk, days, now, orphan_cutoff, storage, dry_run, result)
        if not dry_run:
            try:
                directory.rmdir()  # only succeeds when empty
            except OSError:
                pass
            else:
                result.directories += 1
        if bar is not None:
            bar(done, len(dirs))
    return result


def _chunks(items: Iterator[_Journal], size: int) -> Iterator[list[_Journal]]:
    chunk: list[_Journal] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _prune_chunk(
    chunk: list[_Journal],
    days: float,
    now: dt.datetime,
    orphan_cutoff: dt.datetime | None,
    storage: Storage | None,
    dry_run: bool,
    result: RetentionResult,
) -> None:
    ids = [journal.session_id for journal in chunk]
    known = set(Session.objects.filter(pk__in=ids).values_list("pk", flat=True))
    expired = set(expired_sessions(days, now=now).filter(pk__in=ids).values_list("pk", flat=True))
    for journal in chunk:
        if journal.session_id in expired:
            go = True
        elif journal.session_id in known:
            go = False  # running, not ingested yet, or ended within the limit
        else:
            day_end = dt.datetime.combine(journal.day + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
            go = orphan_cutoff is not None and day_end <= orphan_cutoff
        if not go:
            result.journals_kept += 1
        elif dry_run:
            result.journals += 1
            result.archived += storage is not None
        else:
            _remove_journal(journal, storage, result)


def _remove_journal(journal: _Journal, storage: Storage | None, result: RetentionResult) -> None:
    if storage is not None:
        try:
            archive_journal(storage, journal.path, journal.day)
        except FileNotFoundError:
            return  # deleted meanwhile (another prune run)
        except Exception:
            # Any storage backend error (network, permissions, quota): keep the journal for the
            # next run rather than lose it, and go on with the others.
            result.archive_failures += 1
            logger.exception("ag2_logging could not archive journal %s; it is kept", journal.path)
            return
        result.archived += 1
    try:
        journal.path.unlink()
    except FileNotFoundError:
        return
    result.journals += 1
