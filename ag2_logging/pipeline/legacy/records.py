"""What a legacy log holds once parsed: its sessions and their calls, and the small value parsers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ag2_logging import pricing

#: Statuses a legacy session may end with (Session.Status, less "running": an import is finished).
FINISHED = frozenset({"completed", "failed", "cancelled", "interrupted"})


@dataclass
class LegacyCall:
    """One LLM call read from a legacy log.

    ``ref``: where it came from (``"line 12"``, ``"row 3"``); ``key``: AG2's ``invocation_id``
    (else the line or row); tokens in OpenAI's convention as AG2 logged them (``prompt_tokens``
    includes ``cached_tokens``, ``completion_tokens`` includes ``reasoning_tokens``); ``ag2_cost``
    and ``cost`` in USD (``cost`` is ours, set by pricing; None = unpriced); times are aware;
    ``uid`` is the call's id from its content (``identity.call_id``).
    """

    ref: str
    key: str
    session_key: str
    agent_name: str = ""
    model: str = ""
    provider: str = "unknown"
    response_id: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    ag2_cost: Decimal | None = None
    is_cached: bool = False
    error: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    request: Any = None
    response: Any = None
    cost: Decimal | None = None
    price_status: str = "unknown"
    usage_missing: bool = False  # the response reported no usage: tokens unknown, not 0
    uid: uuid.UUID | None = None  # identity.call_id, set once the call is read

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class LegacySession:
    """One session of a legacy log (``key``: AG2's session id, or the replaced system's)."""

    key: str
    chat_id: str = ""
    workflow_name: str = ""
    enterprise_id: str = ""
    status: str = "completed"
    started_at: datetime | None = None
    ended_at: datetime | None = None
    calls: list[LegacyCall] = field(default_factory=list)
    tool_calls: int = 0
    agent_events: int = 0
    described: bool = False  # a SESSION START line said what it was
    redactions: dict[str, int] = field(default_factory=dict)  # what sanitizing its lines removed


@dataclass
class LegacyLog:
    """A parsed legacy log: ``format`` is ``"file"`` (AG2's FileLogger), ``"mozaiks"`` (the
    replaced system) or ``"sqlite"`` (AG2's SqliteLogger); ``recognized`` counts its session lines
    and calls (none: the file is not an AG2 log); ``bad_lines`` the numbers of malformed lines
    (rows for a database)."""

    path: str
    format: str
    sessions: dict[str, LegacySession] = field(default_factory=dict)
    bad_lines: list[int] = field(default_factory=list)
    lines: int = 0
    recognized: int = 0
    ag2_errors: int = 0
    redactions: dict[str, int] = field(default_factory=dict)

    def session(self, key: str) -> LegacySession:
        found = self.sessions.get(key)
        if found is None:
            found = self.sessions[key] = LegacySession(key)
        return found

    @property
    def calls(self) -> list[LegacyCall]:
        return [call for session in self.sessions.values() for call in session.calls]


def parse_ts(value: Any) -> datetime | None:
    """An AG2 timestamp (``2025-05-01 10:00:00.123456``, naive = UTC) or ISO 8601; None if unreadable."""
    if not value or not isinstance(value, str | int | float):
        return None
    text = str(value).strip().replace("Z", "+00:00")
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_dec(value: Any) -> Decimal | None:
    """A cost as a Decimal (None when missing or not a finite number)."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        parsed = Decimal(str(value))
    except ArithmeticError:
        return None
    return parsed if parsed.is_finite() else None


def parse_int(value: Any) -> int:
    """A count (0 when missing, negative or not an integer)."""
    if isinstance(value, bool):
        return int(value)
    try:
        parsed = int(value or 0)
    except (TypeError, ValueError, OverflowError):
        return 0
    return max(parsed, 0)


def provider_of(api_type: str | None, base_url: str | None, model: str) -> str:
    """The provider id of a call (``pricing.detect_provider`` with the configured base URLs)."""
    from ag2_logging.conf import conf

    return pricing.detect_provider(
        api_type=api_type, base_url=base_url, model=model, base_url_map=conf.resolved.provider_base_urls
    )
