"""A session's conversation (:class:`TranscriptViewMixin`, on the session admin: it takes the *view
session* permission): what was said, in the order it was said, read as a chat.

Three kinds of entries, in journal order (``seq``, the order the recorder wrote them in):

* **messages**: each message an agent sent, with its speaker, the agent it went to, its role and
  content, and the tool calls it asked for. Classic AG2 logs one ``received_message`` agent event
  per delivery; a group chat manager delivers each message again to every other member, and those
  relays (the message's ``name`` is not its sender) are left out, so each message shows once, said
  by the agent that said it.
* **LLM calls**: the agent, the model, tokens, cost and latency, with the (redacted) prompt and
  response folded in place.
* **tool calls**: the tool, the agent that ran it, its arguments and result.

A session without ``received_message`` events (the ``ag2`` 1.x generation records none) shows
each LLM call's response as its agent's message (``Transcript.derived``), after the call, and
the inputs a call was the first to send (ag2 1.x ``ModelRequest`` events) as ``user`` messages
before it.

Everything shown is what the rows hold (redacted before it was written); the page's HTML goes
through :func:`~ag2_logging.reports.text.html_visible`, so control characters show escaped.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponseBase
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext as _

from ag2_logging.admin.base import visible_response
from ag2_logging.admin.exports import MixinBase
from ag2_logging.models import AgentEvent, LLMCall, Session, ToolCall
from ag2_logging.reports.folding import ag2_inputs, call_text

__all__ = ["TRANSCRIPT_LIMIT", "Entry", "TranscriptViewMixin", "message_entry", "transcript"]

#: Rows of each kind (messages, LLM calls, tool calls) a transcript reads; the lists have them all.
TRANSCRIPT_LIMIT = 2_000
#: Characters of one message's content shown (a prompt or response: ``folding.BODY_LIMIT``).
CONTENT_LIMIT = 20_000


@dataclass
class Entry:
    """One entry of a transcript. ``kind`` is ``message``, ``llm`` or ``tool``; ``speaker`` is the
    agent that said it (a message), made the call (``llm``) or ran the tool (``tool``)."""

    kind: str
    seq: int
    at: dt.datetime | None
    speaker: str
    recipient: str = ""
    role: str = ""
    content: str = ""
    #: A message's requested tool calls, as ``name(arguments)``.
    tool_calls: list[str] = field(default_factory=list)
    #: An LLM call's or tool call's name (model or tool).
    name: str = ""
    prompt: str = ""
    response: str = ""
    arguments: str = ""
    error: str = ""
    tokens: int | None = None
    cost: Decimal | None = None
    duration_ms: float | None = None
    url: str = ""


@dataclass
class Transcript:
    """A session's entries in order, with how many of each kind, and whether a kind was cut at
    :data:`TRANSCRIPT_LIMIT`."""

    entries: list[Entry]
    counts: dict[str, int]
    truncated: bool
    #: The messages are the LLM calls' responses (no message events were recorded).
    derived: bool = False


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # content parts: [{"type": "text", "text": ...}, ...]
        return "\n".join(str(part.get("text", "")) if isinstance(part, dict) else str(part) for part in value)
    return json.dumps(value, ensure_ascii=False, default=str)


def _cut(text: str) -> str:
    return text if len(text) <= CONTENT_LIMIT else text[:CONTENT_LIMIT] + "\n…"


def _tool_calls(message: dict[str, Any]) -> list[str]:
    calls = []
    for tool in message.get("tool_calls") or []:
        function = tool.get("function", {}) if isinstance(tool, dict) else {}
        if isinstance(function, dict):
            calls.append(f"{function.get('name', '?')}({function.get('arguments', '')})")
    call = message.get("function_call")
    if isinstance(call, dict):
        calls.append(f"{call.get('name', '?')}({call.get('arguments', '')})")
    return calls


def message_entry(seq: int, at: dt.datetime | None, recipient: str, data: Any) -> Entry | None:
    """The message of a ``received_message`` agent event (``data``: ``{"message": str | dict,
    "sender": name}``), or None when the event is a relay (a group chat manager passing on
    another agent's message) or holds no message."""
    if not isinstance(data, dict) or "message" not in data:
        return None
    sender = str(data.get("sender") or "")
    message = data["message"]
    if isinstance(message, dict):
        name = message.get("name")
        if name and sender and name != sender:
            return None  # a relay: the original delivery (sender → manager) is the message
        calls = _tool_calls(message)
        content = message.get("content")
        if calls and content in (None, "None", ""):
            content = None  # AG2 writes "None" into a relayed tool-call message
        return Entry(
            kind="message",
            seq=seq,
            at=at,
            speaker=sender or str(name or ""),
            recipient=recipient,
            role=str(message.get("role") or ""),
            content=_cut(_text(content)),
            tool_calls=calls,
        )
    return Entry(
        kind="message", seq=seq, at=at, speaker=sender, recipient=recipient, content=_cut(_text(message))
    )


def _messages(session: Session) -> tuple[list[Entry], int]:
    """The session's messages, and how many ``received_message`` events were read for them."""
    rows = list(
        AgentEvent.objects.filter(session=session, name="received_message")
        .order_by("seq")
        .values_list("seq", "created_at", "agent_name", "data")[:TRANSCRIPT_LIMIT]
    )
    return [entry for row in rows if (entry := message_entry(*row)) is not None], len(rows)


def _calls(session: Session) -> tuple[list[Entry], list[Entry]]:
    """The session's LLM calls, and the inputs their requests were the first to carry (ag2 1.x
    ``ModelRequest`` events, each a ``user`` message placed before the call that sent it)."""
    rows = (
        LLMCall.objects.filter(session=session)
        .order_by("seq")
        .values(
            "pk", "seq", "started_at", "agent_name", "model", "request", "response", "error",
            "total_tokens", "cost", "latency_ms",
        )[:TRANSCRIPT_LIMIT]
    )  # fmt: skip
    entries, inputs = [], []
    said: set[str] = set()
    for row in rows:
        prompt, response = call_text(row["request"], row["response"])
        for identity, text in ag2_inputs(row["request"]):
            if identity not in said:
                said.add(identity)
                inputs.append(
                    Entry(
                        kind="message", seq=row["seq"], at=row["started_at"], speaker="user", role="user",
                        content=_cut(text),
                    )
                )  # fmt: skip
        entries.append(
            Entry(
                kind="llm",
                seq=row["seq"],
                at=row["started_at"],
                speaker=row["agent_name"],
                name=row["model"],
                prompt=prompt,
                response=response,
                error=row["error"],
                tokens=row["total_tokens"],
                cost=row["cost"],
                duration_ms=row["latency_ms"],
                url=reverse("admin:ag2_logging_llmcall_change", args=[row["pk"]]),
            )
        )
    return entries, inputs


def _tools(session: Session) -> list[Entry]:
    rows = (
        ToolCall.objects.filter(session=session)
        .order_by("seq")
        .values(
            "pk", "seq", "started_at", "agent_name", "name", "arguments", "result_summary", "error",
            "duration_ms",
        )[:TRANSCRIPT_LIMIT]
    )  # fmt: skip
    return [
        Entry(
            kind="tool",
            seq=row["seq"],
            at=row["started_at"],
            speaker=row["agent_name"],
            name=row["name"],
            arguments=_cut(_text(row["arguments"])),
            content=_cut(row["result_summary"]),
            error=row["error"],
            duration_ms=row["duration_ms"],
            url=reverse("admin:ag2_logging_toolcall_change", args=[row["pk"]]),
        )
        for row in rows
    ]


def transcript(session: Session) -> Transcript:
    """The session's messages, LLM calls and tool calls in journal order (three queries, each
    bounded by :data:`TRANSCRIPT_LIMIT` rows)."""
    (messages, events), (calls, inputs), tools = _messages(session), _calls(session), _tools(session)
    derived = not messages and bool(calls)
    if derived:
        messages = inputs + [
            Entry(
                kind="message",
                seq=call.seq,
                at=call.at,
                speaker=call.speaker,
                role="assistant",
                content=call.response,
            )
            for call in calls
            if call.response
        ]
    # A derived message shares its call's seq: the input it sent comes before it, the response after.
    entries = sorted([*messages, *calls, *tools], key=_order)
    counts = {"message": len(messages), "llm": len(calls), "tool": len(tools)}
    truncated = TRANSCRIPT_LIMIT in (events, len(calls), len(tools))
    return Transcript(entries=entries, counts=counts, truncated=truncated, derived=derived)


def _order(entry: Entry) -> tuple[int, int]:
    if entry.kind != "message":
        return entry.seq, 1
    return entry.seq, 0 if entry.role == "user" and entry.speaker == "user" else 2


class TranscriptViewMixin(MixinBase):
    """The session's conversation page, ``<session>/transcript/`` (the *view session* permission)."""

    session_transcript_template = "admin/ag2_logging/session/transcript.html"

    def get_transcript_urls(self) -> list[URLPattern]:
        return [
            path(
                "<path:object_id>/transcript/",
                self.admin_site.admin_view(self.transcript_view),
                name="ag2_logging_session_transcript",
            )
        ]

    def get_transcript(self, session: Session) -> Transcript:
        """What the page shows; override to add or leave out entries."""
        return transcript(session)

    def transcript_view(self, request: HttpRequest, object_id: str) -> HttpResponseBase:
        if not self.has_view_permission(request):
            raise PermissionDenied
        session = self.get_object(request, unquote(object_id))
        if session is None:
            raise Http404(_("No session with id “%(id)s”.") % {"id": object_id})
        if not self.has_view_permission(request, session):
            raise PermissionDenied
        report = self.get_transcript(session)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Conversation"),
            "subtitle": str(session),
            "opts": self.model._meta,
            "app_label": self.model._meta.app_label,
            "original": session,
            "session": session,
            "transcript": report,
            "entries": report.entries,
            "limit": TRANSCRIPT_LIMIT,
            "links": {
                "change": reverse("admin:ag2_logging_session_change", args=[session.pk]),
                "timeline": reverse("admin:ag2_logging_session_timeline", args=[session.pk]),
            },
        }
        request.current_app = self.admin_site.name
        return visible_response(TemplateResponse(request, self.session_transcript_template, context))
