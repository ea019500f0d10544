"""Journal -> rows: LLMCall, AgentEvent and ToolCall in bulk, then the session's totals.

Idempotent: rows take the journal event's id as primary key and are inserted with
``ignore_conflicts``, and totals are recomputed from the rows, so ingesting a journal twice (a
re-delivered task, recovery after a crash) yields the same rows and the same totals.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.db import transaction

from ag2_logging.journal import read_journal
from ag2_logging.models import AgentEvent, LLMCall, Session, ToolCall

logger = logging.getLogger("ag2_logging.ingest")

BATCH_SIZE = 1_000


@dataclass
class IngestResult:
    path: str
    session_id: uuid.UUID | None = None
    llm_calls: int = 0
    agent_events: int = 0
    tool_calls: int = 0
    bad_lines: list[int] = field(default_factory=list)
    finished: bool = False


def _dt(value: Any) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _session_fields(header: dict[str, Any]) -> dict[str, Any]:
    parent = header.get("parent_id")
    return {
        "chat_id": header.get("chat_id") or "",
        "workflow_name": header.get("workflow_name") or "",
        "enterprise_id": header.get("enterprise_id") or "",
        "parent_id": uuid.UUID(parent) if parent else None,
        "started_at": _dt(header.get("started_at")) or datetime.now(UTC),
        "host": header.get("host") or "",
        "pid": header.get("pid"),
        "journal_path": header.get("journal_path") or "",
    }


def _llm_call(event: dict[str, Any], session_id: uuid.UUID | None) -> LLMCall:
    return LLMCall(
        id=uuid.UUID(event["id"]),
        session_id=session_id,
        seq=int(event.get("seq") or 0),
        invocation_id=str(event.get("invocation_id") or "")[:64],
        agent_name=str(event.get("agent_name") or "")[:255],
        provider=str(event.get("provider") or "")[:64],
        model=str(event.get("model") or "")[:255],
        response_id=str(event.get("response_id") or "")[:255],
        prompt_tokens=int(event.get("prompt_tokens") or 0),
        completion_tokens=int(event.get("completion_tokens") or 0),
        cached_tokens=int(event.get("cached_tokens") or 0),
        cache_write_tokens=int(event.get("cache_write_tokens") or 0),
        reasoning_tokens=int(event.get("reasoning_tokens") or 0),
        total_tokens=int(event.get("total_tokens") or 0),
        cost=_dec(event.get("cost")),
        price_status=event.get("price_status") or LLMCall.PriceStatus.UNKNOWN,
        ag2_cost=_dec(event.get("ag2_cost")),
        latency_ms=event.get("latency_ms"),
        is_cached=bool(event.get("is_cached")),
        status=event.get("status") or LLMCall.Status.SUCCESS,
        error=str(event.get("error") or ""),
        attempt=int(event.get("attempt") or 1),
        retries=int(event.get("retries") or 0),
        started_at=_dt(event.get("started_at")),
        ended_at=_dt(event.get("ended_at") or event.get("ts")),
        request=event.get("request"),
        response=event.get("response"),
    )


def _agent_event(event: dict[str, Any], session_id: uuid.UUID | None) -> AgentEvent:
    return AgentEvent(
        id=uuid.UUID(event["id"]),
        session_id=session_id,
        seq=int(event.get("seq") or 0),
        agent_name=str(event.get("agent_name") or "")[:255],
        name=str(event.get("name") or "")[:255],
        data=event.get("data"),
        error=str(event.get("error") or ""),
        duration_ms=event.get("duration_ms"),
        created_at=_dt(event.get("ts")) or datetime.now(UTC),
    )


def _tool_call(event: dict[str, Any], session_id: uuid.UUID | None) -> ToolCall:
    summary = event.get("result_summary")
    return ToolCall(
        id=uuid.UUID(event["id"]),
        session_id=session_id,
        seq=int(event.get("seq") or 0),
        agent_name=str(event.get("agent_name") or "")[:255],
        name=str(event.get("name") or "")[:255],
        arguments=event.get("arguments"),
        result_summary=summary if isinstance(summary, str) else str(summary or ""),
        duration_ms=event.get("duration_ms"),
        error=str(event.get("error") or ""),
        started_at=_dt(event.get("started_at")),
        ended_at=_dt(event.get("ended_at") or event.get("ts")),
    )


_BUILDERS = {"llm_call": _llm_call, "agent_event": _agent_event, "tool_call": _tool_call}
_MODELS: dict[str, type[LLMCall] | type[AgentEvent] | type[ToolCall]] = {
    "llm_call": LLMCall,
    "agent_event": AgentEvent,
    "tool_call": ToolCall,
}


def _bulk(model: Any, rows: Iterable[Any]) -> None:
    model.objects.bulk_create(list(rows), batch_size=BATCH_SIZE, ignore_conflicts=True)


def refresh_session_totals(session: Session) -> None:
    totals = LLMCall.objects.for_session(session.pk).totals()
    for key, value in totals.items():
        setattr(session, key, value if value is not None else (Decimal(0) if key == "total_cost" else 0))


def ingest_journal(path: Path | str, *, unfinished_status: str | None = None) -> IngestResult:
    """Ingest one journal file. ``unfinished_status`` (e.g. ``"interrupted"``) is given to a
    session whose journal has no closing line; without it such a session keeps its status."""
    result = IngestResult(path=str(path))
    header: dict[str, Any] | None = None
    end: dict[str, Any] | None = None
    pending: dict[str, list[Any]] = {kind: [] for kind in _BUILDERS}
    raw_events: list[dict[str, Any]] = []
    for line in read_journal(path):
        event = line.event
        if event is None:
            result.bad_lines.append(line.lineno)
            continue
        kind = event["type"]
        if kind == "session_start":
            header = event.get("session") or {}
        elif kind == "session_end":
            end = event
        elif kind in _BUILDERS:
            raw_events.append(event)
        else:
            result.bad_lines.append(line.lineno)
    session_id = uuid.UUID(header["session_id"]) if header and header.get("session_id") else None
    result.session_id = session_id
    result.finished = end is not None
    for event in raw_events:
        try:
            pending[event["type"]].append(_BUILDERS[event["type"]](event, session_id))
        except (KeyError, ValueError, TypeError, ArithmeticError):
            result.bad_lines.append(int(event.get("seq") or 0))
    with transaction.atomic():
        session = None
        if header is not None and session_id is not None:
            session, _ = Session.objects.select_for_update().get_or_create(
                id=session_id, defaults=_session_fields(header)
            )
        for kind, rows in pending.items():
            _bulk(_MODELS[kind], rows)
        result.llm_calls = len(pending["llm_call"])
        result.agent_events = len(pending["agent_event"])
        result.tool_calls = len(pending["tool_call"])
        if session is not None:
            if end is not None:
                session.status = end.get("status") or Session.Status.COMPLETED
                session.ended_at = _dt(end.get("ended_at") or end.get("ts"))
                session.error = str(end.get("error") or "")
                end_totals = end.get("totals") or {}
                session.dropped_events = int(end_totals.get("dropped_events") or 0)
                session.redactions = end_totals.get("redactions") or {}
            elif unfinished_status and session.status == Session.Status.RUNNING:
                session.status = unfinished_status
                session.ended_at = session.ended_at or _dt(raw_events[-1]["ts"] if raw_events else None)
            refresh_session_totals(session)
            session.bad_journal_lines = len(result.bad_lines)
            session.ingested_at = datetime.now(UTC)
            session.save()
    if result.bad_lines:
        logger.warning(
            "ag2_logging skipped %d bad line(s) in %s: %s", len(result.bad_lines), path, result.bad_lines[:20]
        )
    return result


def ingest_session(session_id: uuid.UUID | str) -> IngestResult | None:
    """Ingest the journal of one session (the Celery task's body)."""
    session = Session.objects.filter(pk=session_id).only("journal_path").first()
    if session is None or not session.journal_path:
        logger.error("ag2_logging: no journal known for session %s", session_id)
        return None
    path = Path(session.journal_path)
    if not path.exists():
        logger.error("ag2_logging: journal %s of session %s is missing", path, session_id)
        return None
    return ingest_journal(path)
