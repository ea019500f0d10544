"""ag2 1.x: every tool execution made inside a session is a ToolCall row, exactly once, whatever
the middleware list of the agent that ran it (issue 15, item 16): the tools a ``TaskConfig``
sub-task inherits and runs on its bare Agent (parallel ``run_subtasks`` included), the tools of an
Agent built without ``logging_middleware()``, and those of a sub-agent that carries its own.

Real agents against the fake LLM server; nothing mocked. A sub-task's objective is JSON text in
the parent's tool call, with its ``[[`` written ``\\u005b\\u005b``: the parent's request then holds
no directive of the sub-task's, and the sub-agent receives the decoded text with its own.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from ag2 import Agent, TaskConfig
from ag2.config import OpenAIConfig

from ag2_logging import ag2_logging_session
from ag2_logging.capture.counters import stats
from ag2_logging.integrations.ag2 import logging_middleware
from ag2_logging.models import LLMCall, Session, ToolCall
from ag2_logging.testing import FakeLLMServer
from tests import scenarios
from tests.ag2.conftest import run

pytestmark = [pytest.mark.ag2, pytest.mark.django_db(transaction=True)]


def fail_tool(reason: str) -> str:
    """Always fails."""
    raise ValueError(f"cannot do {reason}")


def hidden(text: str) -> str:
    """``text`` as a JSON string whose directives only the decoded text shows."""
    return json.dumps(text).replace("[[", "\\u005b\\u005b")


def delegate(tool: str, tasks: list[str]) -> str:
    """The parent's message: one call of ``tool`` (run_subtask or run_subtasks) for ``tasks``."""
    if tool == "run_subtask":
        (task,) = tasks
        return f'[[tool:run_subtask {{"task": {hidden(task)}}}]]'
    return f'[[tool:run_subtasks {{"tasks": [{", ".join(hidden(t) for t in tasks)}], "parallel": true}}]]'


async def ask(agent: Agent, message: str) -> Any:
    async with ag2_logging_session("chat-subtasks", "subtasks") as recorder:
        reply = await agent.ask(message)
    assert recorder is not None
    return reply


def tool_rows(session: Session) -> list[ToolCall]:
    return list(ToolCall.objects.filter(session=session).order_by("name", "agent_name"))


# (case, the parent's middleware (factory), the delegating tool, the sub-tasks' objectives,
# the sub-tasks' tool rows expected as (name, arguments, result, error start))
SUBTASK_CASES = [
    (
        "one sub-task, parent with logging_middleware",
        lambda: [logging_middleware()],
        "run_subtask",
        ['sum them [[tool:add {"a": 2, "b": 3}]]'],
        [("add", {"a": 2, "b": 3}, "5", "")],
    ),
    (
        "parallel sub-tasks, parent with logging_middleware",
        lambda: [logging_middleware()],
        "run_subtasks",
        [
            'sum them [[tool:add {"a": 2, "b": 3}]]',
            'sum more [[tool:add {"a": 40, "b": 2}]]',
            'break it [[tool:fail_tool {"reason": "SKU-9"}]]',
        ],
        [
            ("add", {"a": 2, "b": 3}, "5", ""),
            ("add", {"a": 40, "b": 2}, "42", ""),
            ("fail_tool", {"reason": "SKU-9"}, "", "ValueError: cannot do SKU-9"),
        ],
    ),
    (
        "parallel sub-tasks, parent without logging_middleware",
        lambda: [],
        "run_subtasks",
        ['sum them [[tool:add {"a": 7, "b": 8}]]', 'sum more [[tool:add {"a": 1, "b": 1}]]'],
        [("add", {"a": 7, "b": 8}, "15", ""), ("add", {"a": 1, "b": 1}, "2", "")],
    ),
]


@pytest.mark.parametrize(
    ("middleware", "tool", "tasks", "expected"),
    [case[1:] for case in SUBTASK_CASES],
    ids=[case[0] for case in SUBTASK_CASES],
)
def test_subtask_tool_executions_are_recorded_once(
    llm: FakeLLMServer,
    model_config: OpenAIConfig,
    middleware: Any,
    tool: str,
    tasks: list[str],
    expected: Any,
) -> None:
    agent = Agent(
        "assistant",
        config=model_config,
        tools=[scenarios.add, fail_tool],
        tasks=TaskConfig(),
        middleware=middleware(),
    )
    reply = run(ask(agent, delegate(tool, tasks)))
    assert reply.body.startswith("tool result: ")

    session = Session.objects.get()
    # parent: tool call + answer; each sub-task: tool call + answer
    assert len(llm.served) == 2 + 2 * len(tasks)
    assert LLMCall.objects.filter(session=session).count() == len(llm.served)

    rows = tool_rows(session)
    (parent,) = [r for r in rows if r.name == tool]
    assert parent.agent_name == "assistant" and parent.error == ""
    assert parent.arguments == (
        {"task": tasks[0]} if tool == "run_subtask" else {"tasks": tasks, "parallel": True}
    )
    subtask_rows = sorted((r for r in rows if r.name != tool), key=lambda r: (r.name, r.result_summary))
    assert len(subtask_rows) == len(expected)
    for row, (name, arguments, result, error) in zip(
        subtask_rows, sorted(expected, key=lambda e: (e[0], e[2])), strict=True
    ):
        assert (row.name, row.arguments, row.result_summary) == (name, arguments, result)
        assert row.error.startswith(error) and bool(row.error) == bool(error)
    # each sub-task's tool ran on its own bare Agent, named as AG2 names it
    names = {r.agent_name for r in subtask_rows}
    assert len(names) == len(tasks) and all(n.startswith("subtask-") for n in names)
    for row in rows:
        assert row.duration_ms is not None and row.duration_ms >= 0
        assert row.started_at is not None and row.ended_at is not None and row.started_at <= row.ended_at
    assert len(rows) == 1 + len(expected)


# (case, the sub-agent's middleware (factory), whether a middleware of ours records its tool)
SUB_AGENT_CASES = [
    ("sub-agent with logging_middleware", lambda: [logging_middleware()], True),
    ("sub-agent listing it twice", lambda: [logging_middleware(), logging_middleware()], True),
    ("sub-agent without it", lambda: [], False),
]


@pytest.mark.parametrize(
    ("middleware", "watched"),
    [case[1:] for case in SUB_AGENT_CASES],
    ids=[case[0] for case in SUB_AGENT_CASES],
)
def test_sub_agent_tools_are_recorded_once_whatever_its_middleware(
    llm: FakeLLMServer, model_config: OpenAIConfig, middleware: Any, watched: bool
) -> None:
    researcher = Agent("researcher", config=model_config, tools=[scenarios.add], middleware=middleware())
    agent = Agent(
        "assistant",
        config=model_config,
        tools=[researcher.as_tool(description="Research a topic.")],
        middleware=[logging_middleware()],
    )
    objective = hidden('count [[tool:add {"a": 20, "b": 22}]]')
    before = stats.get("unwatched_tool_calls", 0)
    run(ask(agent, f'[[tool:task_researcher {{"objective": {objective}}}]]'))

    session = Session.objects.get()
    rows = tool_rows(session)
    assert [(r.agent_name, r.name, r.arguments, r.result_summary, r.error) for r in rows] == [
        ("researcher", "add", {"a": 20, "b": 22}, "42", ""),
        (
            "assistant",
            "task_researcher",
            {"objective": 'count [[tool:add {"a": 20, "b": 22}]]'},
            "tool result: 42",
            "",
        ),
    ]
    assert stats.get("unwatched_tool_calls", 0) - before == (0 if watched else 1)


def test_helper_agent_tools_inside_a_tool_are_recorded(
    llm: FakeLLMServer, model_config: OpenAIConfig
) -> None:
    """A helper agent awaited inside a tool, without logging_middleware(), runs a tool of its own."""
    helper = Agent("helper", config=model_config, tools=[scenarios.add])

    async def consult(question: str) -> str:
        """Ask the helper."""
        reply = await helper.ask(question)
        return reply.body or ""

    agent = Agent("assistant", config=model_config, tools=[consult], middleware=[logging_middleware()])
    question = hidden('[[tool:add {"a": 1, "b": 2}]]')
    run(ask(agent, f'[[tool:consult {{"question": {question}}}]]'))

    rows = tool_rows(Session.objects.get())
    assert [(r.agent_name, r.name, r.result_summary) for r in rows] == [
        ("helper", "add", "3"),
        ("assistant", "consult", "tool result: 3"),
    ]


def test_no_middleware_outside_a_session_records_nothing(
    llm: FakeLLMServer, model_config: OpenAIConfig
) -> None:
    """Outside a session, a tool no middleware of ours watched is not ours to record."""
    agent = Agent("assistant", config=model_config, tools=[scenarios.add])
    before = (stats.get("unwatched_tool_calls", 0), stats["unattributed_calls"])
    reply = run(agent.ask('[[tool:add {"a": 1, "b": 2}]]'))
    assert reply.body == "tool result: 3"
    assert (stats.get("unwatched_tool_calls", 0), stats["unattributed_calls"]) == before
    assert not ToolCall.objects.exists() and not Session.objects.exists()
