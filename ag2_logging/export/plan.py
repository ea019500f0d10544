"""One session's rows as planned spans: names, times, parents and attributes (no OpenTelemetry).

A plan is built from the database rows, so the spans carry the calls' real start and end times:

* the session: ``invoke_agent {workflow}`` (root), from ``started_at`` to ``ended_at``;
* an agent turn where the generation records one (ag2 1.x ``turn`` events with a duration):
  ``invoke_agent {agent}``, child of the session;
* each LLM call: ``chat {model}`` (client kind), child of the turn of its agent that encloses it,
  else of the session;
* each tool execution: ``execute_tool {name}``, placed the same way.

Bodies (prompts, replies, tool arguments and results) are added only when ``content`` is on,
always passed through :func:`ag2_logging.redaction.redact` first.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from ag2_logging.export import semconv as sc
from ag2_logging.models import AgentEvent, LLMCall, Session, ToolCall

Attributes = dict[str, Any]


@dataclass
class SpanPlan:
    """One span to emit. ``key`` is the row's UUID (the session's for the root)."""

    key: uuid.UUID
    parent: uuid.UUID | None
    name: str
    kind: str  # "internal" or "client"
    start: dt.datetime
    end: dt.datetime
    attributes: Attributes = field(default_factory=dict)
    #: ``error.type`` when the operation failed (the span's status is then ERROR).
    error: str = ""
    agent: str = ""


_ERROR_CODE = re.compile(r"""error_code["']?\s*[:=]\s*["']?([A-Za-z0-9_.-]+)""")
_HTTP_STATUS = re.compile(r"Error code: (\d{3})")


def error_type(text: str) -> str:
    """A low-cardinality ``error.type`` from a recorded error text: the provider's error code
    (``"error_code:server_error, ..."`` -> ``"server_error"``), else the HTTP status
    (``"Error code: 500"`` -> ``"500"``), else the exception's class name
    (``"TimeoutError: ..."`` -> ``"TimeoutError"``), else ``"_OTHER"``."""
    for pattern in (_ERROR_CODE, _HTTP_STATUS):
        if found := pattern.search(text):
            return found.group(1)
    head = text.strip().split(":", 1)[0].strip().rsplit(".", 1)[-1]
    return head if head.isidentifier() else "_OTHER"


def _json(value: Any) -> str:
    from ag2_logging.redaction import redact

    return orjson.dumps(redact(value), default=str).decode()


def _cost(attrs: Attributes, cost: Decimal | None, status: str) -> None:
    if cost is not None:
        attrs[sc.COST_AMOUNT] = format(cost.normalize(), "f")
        attrs[sc.COST_CURRENCY] = "USD"
    attrs[sc.PRICE_STATUS] = status


def _choices(response: Any) -> list[dict[str, Any]]:
    """The reply's choices: OpenAI's ``choices`` (classic AG2 records the client's reply), or the
    one ``{"message", "finish_reason"}`` an ag2 1.x ``ModelResponse`` is recorded as."""
    if not isinstance(response, dict):
        return []
    choices = response.get("choices")
    if isinstance(choices, list):
        return [c for c in choices if isinstance(c, dict)]
    if "message" in response or "finish_reason" in response:
        return [{"message": response.get("message"), "finish_reason": response.get("finish_reason")}]
    return []


def _finish_reasons(response: Any) -> list[str]:
    return [str(c["finish_reason"]) for c in _choices(response) if c.get("finish_reason")]


def _tool_call_ids(calls: list[LLMCall]) -> dict[str, list[str]]:
    """Tool name -> the call ids the model asked for, in order (from the recorded replies:
    OpenAI's ``{"id", "function": {"name"}}``, ag2 1.x's ``{"id", "name"}``)."""
    ids: dict[str, list[str]] = {}
    for call in calls:
        for choice in _choices(call.response):
            message = choice.get("message")
            tools = message.get("tool_calls") if isinstance(message, dict) else None
            for tool in tools if isinstance(tools, list) else []:
                if not isinstance(tool, dict) or not tool.get("id"):
                    continue
                function = tool.get("function")
                name = function.get("name", "") if isinstance(function, dict) else tool.get("name", "")
                ids.setdefault(str(name), []).append(str(tool["id"]))
    return ids


def _next_id(ids: dict[str, list[str]], name: str) -> str | None:
    """The first call id the model asked ``name`` with that no tool execution took yet."""
    queue = ids.get(name)
    return queue.pop(0) if queue else None


def _usage(attrs: Attributes, call: LLMCall, names: sc.Names) -> None:
    if call.price_status == LLMCall.PriceStatus.NO_USAGE:
        return  # unknown tokens are not 0 tokens
    attrs[sc.INPUT_TOKENS] = call.prompt_tokens
    attrs[sc.OUTPUT_TOKENS] = call.completion_tokens
    if call.cached_tokens:
        attrs[sc.CACHE_READ] = call.cached_tokens
    if call.cache_write_tokens:
        attrs[names.cache_write] = call.cache_write_tokens
    if call.reasoning_tokens:
        attrs[sc.REASONING] = call.reasoning_tokens


def llm_span(call: LLMCall, names: sc.Names, content: bool) -> SpanPlan:
    """The ``chat {model}`` span of one LLM call."""
    response = call.response if isinstance(call.response, dict) else {}
    attrs: Attributes = {
        sc.OPERATION: "chat",
        sc.PROVIDER: sc.provider_name(call.provider),
        sc.REQUEST_MODEL: call.model,
    }
    if response.get("model"):
        attrs[sc.RESPONSE_MODEL] = str(response["model"])
    if call.response_id:
        attrs[sc.RESPONSE_ID] = call.response_id
    if call.agent_name:
        attrs[sc.AGENT_NAME] = call.agent_name
    if reasons := _finish_reasons(response):
        attrs[sc.FINISH_REASONS] = reasons
    _usage(attrs, call, names)
    _cost(attrs, call.cost, call.price_status)
    if content and isinstance(call.request, dict) and "messages" in call.request:
        attrs[sc.INPUT_MESSAGES] = _json(call.request["messages"])
    if content and (choices := _choices(response)):
        attrs[sc.OUTPUT_MESSAGES] = _json([c.get("message") for c in choices])
    failed = call.status == LLMCall.Status.ERROR
    start = call.started_at or call.ended_at
    end = call.ended_at or start
    assert start is not None and end is not None  # callers keep only timed calls
    return SpanPlan(
        key=call.id,
        parent=None,
        name=f"chat {call.model}".strip(),
        kind="client",
        start=start,
        end=end,
        attributes=attrs,
        error=error_type(call.error) if failed else "",
        agent=call.agent_name,
    )


def tool_span(tool: ToolCall, call_id: str | None, content: bool) -> SpanPlan:
    """The ``execute_tool {name}`` span of one tool execution."""
    attrs: Attributes = {sc.OPERATION: "execute_tool", sc.TOOL_NAME: tool.name, sc.TOOL_TYPE: "function"}
    if call_id:
        attrs[sc.TOOL_CALL_ID] = call_id
    if tool.agent_name:
        attrs[sc.AGENT_NAME] = tool.agent_name
    if content and tool.arguments is not None:
        attrs[sc.TOOL_ARGUMENTS] = _json(tool.arguments)
    if content and tool.result_summary:
        attrs[sc.TOOL_RESULT] = _json(tool.result_summary)
    end = tool.ended_at or tool.started_at
    start = tool.started_at
    if start is None and end is not None and tool.duration_ms is not None:
        start = end - dt.timedelta(milliseconds=tool.duration_ms)
    start = start or end
    assert start is not None and end is not None  # callers keep only timed tool calls
    return SpanPlan(
        key=tool.id,
        parent=None,
        name=f"execute_tool {tool.name}",
        kind="internal",
        start=start,
        end=end,
        attributes=attrs,
        error=error_type(tool.error) if tool.error else "",
        agent=tool.agent_name,
    )


def turn_span(event: AgentEvent, conversation: str) -> SpanPlan:
    """An agent turn (an ag2 1.x ``turn`` event: its time is the end, ``duration_ms`` its length)."""
    start = event.created_at - dt.timedelta(milliseconds=event.duration_ms or 0.0)
    attrs: Attributes = {
        sc.OPERATION: "invoke_agent",
        sc.AGENT_NAME: event.agent_name,
        sc.CONVERSATION_ID: conversation,
    }
    data = event.data if isinstance(event.data, dict) else {}
    if data.get("finish_reason"):
        attrs[sc.FINISH_REASONS] = [str(data["finish_reason"])]
    return SpanPlan(
        key=event.id,
        parent=None,
        name=f"invoke_agent {event.agent_name}".strip(),
        kind="internal",
        start=start,
        end=event.created_at,
        attributes=attrs,
        error=error_type(event.error) if event.error else "",
        agent=event.agent_name,
    )


def session_span(session: Session, children: list[SpanPlan]) -> SpanPlan:
    """The root ``invoke_agent {workflow}`` span of the session."""
    attrs: Attributes = {
        sc.OPERATION: "invoke_agent",
        sc.AGENT_NAME: session.workflow_name or "session",
        sc.CONVERSATION_ID: session.chat_id,
        sc.SESSION_ID: str(session.pk),
        sc.ENTERPRISE_ID: session.enterprise_id,
        sc.WORKFLOW_NAME: session.workflow_name,
        sc.INPUT_TOKENS: session.prompt_tokens,
        sc.OUTPUT_TOKENS: session.completion_tokens,
    }
    _cost(attrs, session.known_cost, session.cost_state)
    end = session.ended_at or max((c.end for c in children), default=session.started_at)
    failed = session.status in {Session.Status.FAILED, Session.Status.INTERRUPTED}
    return SpanPlan(
        key=session.pk,
        parent=None,
        name=f"invoke_agent {session.workflow_name or 'session'}",
        kind="internal",
        start=session.started_at,
        end=max(end, session.started_at),
        attributes=attrs,
        error=(error_type(session.error) if session.error else session.status) if failed else "",
    )


def _place(spans: list[SpanPlan], turns: list[SpanPlan], root: uuid.UUID) -> None:
    for span in spans:
        enclosing = [
            t for t in turns if t.agent == span.agent and t.start <= span.start and span.end <= t.end
        ]
        span.parent = enclosing[0].key if enclosing else root


def plan_session(session: Session, names: sc.Names, content: bool) -> list[SpanPlan]:
    """Every span of ``session``, root first, from its rows (a database read per row kind)."""
    calls = [c for c in session.llm_calls.order_by("seq") if c.started_at or c.ended_at]
    tools = [t for t in session.tool_calls.order_by("seq") if t.ended_at or t.started_at]
    events = session.agent_events.filter(name="turn", duration_ms__isnull=False).order_by("seq")
    turns = [turn_span(e, session.chat_id) for e in events]
    ids = _tool_call_ids(calls)
    work = [llm_span(c, names, content) for c in calls]
    work += [tool_span(t, _next_id(ids, t.name), content) for t in tools]
    root = session_span(session, turns + work)
    for turn in turns:
        turn.parent = root.key
    _place(work, turns, root.key)
    return [root, *turns, *work]
