"""Journal events -> row values, with every value made one that every database accepts.

One bad value must never block a whole journal (ingest retries would fail forever on the same
line), and a journal must give the same rows on SQLite and PostgreSQL. So the builders here:

* remove NUL characters (PostgreSQL refuses them in text and in jsonb, SQLite keeps them): the
  caller strips a whole event once, when its raw line holds ``\\u0000`` (``strip_nul``);
* cut ids and names longer than their column, with a visible marker (``…[cut]``);
* refuse numbers out of range (``OutOfRange``): the line becomes a counted bad line.

What they change is counted by kind in an ``Issues`` counter (``Session.ingest_issues``).
"""

from __future__ import annotations

import math
import re
import uuid
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from ag2_logging.models import AgentEvent, LLMCall, Session, SessionTag, ToolCall

Issues = Counter[str]

#: Marker at the end of a value cut to its column.
CUT_MARKER = "…[cut]"
#: PositiveIntegerField on PostgreSQL (the strictest backend: every database gets its bounds).
MAX_POSITIVE_INT = 2**31 - 1
#: One call's token count: far beyond any model, and low enough that a session's sum of up to
#: nine million such calls still fits the session's BigIntegerField.
MAX_TOKENS = 10**12
#: One call's cost in dollars: the money columns hold up to 10^10, and a session's total (and a
#: day's rollup) sums many calls, so one call gets a bound far below the column's.
MAX_CALL_COST = Decimal(10**6)
#: Retries of one call (summed into ``Session.retry_count``, a PositiveIntegerField).
MAX_RETRIES = 10**6
_MONEY_QUANTUM = Decimal(1).scaleb(-LLMCall._meta.get_field("cost").decimal_places)


class OutOfRange(ValueError):
    """A number no column can hold: the line is counted (``out_of_range``) and skipped."""


def _max_length(model: Any, name: str) -> int:
    length = model._meta.get_field(name).max_length
    assert length is not None
    return int(length)


_LLM_LENGTHS = {
    name: _max_length(LLMCall, name)
    for name in ("invocation_id", "agent_name", "provider", "model", "response_id", "price_status", "status")
}
_EVENT_LENGTHS = {name: _max_length(AgentEvent, name) for name in ("agent_name", "name")}
_TOOL_LENGTHS = {name: _max_length(ToolCall, name) for name in ("agent_name", "name")}
_TAG_LENGTH = _max_length(SessionTag, "tag")
_SESSION_LENGTHS = {
    name: _max_length(Session, name)
    for name in ("chat_id", "workflow_name", "enterprise_id", "host", "journal_path")
}


# -- values ------------------------------------------------------------------------------------------


def strip_nul(value: Any, issues: Issues) -> Any:
    """``value`` with NUL characters removed from every string and key (each change counted)."""
    if isinstance(value, str):
        if "\x00" in value:
            issues["nul_removed"] += 1
            return value.replace("\x00", "")
        return value
    if isinstance(value, dict):
        return {strip_nul(k, issues): strip_nul(v, issues) for k, v in value.items()}
    if isinstance(value, list):
        return [strip_nul(v, issues) for v in value]
    return value


def cut(value: Any, limit: int, issues: Issues) -> str:
    """``value`` as text of at most ``limit`` characters; a longer one ends with the marker."""
    text = value if isinstance(value, str) else str(value or "")
    if len(text) <= limit:
        return text
    issues["id_cut"] += 1
    return text[: limit - len(CUT_MARKER)] + CUT_MARKER


def _int(value: Any, low: int, high: int) -> int:
    number = int(value or 0)
    if not low <= number <= high:
        raise OutOfRange(f"{number} is outside [{low}, {high}]")
    return number


def _count(value: Any) -> int:
    return _int(value, 0, MAX_POSITIVE_INT)


def _tokens(value: Any) -> int:
    return _int(value, -MAX_TOKENS, MAX_TOKENS)


def dt(value: Any) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def money(value: Any) -> Decimal | None:
    if value is None:
        return None
    parsed = Decimal(str(value))
    if not parsed.is_finite() or abs(parsed) > MAX_CALL_COST:
        raise OutOfRange(f"not an amount one call can cost: {value!r}")
    # Rounded here, the same way on every backend (each would otherwise round its own way).
    return parsed.quantize(_MONEY_QUANTUM)


def number(value: Any) -> float | None:
    if value is None:
        return None
    try:
        parsed = float(value)
    except OverflowError as exc:  # an int too large for a float
        raise OutOfRange(str(exc)) from exc
    if not math.isfinite(parsed):
        raise OutOfRange(f"not a finite number: {value!r}")
    return parsed


# -- rows --------------------------------------------------------------------------------------------


def session_fields(header: dict[str, Any], issues: Issues | None = None) -> dict[str, Any]:
    """A Session row's fields from a journal header; never raises (bad values are counted)."""
    issues = Issues() if issues is None else issues
    fields: dict[str, Any] = {
        name: cut(header.get(name) or "", limit, issues) for name, limit in _SESSION_LENGTHS.items()
    }
    try:
        parent = header.get("parent_id")
        fields["parent_id"] = uuid.UUID(str(parent)) if parent else None
    except ValueError:
        issues["bad_value"] += 1
        fields["parent_id"] = None
    try:
        fields["started_at"] = dt(header.get("started_at")) or datetime.now(UTC)
    except (ValueError, TypeError):
        issues["bad_value"] += 1
        fields["started_at"] = datetime.now(UTC)
    pid = header.get("pid")
    if pid is not None and not (isinstance(pid, int) and 0 <= pid <= MAX_POSITIVE_INT):
        issues["out_of_range"] += 1
        pid = None
    fields["pid"] = pid
    return fields


def session_people(header: dict[str, Any], issues: Issues | None = None) -> dict[str, Any]:
    """The header's user, tags and metadata as row values: ``user_key`` (the user's primary key
    as text, or None), ``tags`` (a list of strings) and ``metadata`` (a dict). A journal written
    before these fields existed has none of them: no user, ``[]``, ``{}``. Values that are not
    what the recorder writes are dropped and counted (``bad_value``); never raises."""
    issues = Issues() if issues is None else issues
    user = header.get("user_id")
    if user is not None and not isinstance(user, str | int):
        issues["bad_value"] += 1
        user = None
    tags: list[str] = []
    raw_tags = header.get("tags")
    if raw_tags is not None:
        if not isinstance(raw_tags, list):
            issues["bad_value"] += 1
            raw_tags = []
        for tag in raw_tags:
            if not isinstance(tag, str) or not tag.strip():
                issues["bad_value"] += 1
                continue
            text = cut(tag.strip(), _TAG_LENGTH, issues)
            if text not in tags:
                tags.append(text)
    metadata = header.get("metadata")
    if metadata is None:
        metadata = {}
    elif not isinstance(metadata, dict):
        issues["bad_value"] += 1
        metadata = {}
    return {"user_key": None if user in (None, "") else str(user), "tags": tags, "metadata": metadata}


def llm_call(
    event: dict[str, Any], session_id: uuid.UUID | None, issues: Issues | None = None
) -> dict[str, Any]:
    issues = Issues() if issues is None else issues
    get = event.get
    n = _LLM_LENGTHS
    return {
        "id": uuid.UUID(event["id"]),
        "session_id": session_id,
        "seq": _count(get("seq")),
        "invocation_id": cut(get("invocation_id"), n["invocation_id"], issues),
        "agent_name": cut(get("agent_name"), n["agent_name"], issues),
        "provider": cut(get("provider"), n["provider"], issues),
        "model": cut(get("model"), n["model"], issues),
        "response_id": cut(get("response_id"), n["response_id"], issues),
        "prompt_tokens": _tokens(get("prompt_tokens")),
        "completion_tokens": _tokens(get("completion_tokens")),
        "cached_tokens": _tokens(get("cached_tokens")),
        "cache_write_tokens": _tokens(get("cache_write_tokens")),
        "reasoning_tokens": _tokens(get("reasoning_tokens")),
        "total_tokens": _tokens(get("total_tokens")),
        "cost": money(get("cost")),
        "price_status": cut(get("price_status") or LLMCall.PriceStatus.UNKNOWN, n["price_status"], issues),
        "ag2_cost": money(get("ag2_cost")),
        "latency_ms": number(get("latency_ms")),
        "is_cached": bool(get("is_cached")),
        "status": cut(get("status") or LLMCall.Status.SUCCESS, n["status"], issues),
        "error": str(get("error") or ""),
        "attempt": _count(get("attempt") or 1),
        "retries": _int(get("retries"), 0, MAX_RETRIES),
        "started_at": dt(get("started_at")),
        "ended_at": dt(get("ended_at") or get("ts")),
        "request": get("request"),
        "response": get("response"),
    }


def agent_event(
    event: dict[str, Any], session_id: uuid.UUID | None, issues: Issues | None = None
) -> dict[str, Any]:
    issues = Issues() if issues is None else issues
    get = event.get
    return {
        "id": uuid.UUID(event["id"]),
        "session_id": session_id,
        "seq": _count(get("seq")),
        "agent_name": cut(get("agent_name"), _EVENT_LENGTHS["agent_name"], issues),
        "name": cut(get("name"), _EVENT_LENGTHS["name"], issues),
        "data": get("data"),
        "error": str(get("error") or ""),
        "duration_ms": number(get("duration_ms")),
        "created_at": dt(get("ts")) or datetime.now(UTC),
    }


def tool_call(
    event: dict[str, Any], session_id: uuid.UUID | None, issues: Issues | None = None
) -> dict[str, Any]:
    issues = Issues() if issues is None else issues
    get = event.get
    summary = get("result_summary")
    return {
        "id": uuid.UUID(event["id"]),
        "session_id": session_id,
        "seq": _count(get("seq")),
        "agent_name": cut(get("agent_name"), _TOOL_LENGTHS["agent_name"], issues),
        "name": cut(get("name"), _TOOL_LENGTHS["name"], issues),
        "arguments": get("arguments"),
        "result_summary": summary if isinstance(summary, str) else str(summary or ""),
        "duration_ms": number(get("duration_ms")),
        "error": str(get("error") or ""),
        "started_at": dt(get("started_at")),
        "ended_at": dt(get("ended_at") or get("ts")),
    }


# -- COPY text (PostgreSQL) ------------------------------------------------------------------------------
# ``COPY ... FROM STDIN`` text format: a tab between values, ``\N`` for NULL, backslash, newline,
# return and tab escaped. ``llm_call_copy`` builds an LLMCall row and encodes it in one step:
# the same values as ``llm_call`` encoded by ``copy_*``, without the row's dict in between.

NULL = b"\\N"
_UTC_SHAPE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?\+00:00", re.ASCII)
_UUID_SHAPE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def copy_text(value: str) -> bytes:
    """A string in COPY text format."""
    data = value.encode()
    if b"\\" in data or b"\n" in data or b"\r" in data or b"\t" in data:
        data = (
            data.replace(b"\\", b"\\\\").replace(b"\n", b"\\n").replace(b"\r", b"\\r").replace(b"\t", b"\\t")
        )
    return data


def copy_json(value: Any) -> bytes:
    """A JSON value in COPY text format (orjson escapes newlines, returns and tabs inside
    strings: only backslashes need doubling)."""
    data = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    return data.replace(b"\\", b"\\\\") if b"\\" in data else data


#: Short texts already encoded, by column limit: agent, provider, model and status repeat from
#: call to call. Only strings that fit their column (nothing to count) are kept, at most
#: ``_TEXT_CACHE_SIZE`` per limit.
_TEXT_CACHE: dict[int, dict[str, bytes]] = {}
_TEXT_CACHE_SIZE = 1_024


def _copy_cut(value: Any, limit: int, issues: Issues) -> bytes:
    cache = _TEXT_CACHE.get(limit)
    if cache is None:
        cache = _TEXT_CACHE[limit] = {}
    if value.__class__ is not str:
        return copy_text(cut(value, limit, issues))
    data = cache.get(value)
    if data is None:
        data = copy_text(cut(value, limit, issues))
        if len(value) <= limit and len(cache) < _TEXT_CACHE_SIZE:
            cache[value] = data
    return data


def _copy_uuid(value: Any) -> bytes:
    # The recorder's canonical form goes as it is; any other form through uuid.UUID (or raises).
    if isinstance(value, str) and _UUID_SHAPE.fullmatch(value):
        return value.encode()
    return str(uuid.UUID(value)).encode()


def _copy_dt(value: Any) -> tuple[bytes, datetime | None]:
    parsed = dt(value)
    if parsed is None:
        return NULL, None
    if isinstance(value, str) and _UTC_SHAPE.fullmatch(value):
        return value.encode(), parsed  # the recorder's own form: PostgreSQL reads the same instant
    return parsed.isoformat().encode(), parsed


def _copy_money(value: Any) -> bytes:
    amount = money(value)
    return NULL if amount is None else str(amount).encode()


def _copy_number(value: Any) -> bytes:
    parsed = number(value)  # finite or OutOfRange
    return NULL if parsed is None else repr(parsed).encode()


def _copy_body(value: Any) -> bytes:
    return NULL if value is None else copy_json(value)


def llm_call_copy(event: dict[str, Any], session: bytes, issues: Issues) -> tuple[bytes, datetime | None]:
    """``llm_call(event, ...)`` as one COPY line in ``LLM_CALL_COLUMNS`` order, and its end time.

    ``session`` is the session id already in COPY text (``NULL`` for none). Raises what
    ``llm_call`` raises (``OutOfRange``, ``KeyError``, ``ValueError``, ``TypeError``) on the
    same events."""
    get = event.get
    n = _LLM_LENGTHS
    # In llm_call's order, so an event with several faults fails (and is counted) the same way.
    values = [
        _copy_uuid(event["id"]),
        session,
        b"%d" % _count(get("seq")),
        _copy_cut(get("invocation_id"), n["invocation_id"], issues),
        _copy_cut(get("agent_name"), n["agent_name"], issues),
        _copy_cut(get("provider"), n["provider"], issues),
        _copy_cut(get("model"), n["model"], issues),
        _copy_cut(get("response_id"), n["response_id"], issues),
        b"%d" % _tokens(get("prompt_tokens")),
        b"%d" % _tokens(get("completion_tokens")),
        b"%d" % _tokens(get("cached_tokens")),
        b"%d" % _tokens(get("cache_write_tokens")),
        b"%d" % _tokens(get("reasoning_tokens")),
        b"%d" % _tokens(get("total_tokens")),
        _copy_money(get("cost")),
        _copy_cut(get("price_status") or LLMCall.PriceStatus.UNKNOWN, n["price_status"], issues),
        _copy_money(get("ag2_cost")),
        _copy_number(get("latency_ms")),
        b"t" if get("is_cached") else b"f",
        _copy_cut(get("status") or LLMCall.Status.SUCCESS, n["status"], issues),
        copy_text(str(get("error") or "")),
        b"%d" % _count(get("attempt") or 1),
        b"%d" % _int(get("retries"), 0, MAX_RETRIES),
        _copy_dt(get("started_at"))[0],
        (ended := _copy_dt(get("ended_at") or get("ts")))[0],
        _copy_body(get("request")),
        _copy_body(get("response")),
    ]
    return b"\t".join(values) + b"\n", ended[1]


#: The LLMCall columns (attnames) ``llm_call_copy`` writes, in order; ingest uses it only when
#: the model's concrete fields are exactly these.
LLM_CALL_COLUMNS = [
    "id",
    "session_id",
    "seq",
    "invocation_id",
    "agent_name",
    "provider",
    "model",
    "response_id",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "total_tokens",
    "cost",
    "price_status",
    "ag2_cost",
    "latency_ms",
    "is_cached",
    "status",
    "error",
    "attempt",
    "retries",
    "started_at",
    "ended_at",
    "request",
    "response",
]
