"""Who an imported call is: an id from its content, and the calls of earlier imports it repeats.

A call's id is ``uuid5`` over its normalized record (``invocation_id``, start and end times,
response id, model, agent, token counts, AG2 cache flag, error): never its position in the file,
so a copy of a log with lines dropped, repeated or reordered gives its calls the same ids. Two
genuinely identical calls made at different times differ in their times and invocation ids.

A corrupted copy can also change a field of a call (a flipped byte inside a value). A call is
then recognized as one already imported when it shares at least two of its invocation id,
response id, start time and end time with it: one damaged field leaves at least two. A call of
AG2's cache (same response, new invocation, other times) or a second attempt of one invocation
(same invocation id, other times and response) shares one, and stays a call of its own.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from ag2_logging.pipeline.legacy.records import LegacyCall, LegacySession

NAMESPACE = uuid.UUID("5d7f3c2e-2a41-4f0e-9a63-0d8f5b1e7c44")
#: Longest invocation id kept (``LLMCall.invocation_id``).
INVOCATION_CHARS = 64
#: Ids asked for per query (under every backend's limit of query parameters).
_CHUNK = 500


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def call_id(call: LegacyCall) -> uuid.UUID:
    """The call's id: ``uuid5`` over its normalized record (the same for every copy of it)."""
    record = {
        "invocation_id": call.key[:INVOCATION_CHARS],
        "started_at": _iso(call.started_at),
        "ended_at": _iso(call.ended_at),
        "response_id": call.response_id,
        "model": call.model,
        "agent_name": call.agent_name,
        "tokens": [call.prompt_tokens, call.completion_tokens, call.cached_tokens, call.reasoning_tokens],
        "is_cached": call.is_cached,
        "error": call.error[:200],
    }
    return uuid.uuid5(NAMESPACE, "call:" + orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode())


def session_id(session: LegacySession, first_call: uuid.UUID | None) -> uuid.UUID:
    """A new session's id: ``uuid5`` of its key (AG2's session id), or of its first call when the
    log named none (its session line lost)."""
    key = session.key if session.key != "default" or first_call is None else f"calls:{first_call}"
    return uuid.uuid5(NAMESPACE, f"session:{key}")


@dataclass(frozen=True)
class Known:
    """A call already accepted: a row of an earlier import (``session_id`` set) or of this log."""

    id: uuid.UUID
    session_id: uuid.UUID | None
    invocation_id: str
    response_id: str
    started_at: datetime | None
    ended_at: datetime | None

    def fields(self) -> list[tuple[str, Any]]:
        found: list[tuple[str, Any]] = []
        if self.invocation_id:
            found.append(("invocation", self.invocation_id[:INVOCATION_CHARS]))
        if self.response_id:
            found.append(("response", self.response_id))
        if self.started_at is not None:
            found.append(("started", self.started_at))
        if self.ended_at is not None:
            found.append(("ended", self.ended_at))
        return found


def known_of(call: LegacyCall, call_uuid: uuid.UUID) -> Known:
    return Known(call_uuid, None, call.key, call.response_id, call.started_at, call.ended_at)


class Matcher:
    """The calls accepted so far, found again by any two of their four identifying fields."""

    def __init__(self, known: Iterable[Known] = ()) -> None:
        self.index: dict[tuple[str, Any], list[Known]] = defaultdict(list)
        self.used: set[uuid.UUID] = set()
        for entry in known:
            self.add(entry)

    def add(self, entry: Known) -> None:
        for key in entry.fields():
            self.index[key].append(entry)

    def find(self, probe: Known) -> Known | None:
        """The accepted call sharing the most fields (at least two) with ``probe``, or its id."""
        votes: Counter[uuid.UUID] = Counter()
        entries: dict[uuid.UUID, Known] = {}
        for key in probe.fields():
            for entry in self.index.get(key, ()):
                votes[entry.id] += 1
                entries[entry.id] = entry
        best = max(votes.items(), key=lambda item: item[1], default=None)
        if best is not None and best[1] >= 2:
            return entries[best[0]]
        return None


def imported_calls(calls: list[LegacyCall]) -> list[Known]:
    """Rows of imported sessions that share an invocation or response id with ``calls``."""
    from django.db.models import Q

    from ag2_logging.models import LLMCall, Session

    invocations = sorted({c.key[:INVOCATION_CHARS] for c in calls if c.key})
    responses = sorted({c.response_id for c in calls if c.response_id})
    fields = ("id", "session_id", "invocation_id", "response_id", "started_at", "ended_at")
    found: dict[uuid.UUID, Known] = {}
    rows = LLMCall.objects.filter(session__source=Session.Source.IMPORTED)
    for name, values in (("invocation_id__in", invocations), ("response_id__in", responses)):
        for start in range(0, len(values), _CHUNK):
            for row in rows.filter(Q(**{name: values[start : start + _CHUNK]})).values_list(*fields):
                found[row[0]] = Known(*row)
    return list(found.values())
