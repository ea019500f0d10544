"""ag2 1.x: no LLM request made in a session is lost (issue 15, items 16 and 17).

* A call made after its session ended (a task or thread that outlived the block) is recorded as
  unattributed, marked ``late_of``, and warned about once, whether or not the agent carries
  ``logging_middleware()``.
* A synchronous ``openai.OpenAI`` call in a session (a tool, a helper) is recorded like an async
  one: plain, streamed with or without a usage chunk, retried by the SDK.

Real agents and SDK clients against the fake LLM server; nothing mocked.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import openai
import pytest
from ag2 import Agent
from ag2.config import OpenAIConfig

from ag2_logging import ag2_logging_session, flush
from ag2_logging.capture import unattributed
from ag2_logging.capture.journal import read_journal
from ag2_logging.integrations.ag2 import logging_middleware
from ag2_logging.models import LLMCall, Session
from ag2_logging.pipeline.ingest import ingest_journal
from ag2_logging.testing import FakeLLMServer
from tests.ag2.conftest import run
from tests.conftest import TEST_API_KEY, expected_cost

pytestmark = [pytest.mark.ag2, pytest.mark.django_db(transaction=True)]

LATE_WARNING = "had ended: it is unattributed"
USAGE = "[[usage:prompt=400,completion=40,cached=100,reasoning=0]]"


def late_llm_lines() -> list[dict[str, Any]]:
    path = unattributed.get_unattributed_recorder().journal_path
    if not path.exists():
        return []
    events = [line.event for line in read_journal(path) if line.event is not None]
    return [e for e in events if e.get("type") == "llm_call" and "late_of" in e]


# -- item 17: a call after its session ended ---------------------------------------------------------


def late_in_task(agent: Agent, late_calls: int) -> uuid.UUID:
    """``asyncio.create_task`` inside the block; the task asks after the block ended."""

    async def main() -> uuid.UUID:
        ended = asyncio.Event()

        async def late() -> None:
            await ended.wait()
            for _ in range(late_calls):
                await agent.ask(f"late {USAGE}")

        async with ag2_logging_session("c-late", "late", "acme") as recorder:
            assert recorder is not None
            await agent.ask("early")
            task = asyncio.create_task(late())
        ended.set()
        await task
        return recorder.session_id

    return run(main())


def late_in_thread(agent: Agent, late_calls: int) -> uuid.UUID:
    """A thread started through ``copy_context().run`` that asks (on its own loop) after the block."""
    ended = threading.Event()

    def late() -> None:
        ended.wait()
        for _ in range(late_calls):
            asyncio.run(agent.ask(f"late {USAGE}"))

    async def early() -> None:
        await agent.ask("early")

    with ag2_logging_session("c-late", "late", "acme") as recorder:
        assert recorder is not None
        run(early())
        thread = threading.Thread(target=contextvars.copy_context().run, args=(late,))
        thread.start()
    ended.set()
    thread.join()
    return recorder.session_id


LATE_WAYS = {"task": late_in_task, "thread": late_in_thread}


@pytest.mark.parametrize("late_calls", [1, 2])
@pytest.mark.parametrize("with_middleware", [True, False], ids=["middleware", "no middleware"])
@pytest.mark.parametrize("way", LATE_WAYS)
def test_a_late_call_is_unattributed_and_warned_once(
    llm: FakeLLMServer,
    model_config: OpenAIConfig,
    caplog: pytest.LogCaptureFixture,
    way: str,
    with_middleware: bool,
    late_calls: int,
) -> None:
    agent = Agent(
        "assistant", config=model_config, middleware=[logging_middleware()] if with_middleware else []
    )
    with caplog.at_level(logging.WARNING, "ag2_logging"):
        session_id = LATE_WAYS[way](agent, late_calls)
    flush()

    assert [s.status for s in llm.served] == [200] * (1 + late_calls)
    session = Session.objects.get(id=session_id)
    assert (session.status, session.call_count) == ("completed", 1)
    assert [e["late_of"] for e in late_llm_lines()] == [str(session_id)] * late_calls
    warnings = [r.getMessage() for r in caplog.records if LATE_WARNING in r.getMessage()]
    assert len(warnings) == 1 and str(session_id) in warnings[0]

    ingest_journal(unattributed.get_unattributed_recorder().journal_path)
    late = list(LLMCall.objects.unattributed())
    assert len(late) == late_calls
    for call in late:
        assert (call.status, call.prompt_tokens, call.completion_tokens, call.cached_tokens) == (
            "success",
            400,
            40,
            100,
        )
        assert call.cost == expected_cost("gpt-4o-mini", 400, 40, 100, 0)


# -- item 16: the synchronous OpenAI SDK ---------------------------------------------------------------


@dataclass(frozen=True)
class SyncCase:
    directive: str
    stream: bool
    max_retries: int
    statuses: tuple[str, ...]  # the rows, in order
    tokens: tuple[int, int, int] | None  # the successful row's prompt, completion, cached; None: no usage


SYNC_CASES = {
    "plain": SyncCase(USAGE, False, 0, ("success",), (400, 40, 100)),
    "streamed with a usage chunk": SyncCase(USAGE, True, 0, ("success",), (400, 40, 100)),
    "streamed, no usage chunk": SyncCase("[[usage_raw:null]]", True, 0, ("success",), None),
    "retried by the SDK": SyncCase(f"[[fail:500x1]] {USAGE}", False, 1, ("error", "success"), (400, 40, 100)),
    "failed": SyncCase("[[fail:500x1]]", False, 0, ("error",), None),
}


def sync_request(server: FakeLLMServer, case: SyncCase) -> None:
    client = openai.OpenAI(base_url=server.base_url, api_key=TEST_API_KEY, max_retries=case.max_retries)
    messages: Any = [{"role": "user", "content": f"hi {case.directive}"}]
    try:
        if case.stream:
            chunks = client.chat.completions.create(
                model="gpt-4o-mini", messages=messages, stream=True, stream_options={"include_usage": True}
            )
            for _ in chunks:
                pass
        else:
            client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    except openai.APIError:
        pass
    finally:
        client.close()


@pytest.mark.parametrize("case", SYNC_CASES.values(), ids=SYNC_CASES.keys())
def test_a_synchronous_sdk_call_in_a_session_is_recorded(llm: FakeLLMServer, case: SyncCase) -> None:
    with ag2_logging_session("c-sync", "sync"):
        sync_request(llm, case)

    assert len(llm.served) == len(case.statuses)
    session = Session.objects.get()
    calls = list(session.llm_calls.order_by("seq"))
    assert [c.status for c in calls] == list(case.statuses)
    assert [c.attempt for c in calls] == list(range(1, len(calls) + 1))
    assert session.call_count == len(calls)
    assert session.error_count == case.statuses.count("error")
    last = calls[-1]
    if case.statuses[-1] == "error":
        assert last.error and last.cost == 0 and session.total_cost == 0
    elif case.tokens is None:
        assert (last.total_tokens, last.cost, last.price_status) == (0, None, "no_usage")
        assert session.unpriced_calls == 1 and session.total_cost is None
    else:
        prompt, completion, cached = case.tokens
        assert (last.prompt_tokens, last.completion_tokens, last.cached_tokens) == case.tokens
        assert last.cost == session.total_cost == expected_cost("gpt-4o-mini", prompt, completion, cached, 0)
        assert last.response_id == llm.served[-1].response_id


def test_a_synchronous_sdk_call_outside_a_session_is_not_recorded(llm: FakeLLMServer) -> None:
    sync_request(llm, SYNC_CASES["plain"])
    flush()
    assert len(llm.served) == 1 and LLMCall.objects.count() == 0


@pytest.mark.parametrize("with_middleware", [True, False], ids=["middleware", "no middleware"])
def test_a_sync_tool_calling_the_sdk_is_recorded(
    llm: FakeLLMServer, model_config: OpenAIConfig, with_middleware: bool
) -> None:
    def consult(question: str) -> str:
        """Ask another model, synchronously."""
        client = openai.OpenAI(base_url=llm.base_url, api_key=TEST_API_KEY, max_retries=0)
        with client:
            reply = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"{question} {USAGE}"}]
            )
        return reply.choices[0].message.content or ""

    middleware = [logging_middleware()] if with_middleware else []
    agent = Agent("assistant", config=model_config, tools=[consult], middleware=middleware)

    async def main() -> None:
        async with ag2_logging_session("c-tool", "sync-tool"):
            await agent.ask('[[tool:consult {"question": "why"}]]')

    run(main())
    session = Session.objects.get()
    calls = list(session.llm_calls.order_by("seq"))
    assert len(calls) == len(llm.served) == 3
    assert [c.status for c in calls] == ["success"] * 3
    assert [(c.prompt_tokens, c.cached_tokens) for c in calls][1] == (400, 100)
    served_total = sum(s.usage.total_tokens for s in llm.served if s.usage)
    assert session.total_tokens == served_total
    assert session.total_cost == sum((c.cost for c in calls), Decimal(0))
