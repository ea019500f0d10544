"""What the session timeline page shows of a :class:`~ag2_logging.reports.figures.Timeline`:
its steps with the agent events folded (:func:`fold_steps`), each LLM call's prompt and response
as text (:func:`call_text`), and the tree of nested sessions (:func:`session_tree`).

A three-call session can hold dozens of agent events (AG2 logs one per message received); the
calls and tool calls are what a reader follows, so by default every run of events between them
is one folded row ("12 events"), and with ``everything`` only runs of ``run`` or more are.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ag2_logging.models import Session
from ag2_logging.reports.figures import Step

__all__ = [
    "BODY_LIMIT",
    "TREE_LIMIT",
    "Row",
    "TreeNode",
    "ag2_inputs",
    "call_text",
    "fold_steps",
    "session_tree",
]

#: Characters of a prompt or a response shown in place (the call's page has it all).
BODY_LIMIT = 20_000
#: Sessions shown in a tree of nested sessions.
TREE_LIMIT = 200


@dataclass
class Row:
    """A timeline row: one step, or a run of agent events folded into one (``folded``)."""

    step: Step | None = None
    folded: list[Step] = field(default_factory=list)

    @property
    def summary(self) -> str:
        """The folded events by name, most frequent first: ``received_message (12), new_agent``."""
        counts = Counter(step.name or "—" for step in self.folded)
        return ", ".join(f"{name} ({n})" if n > 1 else name for name, n in counts.most_common())


def fold_steps(steps: list[Step], *, everything: bool = False, run: int = 3) -> list[Row]:
    """``steps`` (in time order) as rows: LLM calls and tool calls one row each; agent events
    folded, every run of them by default, with ``everything`` only runs of ``run`` or more (the
    shorter ones are rows of their own). The order of the steps is kept."""
    rows: list[Row] = []
    pending: list[Step] = []

    def flush() -> None:
        if everything and len(pending) < run:
            rows.extend(Row(step=s) for s in pending)
        elif pending:
            rows.append(Row(folded=list(pending)))
        pending.clear()

    for step in steps:
        if step.kind == "event":
            pending.append(step)
            continue
        flush()
        rows.append(Row(step=step))
    flush()
    return rows


def _content(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # content parts: [{"type": "text", "text": ...}, ...]
        return "\n".join(str(part.get("text", "")) if isinstance(part, dict) else str(part) for part in value)
    return "" if value is None else json.dumps(value, ensure_ascii=False, default=str)


def _cut(text: str) -> str:
    return text if len(text) <= BODY_LIMIT else text[:BODY_LIMIT] + "\n…"


def _prompt(request: Any) -> str:
    if isinstance(request, dict) and isinstance(request.get("messages"), list):
        lines = []
        shown: set[str] = set()  # ag2 1.x tool calls and results already shown, by call id
        for message in request["messages"]:
            if not isinstance(message, dict):
                continue
            if "type" in message and "role" not in message:  # an ag2 1.x conversation event
                lines += _ag2_event(message, shown)
                continue
            who = message.get("name") or message.get("role") or "?"
            lines.append(f"[{who}] {_content(message.get('content'))}")
        return "\n\n".join(lines)
    return json.dumps(request, indent=2, ensure_ascii=False, default=str) if request is not None else ""


#: Keys of a serialized ag2 1.x event that say nothing to a reader.
_AG2_NOISE = frozenset(
    {"type", "__event__", "__dataclass__", "created_at", "metadata", "vendor_metadata", "source"}
)


def _ag2_text(value: Any) -> str:
    """The readable text of an ag2 1.x value: an input part's ``content`` or ``data``, a tool
    result's parts, else the value as compact JSON without the serializer's bookkeeping."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(_ag2_text(item) for item in value)
    if isinstance(value, dict):
        if isinstance(value.get("data"), dict) and "__dataclass__" in value:
            return _ag2_text(value["data"])
        for key in ("content", "parts", "text", "data"):
            if key in value and value[key] is not None:
                return _ag2_text(value[key])
        value = {k: v for k, v in value.items() if k not in _AG2_NOISE}
    return json.dumps(value, ensure_ascii=False, default=str)


def _ag2_calls(calls: Any, shown: set[str]) -> list[str]:
    """``→ name(arguments)`` for each tool call not shown yet."""
    out = []
    for call in calls if isinstance(calls, list) else []:
        if isinstance(call, dict) and str(call.get("id")) not in shown:
            shown.add(str(call.get("id")))
            out.append(f"→ {call.get('name', '?')}({call.get('arguments', '')})")
    return out


def _ag2_event(event: dict[str, Any], shown: set[str]) -> list[str]:
    """The paragraphs of one ag2 1.x conversation event (``[speaker] text``). A tool call is
    shown with the model response that made it, a result once, however many events repeat them
    (AG2 keeps a response's calls, each call and each batch of results as events of their own)."""
    kind = str(event.get("type"))
    if kind == "ModelRequest":
        return [f"[user] {_ag2_text(event.get('parts'))}"]
    if kind == "ModelResponse":
        tool_calls = event.get("tool_calls")
        calls = _ag2_calls(tool_calls.get("calls") if isinstance(tool_calls, dict) else None, shown)
        message = event.get("message")
        text = _ag2_text(message) if message is not None else ""
        return [f"[assistant] {chr(10).join(part for part in (text, *calls) if part)}"]
    if kind in ("ToolCallsEvent", "ToolCallEvent"):
        calls = _ag2_calls(event.get("calls") if kind == "ToolCallsEvent" else [event], shown)
        return [f"[assistant] {call}" for call in calls]
    if kind in ("ToolResultsEvent", "ToolResultEvent"):
        results = event.get("results") if kind == "ToolResultsEvent" else [event]
        out = []
        for result in results if isinstance(results, list) else []:
            key = f"result:{result.get('parent_id')}" if isinstance(result, dict) else ""
            if isinstance(result, dict) and key not in shown:
                shown.add(key)
                out.append(f"[tool {result.get('name', '?')}] {_ag2_text(result.get('result'))}")
        return out
    return [f"[{kind}] {_ag2_text(event)}"]


def ag2_inputs(request: Any) -> list[tuple[str, str]]:
    """The inputs (``ModelRequest`` events: what the user or the calling code said) of an ag2
    1.x call's stored request, as (identity, text): the identity is the event as stored, the
    same in every later call whose history repeats it."""
    messages = request.get("messages") if isinstance(request, dict) else None
    return [
        (json.dumps(message, sort_keys=True, default=str), _ag2_text(message.get("parts")))
        for message in (messages if isinstance(messages, list) else [])
        if isinstance(message, dict) and message.get("type") == "ModelRequest" and "role" not in message
    ]


def _response(response: Any) -> str:
    if isinstance(response, dict) and isinstance(response.get("choices"), list):
        parts = []
        for choice in response["choices"]:
            message = choice.get("message") if isinstance(choice, dict) else None
            if not isinstance(message, dict):
                continue
            if message.get("content") is not None:
                parts.append(_content(message["content"]))
            for tool in message.get("tool_calls") or []:
                function = tool.get("function", {}) if isinstance(tool, dict) else {}
                parts.append(f"→ {function.get('name', '?')}({function.get('arguments', '')})")
        if parts:
            return "\n\n".join(parts)
    if isinstance(response, dict) and isinstance(response.get("message"), dict):  # ag2 1.x
        message = response["message"]
        parts = [_content(message["content"])] if message.get("content") is not None else []
        for tool in message.get("tool_calls") or []:
            if isinstance(tool, dict):
                parts.append(f"→ {tool.get('name', '?')}({tool.get('arguments', '')})")
        if parts:
            return "\n\n".join(parts)
    return json.dumps(response, indent=2, ensure_ascii=False, default=str) if response is not None else ""


def call_text(request: Any, response: Any) -> tuple[str, str]:
    """An LLM call's stored (redacted) request and response as text to read: the prompt's
    messages as ``[role] content`` paragraphs, the response's message contents and tool calls
    (``→ name(arguments)``); other shapes as indented JSON. Each is cut at ``BODY_LIMIT``
    characters."""
    return _cut(_prompt(request)), _cut(_response(response))


@dataclass
class TreeNode:
    """A session in the tree of nested sessions, with its children (``current``: the page's)."""

    session: Session
    children: list[TreeNode] = field(default_factory=list)
    current: bool = False


def session_tree(session: Session, *, limit: int = TREE_LIMIT) -> TreeNode | None:
    """The tree of sessions ``session`` belongs to, from its topmost ancestor down (at most
    ``limit`` sessions, one query per level); None when it has neither parent nor children."""
    root = session
    seen = {session.pk}
    while root.parent_id is not None and root.parent_id not in seen and len(seen) < limit:
        parent = Session.objects.filter(pk=root.parent_id).first()
        if parent is None:
            break
        seen.add(parent.pk)
        root = parent
    top = TreeNode(session=root, current=root.pk == session.pk)
    level = [top]
    visited = {root.pk}  # a parent loop in damaged data is not followed twice
    count = 1
    while level and count < limit:
        by_id = {node.session.pk: node for node in level}
        children = Session.objects.filter(parent_id__in=list(by_id)).order_by("started_at")[: limit - count]
        level = []
        for child in children:
            if child.pk in visited:
                continue
            visited.add(child.pk)
            node = TreeNode(session=child, current=child.pk == session.pk)
            by_id[child.parent_id].children.append(node)  # type: ignore[index]
            level.append(node)
            count += 1
    return top if top.children else None
