"""A legacy session as the journal the recorder writes: ``session_start``, one ``llm_call`` per
call, ``session_end`` (same keys as the recorder's events)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from ag2_logging.capture.journal import read_journal
from ag2_logging.events import Totals
from ag2_logging.pipeline.legacy.files import replacing
from ag2_logging.pipeline.legacy.identity import INVOCATION_CHARS
from ag2_logging.pipeline.legacy.records import FINISHED, LegacyCall, LegacySession


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def call_event(call: LegacyCall, call_uuid: uuid.UUID, fallback: datetime) -> dict[str, Any]:
    """The ``llm_call`` event the recorder would have written for this call (``seq`` added later)."""
    ended = call.ended_at or call.started_at or fallback
    return {
        "type": "llm_call",
        "id": str(call_uuid),
        "ts": ended.isoformat(),
        "generation": "classic",
        "invocation_id": call.key[:INVOCATION_CHARS],
        "agent_name": call.agent_name,
        "provider": call.provider,
        "model": call.model,
        "response_id": call.response_id,
        "prompt_tokens": call.prompt_tokens,
        "completion_tokens": call.completion_tokens,
        "cached_tokens": call.cached_tokens,
        "cache_write_tokens": 0,
        "reasoning_tokens": call.reasoning_tokens,
        "total_tokens": call.total_tokens,
        "cost": str(call.cost) if call.cost is not None else None,
        "price_status": call.price_status,
        "ag2_cost": str(call.ag2_cost) if call.ag2_cost is not None else None,
        "latency_ms": (
            (call.ended_at - call.started_at).total_seconds() * 1000.0
            if call.started_at and call.ended_at
            else None
        ),
        "is_cached": call.is_cached,
        "status": "error" if call.error else "success",
        "error": call.error,
        "attempt": 1,
        "retries": 0,
        "started_at": _iso(call.started_at),
        "ended_at": ended.isoformat(),
        "request": call.request,
        "response": call.response,
    }


def totals(
    calls: Iterable[dict[str, Any]], session: LegacySession, redactions: dict[str, int]
) -> dict[str, Any]:
    """``session_end.totals`` of these ``llm_call`` events. ``total_cost`` is the sum of the priced
    calls' costs: ``"0"`` without calls, None (unknown) when there are calls and none is priced."""
    sums = Totals(tool_calls=session.tool_calls, agent_events=session.agent_events, redactions=redactions)
    priced = 0
    for event in calls:
        sums.call_count += 1
        sums.error_count += event.get("status") == "error"
        for key in (
            "prompt_tokens",
            "completion_tokens",
            "cached_tokens",
            "reasoning_tokens",
            "total_tokens",
        ):
            setattr(sums, key, getattr(sums, key) + int(event.get(key) or 0))
        if event.get("cost") is None:
            sums.unpriced_calls += 1
        else:
            sums.total_cost += Decimal(str(event["cost"]))
            priced += 1
    result = sums.as_dict()
    if sums.call_count and not priced:
        result["total_cost"] = None
    return result


def session_events(
    start: dict[str, Any], calls: list[dict[str, Any]], session: LegacySession, redactions: dict[str, int]
) -> list[dict[str, Any]]:
    """The whole journal: ``start`` (a ``session_start`` event), ``calls`` (``llm_call`` events,
    numbered here) and the closing ``session_end`` with their totals."""
    started = datetime.fromisoformat(start["session"]["started_at"])
    ends = [datetime.fromisoformat(e["ended_at"]) for e in calls if e.get("ended_at")]
    ended = max([session.ended_at or started, *ends])
    status = session.status if session.status in FINISHED else "completed"
    events = [{**start, "seq": 1}] + [{**event, "seq": n} for n, event in enumerate(calls, start=2)]
    events.append(
        {
            "type": "session_end",
            "id": start["id"],
            "ts": _iso(ended),
            "status": status,
            "error": "",
            "ended_at": _iso(ended),
            "totals": totals(calls, session, redactions),
            "seq": len(events) + 1,
        }
    )
    return events


def start_event(header: dict[str, Any]) -> dict[str, Any]:
    """The ``session_start`` event of a header (``SessionRecorder.header``'s keys)."""
    return {
        "type": "session_start",
        "id": header["session_id"],
        "ts": header["started_at"],
        "session": header,
    }


def read_existing(path: Path) -> tuple[dict[str, Any] | None, list[dict[str, Any]], dict[str, Any]]:
    """An earlier import's journal: its ``session_start``, its ``llm_call`` events and its
    closing totals (all empty when there is no such file)."""
    if not path.exists():
        return None, [], {}
    start: dict[str, Any] | None = None
    calls: list[dict[str, Any]] = []
    end_totals: dict[str, Any] = {}
    for line in read_journal(path):
        event = line.event
        kind = event.get("type") if isinstance(event, dict) else None
        if kind == "session_start" and start is None and isinstance(event, dict):
            start = {k: v for k, v in event.items() if k != "seq"}
        elif kind == "llm_call" and isinstance(event, dict):
            calls.append({k: v for k, v in event.items() if k != "seq"})
        elif kind == "session_end" and isinstance(event, dict) and isinstance(event.get("totals"), dict):
            end_totals = event["totals"]
    return start, calls, end_totals


def write_journal(path: Path, events: list[dict[str, Any]]) -> None:
    """Write the whole journal at once (a new file under a random name, fsync, rename:
    ``files.replacing``, mode 0600 as the recorder's journals): a reader never sees half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as (fh, _tmp):
        fh.write(b"".join(orjson.dumps(e, default=str) + b"\n" for e in events))
