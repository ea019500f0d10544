"""Read (check, sanitize, parse, price) a legacy log, and ingest it as imported sessions."""

from __future__ import annotations

import logging
import os
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from ag2_logging import pricing
from ag2_logging.pipeline.legacy import identity
from ag2_logging.pipeline.legacy.identity import Known, Matcher, call_id, known_of
from ag2_logging.pipeline.legacy.journal import (
    call_event,
    read_existing,
    session_events,
    start_event,
    write_journal,
)
from ag2_logging.pipeline.legacy.records import LegacyCall, LegacyLog, LegacySession
from ag2_logging.pipeline.legacy.source import Progress, open_source
from ag2_logging.pipeline.legacy.sqlite import read_sqlite
from ag2_logging.pipeline.legacy.summary import summarize
from ag2_logging.pipeline.legacy.text import read_text

logger = logging.getLogger("ag2_logging.legacy_import")

#: Files at least this big get a progress bar on stderr (and so do imports of many sessions).
PROGRESS_MIN_BYTES = 1 << 20
#: Sessions from which the ingest gets a progress bar of its own.
PROGRESS_MIN_SESSIONS = 50


def _dedupe(log: LegacyLog) -> None:
    """Give each call its id from its content, and drop the calls the file repeats (a copied
    line, or a copy with one field damaged: see ``identity``)."""
    seen = Matcher()
    for session in log.sessions.values():
        kept: list[LegacyCall] = []
        for call in session.calls:
            call.uid = call_id(call)
            probe = known_of(call, call.uid)
            if call.uid in seen.used or seen.find(probe) is not None:
                continue
            seen.used.add(call.uid)
            seen.add(probe)
            kept.append(call)
        session.calls = kept


def read_log(
    path: Path | str,
    *,
    in_place: bool = False,
    write: bool = True,
    progress: bool = True,
    stream: IO[str] | None = None,
    progress_min_bytes: int | None = None,
    follow_symlinks: bool = False,
) -> tuple[LegacyLog, Path | None]:
    """Check, sanitize and parse one legacy log; returns it (calls priced, repeated calls dropped)
    and where the sanitized data was written (None with ``write=False``).

    Raises NotAnAG2Log (nothing written) for a file that is not an AG2 log: another kind of
    SQLite database, random bytes, an empty or compressed file, a directory, a FIFO, or a symbolic
    link unless ``follow_symlinks`` (then the copy goes beside the link, ``in_place`` rewrites
    the link's target)."""
    source = open_source(path, follow_symlinks=follow_symlinks)
    threshold = PROGRESS_MIN_BYTES if progress_min_bytes is None else progress_min_bytes
    bar = Progress(source.size, source.path.name, stream, enabled=progress and source.size >= threshold)
    try:
        if source.kind == "sqlite":
            log, written = read_sqlite(source, in_place=in_place, write=write, progress=bar)
        else:
            log, written = read_text(source, in_place=in_place, write=write, progress=bar)
    finally:
        bar.close()
    _dedupe(log)
    _price(log)
    return log, written


def _price(log: LegacyLog) -> None:
    from ag2_logging.conf import conf
    from ag2_logging.pricing import cache

    overrides = cache.read()  # this process may never have opened a session: read the rows now
    for call in log.calls:
        usage = pricing.normalize_usage(
            call.provider,
            call.prompt_tokens,
            call.completion_tokens,
            call.cached_tokens,
            call.reasoning_tokens,
            0,
        )
        call.prompt_tokens, call.completion_tokens = usage.prompt_tokens, usage.completion_tokens
        call.cached_tokens, call.reasoning_tokens = usage.cached_tokens, usage.reasoning_tokens
        # The cost-zero rules (failed calls, AG2 cache hits) are price_call's, as for the recorder.
        if call.usage_missing and not pricing.costs_nothing(error=call.error, is_cached=call.is_cached):
            call.cost, call.price_status = None, "no_usage"  # no usage reported: unknown, not 0
            continue
        result = pricing.price_call(
            call.provider,
            call.model,
            usage,
            at=call.ended_at or datetime.now(UTC),
            overrides=overrides,
            local_rate=conf.resolved.local_model_rate,
            error=call.error,
            is_cached=call.is_cached,
        )
        call.cost, call.price_status = result.cost, result.status


def summarize_runtime_log(path: Path | str, *, follow_symlinks: bool = False) -> dict[str, Any]:
    """Calls, tokens and cost (ours, priced with genai-prices, and AG2's) of an old AG2 log, in
    total, by model and by session; ``bad_lines`` lists the numbers of malformed lines (see
    ``summary.summarize`` for the keys; costs are Decimal USD, ``cost`` None when unknown).

    Reads the file only (it writes nothing; secrets are never part of a summary). Raises
    NotAnAG2Log for a file that is not an AG2 log (see ``read_log``)."""
    log, _ = read_log(path, write=False, progress=False, follow_symlinks=follow_symlinks)
    return summarize(log)


#: The replaced system's name for :func:`summarize_runtime_log`.
summarize_autogen_runtime_file = summarize_runtime_log


# -- ingest -----------------------------------------------------------------------------------------


@dataclass
class ImportResult:
    """What ``import_log`` did: sessions and calls read, and how many of each were new."""

    path: str
    format: str
    sanitized_path: str | None
    sessions: int = 0
    sessions_created: int = 0
    calls: int = 0
    calls_created: int = 0
    bad_lines: list[int] = field(default_factory=list)
    redactions: dict[str, int] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Plan:
    """Where one parsed session goes: its session id, and its calls with their ids."""

    session_id: uuid.UUID
    calls: list[tuple[LegacyCall, uuid.UUID]]


def _plan(session: LegacySession, known: Matcher) -> _Plan:
    """Calls already imported keep their rows' ids and bring the session along: a session whose
    calls were imported before (under another name: its session line damaged) is that session.
    Calls already imported into another session are left there."""
    votes: Counter[uuid.UUID] = Counter()
    assigned: list[tuple[LegacyCall, Known | None]] = []
    for call in session.calls:
        call.uid = call.uid or call_id(call)
        found = known.find(known_of(call, call.uid))
        if found is not None and found.session_id is not None:
            votes[found.session_id] += 1
        assigned.append((call, found))
    first = session.calls[0].uid if session.calls else None
    sid = votes.most_common(1)[0][0] if votes else identity.session_id(session, first)
    calls = [
        (call, found.id if found is not None else call.uid)
        for call, found in assigned
        if call.uid is not None and (found is None or found.session_id == sid)
    ]
    return _Plan(sid, calls)


def _header(
    session: LegacySession,
    session_id: uuid.UUID,
    path: Path,
    overrides: tuple[str | None, str | None],
    now: datetime,
) -> dict[str, Any]:
    """The ``session_start`` header the recorder writes (``SessionRecorder.header``'s keys)."""
    from ag2_logging.conf import conf

    enterprise_id, workflow_name = overrides
    starts = [t for c in session.calls if (t := c.started_at or c.ended_at) is not None]
    return {
        "session_id": str(session_id),
        "chat_id": (session.chat_id or session.key)[:255],
        "workflow_name": (workflow_name if workflow_name is not None else session.workflow_name)[:255],
        "enterprise_id": (enterprise_id if enterprise_id is not None else session.enterprise_id)[:255],
        "parent_id": None,
        "started_at": (session.started_at or min(starts, default=now)).isoformat(),
        "host": conf.resolved.host_name,
        "pid": os.getpid(),
        "journal_path": str(path),
        "user_id": None,  # old logs name no user, tags or metadata
        "tags": [],
        "metadata": {},
    }


def _write_session(
    session: LegacySession, plan: _Plan, overrides: tuple[str | None, str | None], now: datetime
) -> Path:
    """The session's journal, ``JOURNAL_DIR/imported/<session>.jsonl``: an earlier import's
    events (kept as they were) and this log's calls that it lacks. Rewritten only when it grows."""
    from ag2_logging.conf import conf
    from ag2_logging.models import Session

    path = conf.resolved.journal_dir / "imported" / f"{plan.session_id}.jsonl"
    old_start, old_calls, old_totals = read_existing(path)
    old_ids = {str(event.get("id")) for event in old_calls}
    new_calls = [call_event(c, uid, now) for c, uid in plan.calls if str(uid) not in old_ids]
    if old_start is not None and not new_calls:
        return path
    before = Session.objects.filter(pk=plan.session_id).values_list("redactions", flat=True).first()
    # Counts of a re-import of the sanitized copy would be empty: the first import's stay.
    redactions = old_totals.get("redactions") or before or dict(session.redactions)
    session.tool_calls = max(session.tool_calls, int(old_totals.get("tool_calls") or 0))
    session.agent_events = max(session.agent_events, int(old_totals.get("agent_events") or 0))
    start = old_start or start_event(_header(session, plan.session_id, path, overrides, now))
    write_journal(path, session_events(start, old_calls + new_calls, session, redactions))
    return path


def _ingest_session(
    session: LegacySession, plan: _Plan, overrides: tuple[str | None, str | None], now: datetime
) -> tuple[bool, int]:
    """Write and ingest one session's journal, then summarize it: (created, calls created)."""
    from ag2_logging.models import LLMCall, Session
    from ag2_logging.pipeline.ingest import ingest_journal
    from ag2_logging.pipeline.rollups import summarize_session

    sid = plan.session_id
    existed = Session.objects.filter(pk=sid).exists()
    rows_before = LLMCall.objects.filter(session_id=sid).count()
    path = _write_session(session, plan, overrides, now)
    ingest_journal(path, expected_session_id=sid)
    Session.objects.filter(pk=sid).update(source=Session.Source.IMPORTED, sanitized_at=now)
    summarize_session(sid)
    return not existed, LLMCall.objects.filter(session_id=sid).count() - rows_before


def ingest_log(
    log: LegacyLog,
    *,
    enterprise_id: str | None = None,
    workflow_name: str | None = None,
    progress: Progress | None = None,
) -> tuple[int, int, int]:
    """Rows for a parsed (sanitized) legacy log: (sessions, sessions created, calls created).

    Each session becomes a journal, ``JOURNAL_DIR/imported/<session>.jsonl``, in the recorder's
    format, which then takes the one path every session takes: ``ingest_journal``, then
    ``summarize_session`` (so the reports see it at once). A call already imported (from this
    file, a copy of it, a damaged copy) is never added again (see ``identity``)."""
    known = Matcher(identity.imported_calls(log.calls))
    sessions = [s for s in log.sessions.values() if s.calls or s.described]
    if progress is not None:
        progress.total = max(1, len(sessions))
    created_sessions = created_calls = 0
    now = datetime.now(UTC)
    for done, session in enumerate(sessions, start=1):
        created, calls = _ingest_session(session, _plan(session, known), (enterprise_id, workflow_name), now)
        created_sessions += created
        created_calls += calls
        if progress is not None:
            progress.update(done)
    return len(sessions), created_sessions, created_calls


def import_log(
    path: Path | str,
    *,
    in_place: bool = False,
    enterprise_id: str | None = None,
    workflow_name: str | None = None,
    progress: bool = True,
    stream: IO[str] | None = None,
    progress_min_bytes: int | None = None,
    follow_symlinks: bool = False,
) -> ImportResult:
    """Check, sanitize, summarize and ingest one legacy log (the ``ag2_logging_import`` command).

    Raises NotAnAG2Log (nothing written, nothing imported) for a file that is not an AG2 log;
    see ``read_log``. Importing a file again, or a copy of it (sanitized, damaged, with lines
    dropped, repeated or reordered), adds no call already imported."""
    log, written = read_log(
        path,
        in_place=in_place,
        progress=progress,
        stream=stream,
        progress_min_bytes=progress_min_bytes,
        follow_symlinks=follow_symlinks,
    )
    many = progress and len(log.sessions) >= PROGRESS_MIN_SESSIONS
    bar = Progress(1, f"{Path(path).name}: sessions", stream, enabled=many)
    try:
        sessions, created_sessions, created_calls = ingest_log(
            log, enterprise_id=enterprise_id, workflow_name=workflow_name, progress=bar
        )
    finally:
        bar.close()
    if log.bad_lines:
        logger.warning(
            "ag2_logging import skipped %d malformed line(s) in %s: %s",
            len(log.bad_lines),
            path,
            log.bad_lines[:20],
        )
    return ImportResult(
        path=str(path),
        format=log.format,
        sanitized_path=str(written) if written else None,
        sessions=sessions,
        sessions_created=created_sessions,
        calls=len(log.calls),
        calls_created=created_calls,
        bad_lines=list(log.bad_lines),
        redactions=log.redactions,
        summary=summarize(log),
    )
