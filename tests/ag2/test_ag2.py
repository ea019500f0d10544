"""Real ag2 1.x agents against the fake LLM server, recorded end to end through the middleware.

Each test compares the rows with what the fake server served and with AG2's own ``UsageReport``
for the same run (``await reply.usage()``), which sums the ``UsageEvent`` objects on the stream.
"""

from __future__ import annotations

import asyncio
import json
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from ag2 import Agent, TaskConfig
from ag2.annotations import Context
from ag2.config import OpenAIConfig
from ag2.events import BaseEvent, ModelResponse, Usage, UsageEvent
from ag2.middleware import AgentTurn, BaseMiddleware, Middleware, RetryMiddleware
from ag2.usage import UsageReport

from ag2_logging import ag2_logging_session, flush
from ag2_logging.capture import counters, unattributed
from ag2_logging.capture.recorder import SessionRecorder
from ag2_logging.integrations.ag2 import logging_middleware
from ag2_logging.models import AgentEvent, LLMCall, Session, ToolCall
from ag2_logging.pipeline.ingest import ingest_journal
from ag2_logging.testing import FakeLLMServer
from tests import scenarios
from tests.ag2.conftest import run
from tests.conftest import TEST_API_KEY, expected_cost

pytestmark = [pytest.mark.ag2, pytest.mark.django_db(transaction=True)]

USAGE = "[[usage:prompt=200,completion=50,cached=80,reasoning=20]]"


def fail_tool(reason: str) -> str:
    """Always fails."""
    raise ValueError(f"cannot do {reason}")


def make_agent(config: OpenAIConfig, name: str = "assistant", *, retry: int = 0, **kwargs: Any) -> Agent:
    middleware = [RetryMiddleware(max_retries=retry)] if retry else []
    return Agent(
        name,
        "You are helpful.",
        config=config,
        tools=kwargs.pop("tools", [scenarios.add, fail_tool]),
        middleware=[*middleware, logging_middleware(), *kwargs.pop("middleware", [])],
        **kwargs,
    )


async def ask(agent: Agent, message: str, chat_id: str = "chat") -> tuple[Any, UsageReport]:
    async with ag2_logging_session(chat_id, "triage", "acme") as recorder:
        reply = await agent.ask(message)
        report = await reply.usage()
    assert recorder is not None
    return reply, report


def calls(session: Session) -> list[LLMCall]:
    return list(session.llm_calls.order_by("seq"))


def assert_totals_match(session: Session, report: UsageReport, server: FakeLLMServer) -> None:
    """Session totals == AG2's own usage report == what the fake server billed."""
    total = report.total
    ag2_totals = (
        int(total.prompt_tokens or 0),
        int(total.completion_tokens or 0),
        int(total.cache_read_input_tokens or 0),
        int(total.thinking_tokens or 0),
        int(total.total_tokens or 0),
    )
    ours = (
        session.prompt_tokens,
        session.completion_tokens,
        session.cached_tokens,
        session.reasoning_tokens,
        session.total_tokens,
    )
    served = server.total_usage()
    billed = (
        served.prompt_tokens,
        served.completion_tokens,
        served.cached_tokens,
        served.reasoning_tokens,
        served.total_tokens,
    )
    assert ours == ag2_totals == billed
    rows = calls(session)
    assert session.call_count == len(rows)
    assert session.total_cost == sum((c.cost for c in rows if c.cost is not None), Decimal(0))
    assert session.unpriced_calls == 0


def assert_call(call: LLMCall, served: Any, *, agent: str = "assistant", attempt: int = 1) -> None:
    usage = served.usage
    assert call.status == "success" and call.error == ""
    assert (call.agent_name, call.provider, call.model) == (agent, "openai", "gpt-4o-mini")
    assert call.response_id == served.response_id
    assert (call.prompt_tokens, call.completion_tokens, call.cached_tokens, call.reasoning_tokens) == (
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.cached_tokens,
        usage.reasoning_tokens,
    )
    assert call.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert call.cost == expected_cost(
        "gpt-4o-mini",
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.cached_tokens,
        usage.reasoning_tokens,
    )
    assert call.price_status == "priced"
    assert call.attempt == attempt
    assert call.latency_ms is not None and call.latency_ms > 0
    assert call.started_at is not None and call.started_at <= call.ended_at


def journal_events(session: Session) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in Path(session.journal_path).read_bytes().splitlines()]


# -- the four scenarios of the issue ---------------------------------------------------------------


def test_plain_reply_is_recorded_exactly(llm: FakeLLMServer, model_config: OpenAIConfig) -> None:
    agent = make_agent(model_config)
    reply, report = run(ask(agent, f"hello {USAGE} [[marker:p1]]", "chat-plain"))
    assert reply.body == "fake reply 1 [[marker:p1]]"

    session = Session.objects.get()
    assert (session.chat_id, session.workflow_name, session.enterprise_id, session.status) == (
        "chat-plain",
        "triage",
        "acme",
        "completed",
    )
    assert session.ingested_at is not None
    (call,) = calls(session)
    assert_call(call, llm.served[0])
    assert (call.prompt_tokens, call.completion_tokens, call.cached_tokens, call.reasoning_tokens) == (
        200,
        50,
        80,
        20,
    )
    assert (call.retries, call.ag2_cost, call.is_cached) == (0, None, False)
    assert call.request["model"] == "gpt-4o-mini"
    assert call.request["messages"][0]["type"] == "ModelRequest"
    assert "hello" in json.dumps(call.request["messages"][0])
    assert call.response["message"]["content"] == "fake reply 1 [[marker:p1]]"
    assert call.response["finish_reason"] == "stop"
    assert_totals_match(session, report, llm)
    assert (session.error_count, session.retry_count) == (0, 0)

    events = list(
        AgentEvent.objects.filter(session=session).order_by("seq").values_list("agent_name", "name")
    )
    assert events == [("assistant", "new_agent"), ("assistant", "turn")]
    turn = AgentEvent.objects.get(session=session, name="turn")
    assert turn.data == {"trigger": "ModelRequest", "llm_calls": 1, "tool_calls": 0, "finish_reason": "stop"}
    assert turn.duration_ms is not None and turn.duration_ms > 0
    new_agent = AgentEvent.objects.get(session=session, name="new_agent")
    assert new_agent.data == {
        "class": "Agent",
        "generation": "ag2",
        "config_class": "OpenAIConfig",
        "provider": "openai",
        "model": "gpt-4o-mini",
    }
    llm_lines = [e for e in journal_events(session) if e["type"] == "llm_call"]
    assert [e["generation"] for e in llm_lines] == ["ag2"]


def test_tool_round_trip_and_a_failing_tool(llm: FakeLLMServer, model_config: OpenAIConfig) -> None:
    agent = make_agent(model_config)

    async def conversation() -> tuple[UsageReport, UsageReport]:
        async with ag2_logging_session("chat-tools", "triage", "acme"):
            first = await agent.ask('[[tool:add {"a": 2, "b": 3}]]')
            second = await agent.ask('[[tool:fail_tool {"reason": "that"}]]')
            return await first.usage(), await second.usage()

    first, second = run(conversation())
    session = Session.objects.get()
    rows = calls(session)
    assert len(rows) == len(llm.served) == 4
    for row, served in zip(rows, llm.served, strict=True):
        assert_call(row, served)
    assert rows[0].response["message"]["tool_calls"] == [
        {"id": "call_fake_1", "name": "add", "arguments": '{"a": 2, "b": 3}'}
    ]
    assert rows[0].response["finish_reason"] == "tool_calls"
    assert [m["type"] for m in rows[1].request["messages"]][-2:] == ["ToolResultEvent", "ToolResultsEvent"]

    added, failed = ToolCall.objects.filter(session=session).order_by("seq")
    assert (added.agent_name, added.name, added.arguments, added.result_summary, added.error) == (
        "assistant",
        "add",
        {"a": 2, "b": 3},
        "5",
        "",
    )
    assert added.duration_ms is not None and added.duration_ms >= 0
    assert added.started_at is not None and added.started_at <= added.ended_at
    assert (failed.name, failed.arguments, failed.result_summary) == ("fail_tool", {"reason": "that"}, "")
    assert failed.error == "ValueError: cannot do that"
    # two asks, two streams: AG2 reports each; the session holds both
    assert session.prompt_tokens == int(first.total.prompt_tokens + second.total.prompt_tokens)
    assert session.total_tokens == llm.total_usage().total_tokens == 600
    turns = AgentEvent.objects.filter(session=session, name="turn").order_by("seq")
    assert [t.data["tool_calls"] for t in turns] == [1, 1]


def test_llm_errors_retried_by_retry_middleware_are_each_recorded(
    llm: FakeLLMServer, model_config: OpenAIConfig
) -> None:
    agent = make_agent(model_config, retry=3)
    reply, report = run(ask(agent, f"[[fail:429x2]] retry me {USAGE}", "chat-retry"))
    assert reply.body == "fake reply 3"
    assert [r.status for r in llm.served] == [429, 429, 200]

    session = Session.objects.get()
    rows = calls(session)
    assert [(c.attempt, c.retries, c.status) for c in rows] == [
        (1, 0, "error"),
        (2, 1, "error"),
        (3, 1, "success"),
    ]
    assert len({c.invocation_id for c in rows}) == 1 and rows[0].invocation_id
    for failed in rows[:2]:
        assert failed.error.startswith("RateLimitError: Error code: 429")
        assert (failed.total_tokens, failed.cost, failed.response_id, failed.response) == (0, 0, "", None)
        assert failed.latency_ms is not None
    assert_call(rows[2], llm.served[2], attempt=3)
    assert (session.call_count, session.error_count, session.retry_count) == (3, 2, 2)
    assert_totals_match(session, report, llm)


def test_retries_exhausted_fail_the_session(llm: FakeLLMServer, model_config: OpenAIConfig) -> None:
    agent = make_agent(model_config, retry=1)
    with pytest.raises(Exception, match="Error code: 500"):
        run(ask(agent, "[[fail:500x5]] boom", "chat-down"))

    session = Session.objects.get()
    assert session.status == "failed" and "500" in session.error
    assert [(c.attempt, c.status) for c in calls(session)] == [(1, "error"), (2, "error")]
    assert (session.call_count, session.error_count, session.retry_count, session.total_tokens) == (
        2,
        2,
        1,
        0,
    )
    turn = AgentEvent.objects.get(session=session, name="turn")
    assert turn.error.startswith("InternalServerError: Error code: 500")


def test_subtask_usage_rolled_up_by_ag2_is_counted_once(
    llm: FakeLLMServer, model_config: OpenAIConfig
) -> None:
    """The sub-task runs on a bare Agent (no middleware): its call reaches us as AG2's rollup."""
    agent = make_agent(model_config, tasks=TaskConfig())
    sub_usage = "[[usage:prompt=300,completion=60,cached=100,reasoning=20]]"
    task = json.dumps({"task": f"research SKU-1 {sub_usage}"})
    reply, report = run(ask(agent, f"[[tool:run_subtask {task}]] {USAGE}", "chat-subtask"))
    assert reply.body == "tool result: fake reply 2"
    assert report.by_kind["subtask"].prompt_tokens == 300  # AG2 rolled the sub-task up...
    assert len(report.records) == 3  # ...into one record beside the parent's two calls

    session = Session.objects.get()
    parent_1, sub, parent_2 = calls(session)
    assert_call(parent_1, llm.served[0])
    assert_call(parent_2, llm.served[2])
    assert sub.agent_name.startswith("subtask-")
    assert (sub.provider, sub.model, sub.status) == ("openai", "gpt-4o-mini", "success")
    assert (sub.prompt_tokens, sub.completion_tokens, sub.cached_tokens, sub.reasoning_tokens) == (
        300,
        60,
        100,
        20,
    )
    assert sub.cost == expected_cost("gpt-4o-mini", 300, 60, 100, 20)
    # recorded from the OpenAI SDK as the sub-agent made it (AG2's rollup, which carries no
    # response id nor latency, is then skipped)
    assert sub.response_id == llm.served[1].response_id and sub.latency_ms is not None
    assert sub.response == {"source": "openai_sdk", "stream": False}
    assert_totals_match(session, report, llm)
    assert session.call_count == 3 and session.prompt_tokens == 700

    tool = ToolCall.objects.get(session=session)
    assert (tool.name, tool.result_summary) == ("run_subtask", "fake reply 2")
    task_events = AgentEvent.objects.filter(session=session, name__startswith="task_").order_by("seq")
    assert [(e.name, e.agent_name) for e in task_events] == [
        ("task_started", sub.agent_name),
        ("task_completed", sub.agent_name),
    ]
    assert task_events[0].data["parent_agent"] == "assistant"
    assert "research SKU-1" in task_events[0].data["objective"]


def test_sub_agent_with_its_own_middleware_is_not_counted_twice(
    llm: FakeLLMServer, model_config: OpenAIConfig
) -> None:
    """The sub-agent records its call itself; the rollup AG2 then sends the parent is skipped."""
    researcher = make_agent(model_config, "researcher", tools=[])
    agent = make_agent(model_config, tools=[researcher.as_tool(description="Research a topic.")])
    objective = json.dumps(
        {"objective": "find SKU-1 [[usage:prompt=300,completion=60,cached=100,reasoning=20]]"}
    )
    _, report = run(ask(agent, f"[[tool:task_researcher {objective}]] {USAGE}", "chat-as-tool"))
    assert report.by_kind["subtask"].prompt_tokens == 300

    session = Session.objects.get()
    rows = calls(session)
    assert [c.agent_name for c in rows] == ["assistant", "researcher", "assistant"]
    for row, served in zip(rows, llm.served, strict=True):
        assert_call(row, served, agent=row.agent_name)  # the sub-agent's row has latency and response id
    assert_totals_match(session, report, llm)
    assert [t.name for t in ToolCall.objects.filter(session=session)] == ["task_researcher"]


def test_the_middleware_listed_twice_records_once(llm: FakeLLMServer, model_config: OpenAIConfig) -> None:
    agent = make_agent(model_config, middleware=[logging_middleware()])  # on the agent, twice...

    async def go() -> UsageReport:
        async with ag2_logging_session("chat-twice"):
            reply = await agent.ask(
                '[[tool:add {"a": 1, "b": 2}]]', middleware=[logging_middleware()]
            )  # ...and per call
            return await reply.usage()

    report = run(go())
    session = Session.objects.get()
    assert (session.call_count, ToolCall.objects.count()) == (2, 1)
    assert AgentEvent.objects.filter(name="turn").count() == 1
    assert_totals_match(session, report, llm)


class _ReportsUsage(BaseMiddleware):
    """Reports one call of its own on the stream after the turn's LLM call, as AG2's compaction
    does (a summary made on a throwaway stream): no tool runs in the turn."""

    async def on_turn(self, call_next: AgentTurn, event: BaseEvent, context: Context) -> ModelResponse:
        response = await call_next(event, context)
        usage = Usage(prompt_tokens=120, completion_tokens=30)
        await context.send(UsageEvent(usage, kind="compaction", model="gpt-4o-mini", provider="openai"))
        return response


def test_usage_another_middleware_reports_without_a_tool_is_recorded(
    llm: FakeLLMServer, model_config: OpenAIConfig
) -> None:
    """An agent listing middleware other than ours and AG2's quiet built-ins has its stream
    watched from the turn's start (a turn without tools is watched only then)."""
    agent = make_agent(model_config, middleware=[Middleware(_ReportsUsage)])
    _, report = run(ask(agent, f"hello {USAGE}", "chat-compaction"))
    assert report.by_kind["compaction"].prompt_tokens == 120

    session = Session.objects.get()
    call, compaction = calls(session)
    assert_call(call, llm.served[0])
    assert (compaction.agent_name, compaction.model, compaction.prompt_tokens) == (
        "assistant",
        "gpt-4o-mini",
        120,
    )
    assert compaction.response == {"source": "usage_event", "kind": "compaction", "finish_reason": None}
    assert (session.call_count, session.prompt_tokens) == (2, 200 + 120)


# -- the same scenario as classic autogen ----------------------------------------------------------


def test_shared_tool_round_trip_scenario_totals(llm: FakeLLMServer, model_config: OpenAIConfig) -> None:
    """tests/test_classic.py runs this scenario with classic autogen: the totals must be the same."""
    agent = make_agent(model_config)
    reply, report = run(ask(agent, scenarios.TOOL_ROUND_TRIP_MESSAGE, "chat-shared"))
    assert reply.body == "tool result: 5 [[marker:round-trip]]"
    session = Session.objects.get()
    assert scenarios.session_totals(session) == scenarios.tool_round_trip_totals()
    assert scenarios.tool_rows(session) == scenarios.TOOL_ROUND_TRIP_TOOL_ROWS
    assert_totals_match(session, report, llm)


# -- attribution -----------------------------------------------------------------------------------


def test_sync_with_around_await_the_seed_system_pattern(
    llm: FakeLLMServer, model_config: OpenAIConfig
) -> None:
    agent = make_agent(model_config)

    async def handler() -> None:
        with ag2_logging_session("chat-mixed", "legacy", "acme"):
            await agent.ask('[[tool:add {"a": 4, "b": 5}]]')

    run(handler())
    flush()  # the Session row is written by the app's database thread, never on the event loop
    session = Session.objects.get()
    assert (session.status, session.call_count) == ("completed", 2)
    assert ToolCall.objects.get().result_summary == "9"
    assert LLMCall.objects.unattributed().count() == 0


def test_ag2_logged_async_view_attributes_without_arguments(
    llm: FakeLLMServer, model_config: OpenAIConfig
) -> None:
    from django.test import RequestFactory

    from ag2_logging import ag2_logged

    agent = make_agent(model_config)

    @ag2_logged(workflow_name="support_triage")
    async def view(request: Any, enterprise_id: str, chat_id: str) -> str:
        return (await agent.ask('[[tool:add {"a": 20, "b": 22}]]')).body

    request = RequestFactory().get("/triage/")
    assert run(view(request, enterprise_id="acme", chat_id="chat-view")) == "tool result: 42"
    flush()
    session = Session.objects.get()
    assert (session.chat_id, session.enterprise_id, session.workflow_name) == (
        "chat-view",
        "acme",
        "support_triage",
    )
    assert (session.status, session.call_count, session.tool_calls.get().result_summary) == (
        "completed",
        2,
        "42",
    )


def test_concurrent_sessions_never_mix(llm: FakeLLMServer, model_config: OpenAIConfig) -> None:
    agent = make_agent(model_config)  # one agent, shared: AG2 makes a middleware per turn

    async def one(n: int) -> None:
        async with ag2_logging_session(f"chat-{n}", "fanout", "acme"):
            for _ in range(2):
                await agent.ask(
                    f"[[marker:m{n}]] [[usage:prompt={100 + n},completion=10,cached=0,reasoning=0]]"
                )

    async def all_of_them() -> None:
        await asyncio.gather(*(one(n) for n in range(4)))

    run(all_of_them())
    for n in range(4):
        session = Session.objects.get(chat_id=f"chat-{n}")
        rows = calls(session)
        assert [c.prompt_tokens for c in rows] == [100 + n, 100 + n]
        assert all(f"[[marker:m{n}]]" in c.response["message"]["content"] for c in rows)


def test_explicit_session_for_code_outside_the_context(
    llm: FakeLLMServer, model_config: OpenAIConfig
) -> None:
    """An agent run on another thread's event loop: no ContextVar, so the session is named."""

    def elsewhere(session: SessionRecorder | str, message: str) -> None:
        agent = Agent("worker", config=model_config, middleware=[logging_middleware(session=session)])
        # A plain thread does not inherit the caller's context, as a thread pool worker would not.
        thread = threading.Thread(target=lambda: asyncio.run(agent.ask(message)))
        thread.start()
        thread.join()

    with ag2_logging_session("chat-explicit", "batch", "acme") as recorder:
        assert recorder is not None
        elsewhere(recorder, "by recorder [[marker:r]]")
        elsewhere(str(recorder.session_id), "by id [[marker:i]]")

    session = Session.objects.get()
    rows = calls(session)
    assert [c.agent_name for c in rows] == ["worker", "worker"]
    assert [
        "[[marker:r]]" in rows[0].response["message"]["content"],
        "[[marker:i]]" in rows[1].response["message"]["content"],
    ] == [True, True]
    assert LLMCall.objects.unattributed().count() == 0

    with pytest.raises(ValueError, match="badly formed"):
        logging_middleware(session="not-a-session-id")


def test_calls_outside_a_session_are_unattributed(
    llm: FakeLLMServer, model_config: OpenAIConfig, caplog: pytest.LogCaptureFixture
) -> None:
    agent = make_agent(model_config)
    with ag2_logging_session("chat-ended", "triage", "acme") as ended:
        pass
    late = Agent("late", config=model_config, middleware=[logging_middleware(session=ended)])
    before = counters.stats["unattributed_calls"]
    with caplog.at_level("WARNING", logger="ag2_logging"):
        run(agent.ask("nobody's [[marker:u1]]"))
        run(agent.ask('[[tool:add {"a": 1, "b": 1}]]'))
        run(late.ask("too late [[marker:u2]]"))
    assert sum("outside any session" in r.getMessage() for r in caplog.records) == 1  # once per process
    assert sum("is not recording in this process" in r.getMessage() for r in caplog.records) == 1
    assert counters.stats["unattributed_calls"] == before + 5  # 4 LLM calls, 1 tool call

    result = ingest_journal(unattributed.get_unattributed_recorder().journal_path)
    assert (result.session_id, result.llm_calls) == (None, 4)
    assert LLMCall.objects.unattributed().count() == 4
    assert ToolCall.objects.filter(session__isnull=True).count() == 1
    assert Session.objects.get().call_count == 0
    assert not AgentEvent.objects.filter(session__isnull=True).exists()  # events need a session


# -- never harm the host ---------------------------------------------------------------------------


def test_api_key_is_never_written(llm: FakeLLMServer, model_config: OpenAIConfig, logs_dir: Path) -> None:
    assert TEST_API_KEY in repr(model_config)  # what AG2 puts in context.dependencies shows it
    agent = make_agent(model_config, tasks=TaskConfig())
    task = json.dumps({"task": f"look it up, key {TEST_API_KEY}"})
    run(ask(agent, f"my key is {TEST_API_KEY} [[tool:run_subtask {task}]]"))

    session = Session.objects.get()
    assert session.call_count == 3
    for path in logs_dir.rglob("*"):
        if path.is_file():
            assert TEST_API_KEY not in path.read_text(), path
    for model in (Session, LLMCall, AgentEvent, ToolCall):
        for row in model.objects.values():
            assert TEST_API_KEY not in json.dumps(row, default=str), model
    assert session.redactions  # the key in the prompt and the task was found and counted


def test_a_failing_recorder_never_reaches_the_agent(
    llm: FakeLLMServer, model_config: OpenAIConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ag2_logging.capture.recorder import BaseRecorder

    def explode(self: Any, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("recorder is broken")

    monkeypatch.setattr(BaseRecorder, "record", explode)  # what the integrations call
    monkeypatch.setattr(BaseRecorder, "record_tool_call", explode)
    monkeypatch.setattr(BaseRecorder, "record_agent_event", explode)
    before = counters.stats["hook_failures"]
    agent = make_agent(model_config, retry=2)
    reply, _ = run(ask(agent, '[[fail:429x1]] [[tool:add {"a": 2, "b": 2}]]'))
    assert reply.body == "tool result: 4"
    # 4 LLM attempts (the fail directive applies anew once the tool result changes the messages),
    # 1 tool call, the new_agent and turn events
    assert [r.status for r in llm.served] == [429, 200, 429, 200]
    assert counters.stats["hook_failures"] == before + 7
    assert Session.objects.get().status == "completed"


def test_logging_off_records_nothing(llm: FakeLLMServer, model_config: OpenAIConfig, settings: Any) -> None:
    from ag2_logging.conf import conf

    settings.AG2_LOGGING = {**settings.AG2_LOGGING, "ENABLED": False}
    conf.reload()
    agent = make_agent(model_config)

    async def go() -> Any:
        async with ag2_logging_session("chat-off") as recorder:
            reply = await agent.ask('[[tool:add {"a": 2, "b": 3}]]')
        return recorder, reply

    recorder, reply = run(go())
    assert recorder is None and reply.body == "tool result: 5"
    assert not Session.objects.exists() and not LLMCall.objects.exists()
    assert unattributed._unattributed is None  # no journal opened either


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("stop", "stop"),
        ("tool_calls", "tool_calls"),
        ("end_turn", "end_turn"),
        ("MAX_TOKENS", "MAX_TOKENS"),
        (None, None),
        ("stopped: Incorrect API key provided: sk-proj-Zq8c1x9VbN3mK2pL7wR4tY6uI0oPaSdF", None),
        (["stop"], None),
        ("x" * 500, "x" * 200),
    ],
    ids=["stop", "tool_calls", "anthropic", "gemini", "none", "a secret", "not text", "long"],
)
def test_the_turn_event_keeps_a_known_finish_reason_and_screens_any_other(
    reason: Any, expected: str | None
) -> None:
    """The turn event's data is journaled without the redaction walk (the app's own values): the
    one value from the provider, its finish reason, is kept only when it is a known one."""
    from types import SimpleNamespace

    from ag2_logging.integrations.ag2 import _finish_reason

    counts: dict[str, int] = {}
    got = _finish_reason(reason, SimpleNamespace(totals=SimpleNamespace(redactions=counts)))
    if expected is not None or reason is None:
        assert got == expected
    else:
        assert isinstance(got, str) and len(got) <= 200
        assert "Zq8c1x9VbN3mK2pL7wR4tY6uI0oPaSdF" not in got and "sk-proj-" not in got
        assert ("REDACTED" in got) == isinstance(reason, str), got


def test_a_conversation_has_only_its_new_messages_screened(
    llm: FakeLLMServer, model_config: OpenAIConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each call of an ag2 conversation repeats its earlier messages: the recorded request is
    screened message by message (``redaction.screened_request``), so a message screened clean on
    an earlier call is not scanned again, and the bytes scanned per call stay those of its new
    messages instead of growing with the history."""
    from ag2_logging.redaction import engine, forget_results, screened_request

    requests: list[dict[str, Any]] = []
    real_record = SessionRecorder.record

    def record(self: SessionRecorder, call: Any) -> Any:
        requests.append(call.request)
        return real_record(self, call)

    scanned: list[int] = []
    engine_type = type(engine.screens())
    real_dirty = engine_type.dirty_bytes

    def dirty_bytes(self: Any, data: bytes) -> bool:
        scanned.append(len(data))
        return real_dirty(self, data)

    monkeypatch.setattr(SessionRecorder, "record", record)
    monkeypatch.setattr(engine_type, "dirty_bytes", dirty_bytes)
    forget_results()
    agent = make_agent(model_config)
    long_text = "Our March invoice looks higher than February's; which line items changed? " * 40

    async def conversation() -> list[int]:
        per_call: list[int] = []
        with ag2_logging_session("chat-long", "triage", "acme"):
            reply = await agent.ask(f"{long_text} [[marker:c1]]")
            per_call.append(sum(scanned))
            for n in range(2, 5):
                reply = await reply.ask(f"and then {n}? [[marker:c{n}]]")
                per_call.append(sum(scanned) - sum(per_call))
        return per_call

    per_call = run(conversation())
    assert len(requests) == 4 and all(next(iter(r)) == "messages" for r in requests)
    assert [len(r["messages"]) for r in requests] == [1, 3, 5, 7]
    assert all(screened_request(r) is not None for r in requests)
    # The first call scans the long message; each later one only its two new messages (the
    # reply and the question) and its response, far less than the long message again.
    sizes = [len(orjson.dumps(r)) for r in requests]
    assert sizes[-1] > len(long_text)  # the long message is in every request
    assert per_call[0] > len(long_text)
    assert all(n < len(long_text) // 2 for n in per_call[1:]), (per_call, sizes)
