"""The hot path: redact -> price -> journal -> live counters, for one session.

Runs inside every LLM call, on whatever thread AG2 uses (an event-loop thread included), so it
never touches the ORM and never raises into AG2: integrations call ``record_*`` inside their own
``try`` and count failures.

Speed (``make bench``, "Hot path"): a body is serialized once, with orjson; when the redaction
screen finds nothing in those bytes and they are too short to hold a string that needs cutting,
the bytes go into the journal line as they are (an ``orjson.Fragment``), so the clean case builds
no copy of the request or the response. Each event is still handed to the kernel with one
``write(2)`` (see ``journal.py``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from ag2_logging import pricing, signals
from ag2_logging.capture.journal import JournalWriter
from ag2_logging.conf import Resolved
from ag2_logging.events import LLMCallInput, Totals
from ag2_logging.redaction import (
    may_contain_secrets,
    redact,
    redact_json,
    redact_keys,
    redact_text,
    screened_request,
)
from ag2_logging.serialize import dumps, new_id, to_jsonable, truncate_strings

logger = logging.getLogger("ag2_logging.recorder")

ZERO = Decimal(0)
#: How many of a session's newest calls wait for the live counters' hand-over (the live
#: dashboard's "latest calls"; ``capture.heartbeat`` takes them every ``LIVE_SECONDS``).
LATEST_KEPT = 10

#: Where a line the disk refused goes: ``(session_id, seq, line, on_fail) -> future``, or None
#: when it cannot be taken (the line is dropped). ``spill.spill_line``, injected by the session
#: scope so that this module imports neither the ORM nor ``sessions``.
Spill = Callable[[uuid.UUID, int, bytes, Callable[[], None]], "Future[None] | None"]

#: Where an event of a session that has ended goes: ``(session, line, count, what) -> None``, with
#: ``line`` the serialized event (no ``seq`` yet), ``count`` adding it to a recorder's totals and
#: ``what`` saying what it is ("an LLM call"). ``unattributed.record_late``, injected by the session
#: scope (this module cannot import it). Without one, the event is counted as dropped.
Late = Callable[["SessionRecorder", bytes, "Callable[[Totals], None] | None", str], None]


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt is not None else None


def _usage(call: LLMCallInput) -> pricing.NormalizedUsage:
    """The call's tokens in the app's convention (``pricing.usage``'s one table)."""
    if call.usage_normalized:
        return pricing.NormalizedUsage(
            prompt_tokens=call.prompt_tokens,
            completion_tokens=call.completion_tokens,
            cached_tokens=call.cached_tokens,
            reasoning_tokens=call.reasoning_tokens,
            cache_write_tokens=call.cache_write_tokens,
        )
    return pricing.normalize_usage(
        call.provider,
        call.prompt_tokens,
        call.completion_tokens,
        call.cached_tokens,
        call.reasoning_tokens,
        call.cache_write_tokens,
    )


#: How a warning names an event of each type.
_WHAT = {"tool_call": "a tool call", "agent_event": "an agent event", "llm_call": "an LLM call"}


def _count_agent_event(t: Totals) -> None:
    t.agent_events += 1


def _count_tool_call(t: Totals) -> None:
    t.tool_calls += 1


def _count(t: Totals, usage: pricing.NormalizedUsage, cost: Decimal | None, call: LLMCallInput) -> None:
    """Add one call to the live totals (under the recorder's lock)."""
    t.call_count += 1
    if call.error:
        t.error_count += 1
    t.retry_count += call.retries
    t.prompt_tokens += usage.prompt_tokens
    t.completion_tokens += usage.completion_tokens
    t.cached_tokens += usage.cached_tokens
    t.reasoning_tokens += usage.reasoning_tokens
    t.total_tokens += usage.total_tokens
    if cost is None:
        t.unpriced_calls += 1
    else:
        t.total_cost += cost


class BaseRecorder:
    """Writes events to one journal. Thread-safe: AG2 may call from several threads at once.

    Once its session has ended (``_ended``, set under the lock with the closing line), an event
    is never appended after that line: ``_late`` takes it (see ``SessionRecorder``).
    """

    session_id: uuid.UUID | None = None
    _ended = False

    def __init__(self, journal_path: Path, settings: Resolved, *, spill: Spill | None = None) -> None:
        self.settings = settings
        self.journal_path = journal_path
        self.totals = Totals()
        self._lock = threading.Lock()
        self._seq = 0
        self._spill = spill
        self._last_spill: Future[None] | None = None
        self._journal = JournalWriter(journal_path, fsync_each=settings.journal_fsync == "event")
        #: The newest ``llm_call`` events not handed over yet (only when live counters are on;
        #: the heartbeat empties it every ``LIVE_SECONDS``, so it holds a few events at most).
        self.latest: deque[dict[str, Any]] = deque(maxlen=LATEST_KEPT)
        # A session's recorder only (the heartbeat hands those over; set before this runs).
        self._keep_latest = settings.live_seconds > 0 and self.session_id is not None

    # -- bodies ---------------------------------------------------------------------------------

    def body(self, obj: Any) -> Any:
        """A redacted, truncated, JSON-safe form of a request/response body (None when off).

        Either an ``orjson.Fragment`` holding the serialized JSON as it is (nothing to redact,
        nothing to cut), or a plain JSON structure: the redacted and/or truncated copy.
        """
        if not self.settings.capture_bodies or obj is None:
            return None
        limit = self.settings.max_body_chars
        # A request repeats its conversation's history: only its new messages are scanned.
        request = screened_request(obj)
        if request is not None:
            raw, clean = request
        else:
            raw = dumps(obj)
            clean = not may_contain_secrets(raw)
        if not clean:
            return truncate_strings(redact_json(raw, self.totals.redactions), limit)
        if len(raw) <= limit:  # a string longer than the limit needs more bytes than that
            return orjson.Fragment(raw)
        plain = orjson.loads(raw)
        cut = truncate_strings(plain, limit)
        return orjson.Fragment(raw) if cut is plain else cut

    def clean(self, obj: Any) -> Any:
        """Redacted JSON-safe metadata (always kept, whatever CAPTURE_BODIES says)."""
        return truncate_strings(redact_keys(to_jsonable(obj), self.totals.redactions), 2_000)

    # -- writing --------------------------------------------------------------------------------

    def _write(self, event: dict[str, Any], count: Callable[[Totals], None] | None = None) -> bool:
        """Journal one event and, under the same lock, add it to the totals (``count``)."""
        line = dumps(event)
        with self._lock:
            if not self._ended:
                written = self._append(line)
                if count is not None:
                    count(self.totals)
                return written
        self._late(line, count, _WHAT.get(event["type"], "an event"))
        return False

    def append_counted(self, line: bytes, count: Callable[[Totals], None] | None) -> bool:
        """Journal one serialized event (``seq`` added here) and count it, under the lock."""
        with self._lock:
            written = self._append(line)
            if count is not None:
                count(self.totals)
        return written

    def _late(self, line: bytes, count: Callable[[Totals], None] | None, what: str) -> None:
        """An event that arrived after the closing line (only a ``SessionRecorder`` ends)."""
        with self._lock:
            self.totals.dropped_events += 1

    def _append(self, line: bytes) -> bool:
        """Write one serialized event, numbered; the caller holds ``self._lock``."""
        self._seq += 1
        # seq is assigned under the lock so that it matches the order of lines in the file.
        data = b'%b,"seq":%d}\n' % (line[:-1], self._seq)
        return self._journal.write_line(data) or self._spill_line(data)

    def _spill_line(self, data: bytes) -> bool:
        """The disk refused ``data``: hand it to the database; the caller holds ``self._lock``."""
        spill, session_id = self._spill, self.session_id
        waiter = spill(session_id, self._seq, data, self._spill_failed) if spill and session_id else None
        if waiter is None:
            self.totals.dropped_events += 1
            return False
        self._last_spill = waiter
        self.totals.spilled_events += 1
        return True

    def _spill_failed(self) -> None:
        """The database refused a spilled line too (called on the database thread)."""
        with self._lock:
            self.totals.spilled_events -= 1
            self.totals.dropped_events += 1

    def settle_spills(self) -> None:
        """Wait for this recorder's spilled lines to be stored (or to fail), if there are any."""
        last = self._last_spill
        if last is not None:
            from ag2_logging.capture.spill import settle

            settle(last)

    def record_llm_call(self, **fields: Any) -> dict[str, Any]:
        """``record(LLMCallInput(**fields))``: the keyword form, for scripts and tests."""
        return self.record(LLMCallInput(**fields))

    def record(self, call: LLMCallInput) -> dict[str, Any]:
        """Journal one LLM call and add it to the live totals; returns the journal event.

        In the returned event, ``request`` and ``response`` may be ``orjson.Fragment`` objects
        (serialized JSON); ``llm_call_recorded`` receivers get them as plain values.
        """
        ended_at = call.ended_at or utcnow()
        usage = _usage(call)
        # price_call's cost and status (a model's cached plan, when it has one).
        cost, status = pricing.call_cost(
            call.provider,
            call.model,
            usage,
            at=ended_at,
            overrides=pricing_overrides(),
            local_rate=self.settings.local_model_rate,
            error=call.error,
            is_cached=call.is_cached,  # served from AG2's own cache: no provider bill
            usage_missing=call.usage_missing,  # no usage in the reply: cost unknown, never 0
        )
        if cost is None and status != "no_usage":
            pricing.warn_unknown_once(call.provider, call.model, logger)
        event = self._llm_event(call, usage, cost, status, ended_at)
        line = dumps(event)
        with self._lock:
            # The journal line first, then the live counters (one lock for both).
            late = self._ended
            if not late:
                self._append(line)
                _count(self.totals, usage, cost, call)
                if self._keep_latest:
                    self.latest.append(event)
        session_id = self.session_id
        if late:
            # The session ended before this call did (a task or thread that outlived the block).
            self._late(line, lambda t: _count(t, usage, cost, call), "an LLM call")
            session_id = None
        if signals.llm_call_recorded.receivers:
            signals.llm_call_recorded.send_robust(
                sender=type(self), session_id=session_id, call=_plain_bodies(event)
            )
        return event

    def _llm_event(
        self,
        call: LLMCallInput,
        usage: pricing.NormalizedUsage,
        cost: Decimal | None,
        price_status: str,
        ended_at: datetime,
    ) -> dict[str, Any]:
        """The journal's ``llm_call`` event (``events.LLMCallEvent``)."""
        started_at = call.started_at
        ended_iso = ended_at.isoformat()
        return {
            "type": "llm_call",
            "id": new_id(),
            "ts": ended_iso,
            "generation": call.generation,
            "invocation_id": call.invocation_id,
            "agent_name": call.agent_name,
            "provider": call.provider,
            "model": call.model,
            "response_id": call.response_id,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cached_tokens": usage.cached_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
            "total_tokens": usage.total_tokens,
            "cost": str(cost) if cost is not None else None,
            "price_status": price_status,
            "ag2_cost": str(call.ag2_cost) if call.ag2_cost is not None else None,
            "latency_ms": (ended_at - started_at).total_seconds() * 1000.0
            if started_at is not None
            else None,
            "is_cached": bool(call.is_cached),
            "status": "error" if call.error else "success",
            # A provider's error can echo a credential back ("Incorrect API key provided: ...").
            "error": redact_text(call.error, self.totals.redactions) if call.error else call.error,
            "attempt": call.attempt,
            "retries": call.retries,
            "started_at": started_at.isoformat() if started_at is not None else None,
            "ended_at": ended_iso,
            "request": self.body(call.request),
            "response": self.body(call.response),
        }

    def record_agent_event(
        self,
        *,
        agent_name: str,
        name: str,
        data: Any = None,
        error: str = "",
        duration_ms: float | None = None,
        own_data: bool = False,
    ) -> None:
        """Journal one agent event. ``own_data``: ``data`` is a flat dict the app built from its
        own values only (fixed keys, class names, counts, strings already screened), journaled
        as it is; anything else goes through ``clean`` (redacted, cut, made JSON-safe)."""
        self._write(
            {
                "type": "agent_event",
                "id": new_id(),
                "ts": iso(utcnow()),
                "agent_name": agent_name,
                "name": name,
                "data": data if own_data or data is None else self.clean(data),
                "error": redact_text(error, self.totals.redactions)[:10_000] if error else error,
                "duration_ms": duration_ms,
            },
            _count_agent_event,
        )

    def record_tool_call(
        self,
        *,
        agent_name: str,
        name: str,
        arguments: Any = None,
        result: Any = None,
        error: str = "",
        duration_ms: float | None = None,
        started_at: datetime | None = None,
        ended_at: datetime | None = None,
    ) -> None:
        ended_at = ended_at or utcnow()
        summary = (
            result if isinstance(result, str) else orjson.loads(dumps(result)) if result is not None else ""
        )
        summary_text = summary if isinstance(summary, str) else orjson.dumps(summary).decode()
        self._write(
            {
                "type": "tool_call",
                "id": new_id(),
                "ts": iso(ended_at),
                "agent_name": agent_name,
                "name": name,
                "arguments": self.clean(arguments),
                # Redact, then cut (clean() truncates to 2,000 characters): cutting first could
                # leave the head of a secret that no pattern recognizes any more.
                "result_summary": self.clean(summary_text[:100_000]),
                "error": redact_text(error, self.totals.redactions)[:10_000] if error else error,
                "duration_ms": duration_ms,
                "started_at": iso(started_at),
                "ended_at": iso(ended_at),
            },
            _count_tool_call,
        )

    def close_journal(self) -> None:
        with self._lock:
            self._journal.close(fsync=self.settings.journal_fsync != "never")

    @property
    def journal_failures(self) -> int:
        return self._journal.failures


class SessionRecorder(BaseRecorder):
    """The recorder of one session, bound in the ``current_session`` ContextVar while it runs."""

    def __init__(
        self,
        *,
        settings: Resolved,
        chat_id: str,
        workflow_name: str = "",
        enterprise_id: str = "",
        parent_id: uuid.UUID | None = None,
        session_id: uuid.UUID | None = None,
        spill: Spill | None = None,
        late: Late | None = None,
        user_id: str | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.session_id = session_id or uuid.uuid4()
        self.chat_id = chat_id
        self.workflow_name = workflow_name
        self.enterprise_id = enterprise_id
        self.parent_id = parent_id
        self.started_at = utcnow()
        self.ended_at: datetime | None = None
        self.status = "running"
        self.error = ""
        self.monotonic_start = time.monotonic()
        self._announced: set[int] = set()
        self._late_sink = late
        #: Whether a late event was warned about (once per session, by the sink).
        self.late_warned = False
        #: Set by ``@ag2_logged(join=True)`` on a Celery attempt's session: ``(task id, the ids
        #: it joined)``, so that the attempt's retry joins the same session (siblings, not a chain).
        self.celery_attempt: tuple[str, dict[str, Any] | None] | None = None
        #: A per-session cost limit in USD (``budget=``), read by ``ag2_logging.budgets``.
        self.budget_limit: Decimal | None = None
        path = settings.journal_dir / self.started_at.strftime("%Y-%m-%d") / f"{self.session_id}.jsonl"
        super().__init__(path, settings, spill=spill)
        #: Who and what for (``capture.people``): the user's primary key as text, the tags, and
        #: the metadata as redacted here, before the header is written anywhere.
        self.user_id = user_id
        self.tags = list(tags or ())
        self.metadata = redact(metadata, self.totals.redactions) if metadata else {}
        self._write(
            {
                "type": "session_start",
                "id": str(self.session_id),
                "ts": iso(self.started_at),
                "session": self.header(),
            }
        )

    def announced(self, obj: object) -> bool:
        """True if ``obj`` was announced to this session before (and remember it now)."""
        key = id(obj)
        if key in self._announced:
            return True
        self._announced.add(key)
        return False

    def header(self) -> dict[str, Any]:
        return {
            "session_id": str(self.session_id),
            "chat_id": self.chat_id,
            "workflow_name": self.workflow_name,
            "enterprise_id": self.enterprise_id,
            "parent_id": str(self.parent_id) if self.parent_id else None,
            "started_at": iso(self.started_at),
            "host": self.settings.host_name,
            "pid": os.getpid(),
            "journal_path": str(self.journal_path),
            "user_id": self.user_id,
            "tags": self.tags,
            "metadata": self.metadata,
        }

    def finish(self, status: str, error: str = "") -> None:
        """Write the closing line and close the journal (fsynced per JOURNAL_FSYNC)."""
        self.status = status
        self.error = error
        self.ended_at = utcnow()
        # Lines the disk refused are being stored by the database thread: their outcome (stored,
        # or dropped) belongs in the closing line's totals and in what the session row is told.
        self.settle_spills()
        with self._lock:
            # Totals, closing line and the end mark under one lock: an event either precedes the
            # line and is in its totals, or comes after and goes to the late sink.
            line = dumps(
                {
                    "type": "session_end",
                    "id": str(self.session_id),
                    "ts": iso(self.ended_at),
                    "status": status,
                    "error": error,
                    "ended_at": iso(self.ended_at),
                    "totals": self.totals.as_dict(),
                }
            )
            self._append(line)
            self._ended = True
        self.settle_spills()  # the closing line itself may have been spilled
        self.close_journal()

    @property
    def ended(self) -> bool:
        """True once the closing line is written: later events are not this session's."""
        return self._ended

    def _late(self, line: bytes, count: Callable[[Totals], None] | None, what: str) -> None:
        sink = self._late_sink
        if sink is None:
            super()._late(line, count, what)
            return
        sink(self, line, count, what)

    def __repr__(self) -> str:
        return f"<SessionRecorder {self.session_id} chat={self.chat_id!r} {self.status}>"


def _plain_bodies(event: dict[str, Any]) -> dict[str, Any]:
    """The event with its bodies as plain JSON values rather than serialized fragments."""
    out = dict(event)
    for key in ("request", "response"):
        if isinstance(out.get(key), orjson.Fragment):
            out[key] = orjson.loads(dumps({"v": out[key]}))["v"]
    return out


class UnattributedRecorder(BaseRecorder):
    """Calls made outside any session: recorded (never into another session), warned about once."""

    def __init__(self, settings: Resolved) -> None:
        stamp = utcnow().strftime("%Y%m%dT%H%M%S")
        path = settings.journal_dir / "unattributed" / f"{settings.host_name}-{os.getpid()}-{stamp}.jsonl"
        super().__init__(path, settings)
        self.warned = False


_overrides_provider: Any = None


def pricing_overrides() -> tuple[pricing.PriceOverride, ...]:
    """Admin-edited price overrides, as loaded by the pricing cache (empty until it is wired)."""
    provider = _overrides_provider
    return provider() if provider is not None else ()


def set_overrides_provider(provider: Any) -> None:
    global _overrides_provider
    _overrides_provider = provider
