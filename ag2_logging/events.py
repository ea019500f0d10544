"""The journal schema: the events a session's journal holds, and the one list of counters.

Written by the recorder (``ag2_logging.recorder``: one JSON object per line, one ``write(2)``
each), read by ingest (``ag2_logging.ingest``) and produced by the import of old AG2 logs, so the
three agree by construction. Layout of a journal::

    session_start   first line: the session's ids (``session``: a ``SessionHeader``)
    llm_call        one LLM request and its response, tokens, cost
    tool_call       one tool execution
    agent_event     anything else AG2 reports about an agent
    session_end     last line: status, error, the process's ``totals`` (a ``TotalsRecord``)

Every event has ``type``, ``id`` (a UUID: the row's primary key, so a re-ingest adds nothing),
``seq`` (its position in the journal) and ``ts`` (ISO 8601, UTC). Units: tokens are counts,
``cost`` and ``ag2_cost`` are decimal strings in the currency of the prices (US dollars from
genai-prices), ``latency_ms`` and ``duration_ms`` are milliseconds. Token convention, whatever
the provider: ``prompt_tokens`` includes ``cached_tokens``, ``completion_tokens`` includes
``reasoning_tokens``, ``total_tokens`` is their sum. An unknown cost is ``null``, never ``"0"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, TypedDict

SESSION_START: Literal["session_start"] = "session_start"
LLM_CALL: Literal["llm_call"] = "llm_call"
TOOL_CALL: Literal["tool_call"] = "tool_call"
AGENT_EVENT: Literal["agent_event"] = "agent_event"
SESSION_END: Literal["session_end"] = "session_end"
#: The event types that become rows (the other two frame the journal).
ROW_EVENTS = (LLM_CALL, AGENT_EVENT, TOOL_CALL)
EVENT_TYPES = (SESSION_START, *ROW_EVENTS, SESSION_END)

#: Counters a session's LLM calls add up to, in the order the admin and CSV show them. The
#: Session row keeps each one (``Session.<name>``), the recorder counts them live, and ingest
#: recomputes them from the rows; ``total_cost`` is a Decimal, the rest are integers.
SESSION_COUNTERS = (
    "call_count",
    "error_count",
    "retry_count",
    "unpriced_calls",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "total_tokens",
    "total_cost",
)
#: The same sums as the daily rollups name them (``DailyRollup.<name>``), plus the latency sum.
ROLLUP_COUNTERS = (*SESSION_COUNTERS[:-1], "cost", "latency_ms_sum")
#: What the process counts beside the calls' sums (``session_end.totals``, ``Session.recorded_totals``).
PROCESS_COUNTERS = ("tool_calls", "agent_events", "spilled_events", "dropped_events")


@dataclass
class Totals:
    """Live totals of one session (what ``session_totals()`` returns, and the Session row gets)."""

    call_count: int = 0
    error_count: int = 0
    retry_count: int = 0
    unpriced_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    total_tokens: int = 0
    total_cost: Decimal = Decimal(0)
    tool_calls: int = 0
    agent_events: int = 0
    #: Events the journal refused that went to the database instead (``SpilledEvent``).
    spilled_events: int = 0
    #: Events neither the journal nor the database took.
    dropped_events: int = 0
    redactions: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "call_count": self.call_count,
            "error_count": self.error_count,
            "retry_count": self.retry_count,
            "unpriced_calls": self.unpriced_calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cached_tokens": self.cached_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "total_tokens": self.total_tokens,
            "total_cost": str(self.total_cost),
            "tool_calls": self.tool_calls,
            "agent_events": self.agent_events,
            "spilled_events": self.spilled_events,
            "dropped_events": self.dropped_events,
            "redactions": dict(self.redactions),
        }


@dataclass(slots=True)
class LLMCallInput:
    """One LLM call as an integration hands it to the recorder (``SessionRecorder.record``),
    before redaction and pricing. Tokens as the provider reported them (``usage_normalized``:
    already in the app's convention); times are aware datetimes; ``ag2_cost`` is AG2's own figure
    (dollars), kept beside ours; ``request`` / ``response`` are the raw bodies (redacted and cut
    by the recorder). ``usage_missing``: the reply carried no usage report at all (a stream cut
    before its usage chunk, a server that sends none), so the tokens are unknown, not 0: the call
    is recorded with cost ``null`` and ``price_status`` ``"no_usage"`` unless it failed or came
    from AG2's cache (those cost 0 whatever the usage)."""

    agent_name: str
    provider: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0
    ag2_cost: float | Decimal | None = None
    is_cached: bool = False
    error: str = ""
    started_at: Any = None
    ended_at: Any = None
    invocation_id: str = ""
    response_id: str = ""
    retries: int = 0
    attempt: int = 1
    request: Any = None
    response: Any = None
    generation: str = ""
    usage_normalized: bool = False
    usage_missing: bool = False


class SessionHeader(TypedDict):
    session_id: str
    chat_id: str
    workflow_name: str
    enterprise_id: str
    parent_id: str | None
    started_at: str | None
    host: str
    pid: int
    journal_path: str
    #: Who and what for (``capture.people``): the user's primary key as text (None: no user), the
    #: tags, and the metadata as redacted. Absent from journals written before 0.2.
    user_id: str | None
    tags: list[str]
    metadata: dict[str, Any]


class _Event(TypedDict):
    type: str
    id: str
    seq: int
    ts: str


class SessionStartEvent(_Event):
    session: SessionHeader


class LLMCallEvent(_Event, total=False):
    #: The AG2 generation that made the call: "classic" (``autogen`` 0.x) or "ag2" (1.x).
    generation: str
    invocation_id: str
    agent_name: str
    provider: str
    model: str
    response_id: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    total_tokens: int
    cost: str | None
    #: "priced", "override", "local", "inferred", "unknown" or "no_usage" (``LLMCall.PriceStatus``).
    price_status: str
    ag2_cost: str | None
    latency_ms: float | None
    is_cached: bool
    #: "success" or "error".
    status: str
    error: str
    attempt: int
    retries: int
    started_at: str | None
    ended_at: str | None
    #: Redacted bodies (absent when ``CAPTURE_BODIES`` is off).
    request: Any
    response: Any


class ToolCallEvent(_Event, total=False):
    agent_name: str
    name: str
    arguments: Any
    result_summary: str
    duration_ms: float | None
    error: str
    started_at: str | None
    ended_at: str | None


class AgentEventEvent(_Event, total=False):
    agent_name: str
    name: str
    data: Any
    error: str
    duration_ms: float | None


class TotalsRecord(TypedDict, total=False):
    """``session_end.totals``: the SESSION_COUNTERS and PROCESS_COUNTERS, and what redaction
    removed by kind (``redactions``, counts only)."""

    call_count: int
    error_count: int
    retry_count: int
    unpriced_calls: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    total_tokens: int
    total_cost: str
    tool_calls: int
    agent_events: int
    spilled_events: int
    dropped_events: int
    redactions: dict[str, int]


class SessionEndEvent(_Event):
    #: "completed", "failed", "cancelled" (``Session.Status``).
    status: str
    error: str
    ended_at: str | None
    totals: TotalsRecord


Event = SessionStartEvent | LLMCallEvent | ToolCallEvent | AgentEventEvent | SessionEndEvent
