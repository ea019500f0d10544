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

__all__ = ["BODY_LIMIT", "TREE_LIMIT", "Row", "TreeNode", "call_text", "fold_steps", "session_tree"]

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
        for message in request["messages"]:
            if isinstance(message, dict):
                who = message.get("name") or message.get("role") or "?"
                lines.append(f"[{who}] {_content(message.get('content'))}")
        return "\n\n".join(lines)
    return json.dumps(request, indent=2, ensure_ascii=False, default=str) if request is not None else ""


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
