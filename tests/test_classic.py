"""Real classic AG2 (autogen 0.14) agents against the fake LLM server, recorded end to end."""

from __future__ import annotations

import asyncio
import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import autogen
import pytest
from autogen import runtime_logging

from ag2_logging import ag2_logging_session, flush
from ag2_logging.capture import counters, unattributed
from ag2_logging.integrations import classic
from ag2_logging.models import AgentEvent, LLMCall, Session, ToolCall
from ag2_logging.pipeline.ingest import ingest_journal
from ag2_logging.testing import FakeLLMServer
from tests.conftest import TEST_API_KEY, expected_cost, llm_config

pytestmark = pytest.mark.django_db(transaction=True)


def add(a: int, b: int) -> int:
    return a + b


def make_agents(server: FakeLLMServer, *, model: str = "gpt-4o-mini", max_auto: int = 2, **extra: Any):
    assistant = autogen.AssistantAgent("assistant", llm_config=llm_config(server, model, **extra))
    user = autogen.UserProxyAgent(
        "user", human_input_mode="NEVER", code_execution_config=False, max_consecutive_auto_reply=max_auto
    )
    autogen.register_function(add, caller=assistant, executor=user, description="Add two integers.")
    return assistant, user


def assert_calls_match_served(session: Session, server: FakeLLMServer, model: str = "gpt-4o-mini") -> None:
    served = server.successful()
    calls = list(session.llm_calls.order_by("seq"))
    assert len(calls) == len(served)
    for call, request in zip(calls, served, strict=True):
        usage = request.usage
        assert usage is not None
        assert call.status == "success"
        assert call.agent_name == "assistant"
        assert call.provider == "openai"
        assert call.model == model
        assert call.response_id == request.response_id
        assert (call.prompt_tokens, call.completion_tokens, call.cached_tokens, call.reasoning_tokens) == (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.cached_tokens,
            usage.reasoning_tokens,
        )
        assert call.total_tokens == usage.prompt_tokens + usage.completion_tokens
        assert call.cost == expected_cost(
            model, usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens, usage.reasoning_tokens
        )
        assert call.price_status == "priced"
        assert call.latency_ms is not None and call.latency_ms > 0
        assert call.started_at <= call.ended_at
    total = server.total_usage()
    assert session.call_count == len(served)
    assert session.prompt_tokens == total.prompt_tokens
    assert session.completion_tokens == total.completion_tokens
    assert session.cached_tokens == total.cached_tokens
    assert session.reasoning_tokens == total.reasoning_tokens
    assert session.total_tokens == total.prompt_tokens + total.completion_tokens
    assert session.total_cost == sum((c.cost for c in calls), Decimal(0))
    assert session.unpriced_calls == 0


def test_sync_chat_with_tool_is_recorded_exactly(llm: FakeLLMServer, logs_dir: Path) -> None:
    assistant, user = make_agents(llm)
    with ag2_logging_session("chat-sync", "triage", "acme") as recorder:
        assert recorder is not None
        user.initiate_chat(assistant, message='[[tool:add {"a": 2, "b": 3}]] [[marker:s1]]', max_turns=2)

    session = Session.objects.get()
    assert session.id == recorder.session_id
    assert (session.chat_id, session.workflow_name, session.enterprise_id) == ("chat-sync", "triage", "acme")
    assert session.status == "completed"
    assert session.ended_at is not None and session.started_at < session.ended_at
    assert session.ingested_at is not None
    assert session.sanitized_at is not None  # the thorough pass ran at session end, before ingest
    assert session.summarized_at is not None
    assert len(llm.successful()) == 2
    assert_calls_match_served(session, llm)
    # the first call asked for the tool, the second saw its result
    first, second = session.llm_calls.order_by("seq")
    assert first.response["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "add"
    assert second.request["messages"][-1]["content"] == "5"
    tool = ToolCall.objects.get()
    assert (tool.session_id, tool.agent_name, tool.name, tool.arguments, tool.result_summary) == (
        session.id,
        "user",
        "add",
        {"a": 2, "b": 3},
        "5",
    )
    names = set(AgentEvent.objects.filter(session=session).values_list("agent_name", "name"))
    assert ("assistant", "received_message") in names
    assert ("user", "received_message") in names


def test_async_chat_from_executor_thread_is_attributed(llm: FakeLLMServer) -> None:
    """a_initiate_chat logs LLM calls from an executor thread that lacks the ContextVar."""
    assistant, user = make_agents(llm)

    async def run() -> Any:
        async with ag2_logging_session("chat-async", "digest", "globex") as recorder:
            await user.a_initiate_chat(assistant, message="hello [[marker:a1]] [[terminate]]", max_turns=1)
        return recorder

    recorder = asyncio.run(run())
    session = Session.objects.get()
    assert session.id == recorder.session_id
    assert (session.chat_id, session.workflow_name, session.enterprise_id, session.status) == (
        "chat-async",
        "digest",
        "globex",
        "completed",
    )
    assert len(llm.successful()) == 1
    assert_calls_match_served(session, llm)
    assert LLMCall.objects.unattributed().count() == 0


def test_sync_with_inside_async_code_the_seed_system_pattern(llm: FakeLLMServer) -> None:
    """``with ag2_logging_session(...)`` around ``await`` (how the replaced system was used)."""
    assistant, user = make_agents(llm)

    async def run() -> None:
        with ag2_logging_session("chat-mixed", "legacy", "acme"):
            await user.a_initiate_chat(assistant, message='[[tool:add {"a": 4, "b": 5}]]', max_turns=2)

    asyncio.run(run())
    flush()  # the Session row is written by the app's database thread, never on the event loop
    session = Session.objects.get()
    assert session.status == "completed"
    assert len(llm.successful()) == 2
    assert_calls_match_served(session, llm)
    assert ToolCall.objects.get().result_summary == "9"


def test_failed_llm_call_is_recorded_and_session_fails(llm: FakeLLMServer) -> None:
    assistant, user = make_agents(llm, max_retries=0)
    with pytest.raises(Exception, match="Error code: 500"):
        with ag2_logging_session("chat-err", "triage", "acme"):
            user.initiate_chat(assistant, message="[[fail:500]] boom", max_turns=1)

    session = Session.objects.get()
    assert session.status == "failed"
    assert "500" in session.error
    call = LLMCall.objects.get()
    assert call.status == "error"
    assert "error_code" in call.error
    assert call.total_tokens == 0 and call.cost == 0
    assert session.call_count == 1 and session.error_count == 1


def test_sdk_retries_are_counted(llm: FakeLLMServer) -> None:
    assistant, user = make_agents(llm, max_retries=3)
    with ag2_logging_session("chat-retry", "triage", "acme"):
        user.initiate_chat(assistant, message="[[fail:429x2]] retry me", max_turns=1)

    assert [r.status for r in llm.served] == [429, 429, 200]
    call = LLMCall.objects.get()
    assert call.status == "success"
    assert call.retries == 2
    assert Session.objects.get().retry_count == 2
    assert call.prompt_tokens == 120


def test_calls_outside_a_session_are_unattributed_and_never_land_elsewhere(
    llm: FakeLLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    assistant, user = make_agents(llm)
    with ag2_logging_session("chat-other", "triage", "acme"):
        pass
    with caplog.at_level("WARNING", logger="ag2_logging"):
        user.initiate_chat(assistant, message="nobody's [[marker:u1]]", max_turns=1)
        user.initiate_chat(assistant, message="still nobody's [[marker:u2]]", max_turns=1)
    warnings = [r for r in caplog.records if "outside any session" in r.getMessage()]
    assert len(warnings) == 1  # warned once per process, not per call

    journal = unattributed.get_unattributed_recorder().journal_path
    result = ingest_journal(journal)
    assert result.session_id is None and result.llm_calls == 2
    assert LLMCall.objects.unattributed().count() == 2
    assert LLMCall.objects.filter(session__isnull=False).count() == 0
    assert Session.objects.get().call_count == 0


def test_api_key_and_unserializable_objects_never_break_or_leak(llm: FakeLLMServer, logs_dir: Path) -> None:
    with ag2_logging_session("chat-secret", "triage", "acme") as recorder:
        # Built inside the session: AG2 reports the agent, its wrapper and its client (with the
        # api_key in plain text, and objects that do not serialize) to the logger.
        assistant, user = make_agents(llm)
        user.initiate_chat(assistant, message="hi [[terminate]]", max_turns=1)
    assert recorder is not None

    session = Session.objects.get()
    new_agents = AgentEvent.objects.filter(session=session, name="new_agent")
    assert sorted(e.agent_name for e in new_agents) == ["assistant", "user"]  # once each
    wrapper = AgentEvent.objects.filter(session=session, name="new_wrapper").first()
    assert wrapper is not None
    assert wrapper.data["init_args"]["config_list"][0]["api_key"] == "[REDACTED:api_key]"
    assert AgentEvent.objects.filter(session=session, name="new_client").exists()
    assert session.llm_calls.count() == 1

    # the planted key is nowhere: not in a journal, the runtime log, or any row
    for path in logs_dir.rglob("*"):
        if path.is_file():
            assert TEST_API_KEY not in path.read_text(), path
    for model in (Session, LLMCall, AgentEvent, ToolCall):
        for row in model.objects.values():
            assert TEST_API_KEY not in json.dumps(row, default=str), model


def test_a_failing_recorder_never_reaches_the_agent(
    llm: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ag2_logging.capture.recorder import BaseRecorder

    def explode(self: Any, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("recorder is broken")

    monkeypatch.setattr(BaseRecorder, "record", explode)  # what the integrations call
    before = counters.stats["hook_failures"]
    assistant, user = make_agents(llm)
    with ag2_logging_session("chat-broken", "triage", "acme"):
        result = user.initiate_chat(assistant, message="still works [[terminate]]", max_turns=1)
    assert "fake reply" in result.chat_history[-1]["content"]
    assert counters.stats["hook_failures"] == before + 1
    assert Session.objects.get().status == "completed"


def test_routing_logger_is_installed_once(llm: FakeLLMServer) -> None:
    with ag2_logging_session("c1"):
        first = runtime_logging.autogen_logger
    with ag2_logging_session("c2"):
        assert runtime_logging.autogen_logger is first
    assert isinstance(first, classic.RoutingLogger)
    assert classic.is_installed()


def test_shared_tool_round_trip_scenario_totals(llm: FakeLLMServer) -> None:
    """The scenario tests/ag2/ also runs with ag2 1.x agents: both must record the same totals."""
    from tests import scenarios

    assistant = autogen.AssistantAgent("assistant", llm_config=llm_config(llm, scenarios.MODEL))
    user = autogen.UserProxyAgent(
        "user", human_input_mode="NEVER", code_execution_config=False, max_consecutive_auto_reply=2
    )
    autogen.register_function(scenarios.add, caller=assistant, executor=user, description="Add two integers.")
    with ag2_logging_session("chat-shared", "scenario", "acme"):
        user.initiate_chat(assistant, message=scenarios.TOOL_ROUND_TRIP_MESSAGE, max_turns=2)

    session = Session.objects.get()
    assert len(llm.successful()) == 2
    assert scenarios.session_totals(session) == scenarios.tool_round_trip_totals()
    assert scenarios.tool_rows(session) == scenarios.TOOL_ROUND_TRIP_TOOL_ROWS


@pytest.mark.parametrize(
    ("where", "entry_extra"),
    [
        ("inside a session", {}),
        ("outside any session", {}),
        ("inside a session", {"default_headers": {"Authorization": "Bearer hdr-Tk7Qm2Wx9Lp4Zr8N"}}),
        ("outside any session", {"default_headers": {"api-key": "hdr-Vb3Nc6Xz1Mq5Kj0H"}}),
    ],
)
def test_a_classic_agents_credentials_are_remembered(
    llm: FakeLLMServer, where: str, entry_extra: dict[str, Any]
) -> None:
    """The api_key and credential headers of an llm_config AG2 hands the logger are kept in
    memory (redaction.credentials), so a provider echoing one back later is scrubbed."""
    from ag2_logging.redaction.credentials import known_credentials

    key = f"sk-classic-{uuid.uuid4().hex}"
    entry = {"model": "gpt-4o-mini", "api_key": key, "base_url": llm.base_url, **entry_extra}

    def build() -> tuple[Any, Any]:
        assistant = autogen.AssistantAgent(
            "assistant", llm_config={"config_list": [entry], "cache_seed": None}
        )
        user = autogen.UserProxyAgent(
            "user", human_input_mode="NEVER", code_execution_config=False, max_consecutive_auto_reply=0
        )
        return assistant, user

    classic.install()
    with ag2_logging_session("chat-creds", "triage", "acme"):
        if where == "inside a session":
            assistant, user = build()
            assert key in known_credentials()  # remembered when AG2 reported the agent
            user.initiate_chat(assistant, message="hi [[terminate]]", max_turns=1)
    if where == "outside any session":
        assistant, user = build()  # reported to the logger though no session is open
        assert key in known_credentials()
    headers = entry_extra.get("default_headers", {})
    expected = {key, *(value.removeprefix("Bearer ") for value in headers.values())}
    assert expected <= known_credentials()
