"""Calls, tokens and cost of a parsed legacy log: in total, by model and by session."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ag2_logging.pipeline.legacy.records import LegacyCall, LegacyLog


def _bucket() -> dict[str, Any]:
    return {
        "calls": 0,
        "errors": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "cached_tokens": 0,
        "reasoning_tokens": 0,
        "total_tokens": 0,
        "cost": Decimal(0),
        "ag2_cost": Decimal(0),
        "unpriced_calls": 0,
    }


def _add(bucket: dict[str, Any], call: LegacyCall) -> None:
    bucket["calls"] += 1
    bucket["errors"] += 1 if call.error else 0
    bucket["prompt_tokens"] += call.prompt_tokens
    bucket["completion_tokens"] += call.completion_tokens
    bucket["cached_tokens"] += call.cached_tokens
    bucket["reasoning_tokens"] += call.reasoning_tokens
    bucket["total_tokens"] += call.total_tokens
    if call.cost is None:
        bucket["unpriced_calls"] += 1
    else:
        bucket["cost"] += call.cost
    bucket["ag2_cost"] += call.ag2_cost or Decimal(0)


def _unknown_cost(bucket: dict[str, Any]) -> dict[str, Any]:
    """``cost`` None (unknown) when the bucket has calls and none of them is priced."""
    if bucket["calls"] and bucket["unpriced_calls"] == bucket["calls"]:
        bucket["cost"] = None
    return bucket


def summarize(log: LegacyLog) -> dict[str, Any]:
    """The log's figures: ``calls``, ``errors``, token counts, ``cost`` (ours, USD; None when
    there are calls and none is priced), ``ag2_cost`` (AG2's), ``unpriced_calls``, in total and in
    ``by_model`` / ``by_session``; plus ``sessions``, ``tool_calls``, ``agent_events``, ``lines``
    and ``bad_lines`` (numbers of the malformed lines)."""
    total = _bucket()
    by_model: dict[str, dict[str, Any]] = {}
    by_session: dict[str, dict[str, Any]] = {}
    for session in log.sessions.values():
        for call in session.calls:
            _add(total, call)
            _add(by_model.setdefault(call.model or "(unknown)", _bucket()), call)
            _add(by_session.setdefault(session.key, _bucket()), call)
    return {
        "path": log.path,
        "format": log.format,
        "lines": log.lines,
        "sessions": len([s for s in log.sessions.values() if s.calls or s.described]),
        **_unknown_cost(total),
        "tool_calls": sum(s.tool_calls for s in log.sessions.values()),
        "agent_events": sum(s.agent_events for s in log.sessions.values()),
        "by_model": {k: _unknown_cost(v) for k, v in by_model.items()},
        "by_session": {k: _unknown_cost(v) for k, v in by_session.items()},
        "bad_lines": list(log.bad_lines),
    }
