"""Budgets with a real ag2 1.x agent (``.venv-ag2``): the SDK-boundary hook blocks the request
that would cross a ``block`` budget before it is sent; the fake server's request count shows it.
Also: synchronous ``openai.OpenAI`` calls in a session (a tool) are checked and settled, AG2's
``RetryMiddleware`` does not repeat a refusal, and streamed calls settle from their usage chunk.
Expected costs from genai-prices' own ``calc_price``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import openai
import pytest
from ag2 import Agent
from ag2.config import OpenAIConfig
from ag2.middleware import RetryMiddleware

from ag2_logging import BudgetExceeded, ag2_logging_session, flush
from ag2_logging.budgets import enforce
from ag2_logging.budgets.figures import figures
from ag2_logging.integrations.ag2 import logging_middleware
from ag2_logging.models import AgentEvent, Budget, Session
from ag2_logging.testing import FakeLLMServer
from tests.ag2.conftest import run
from tests.conftest import TEST_API_KEY, expected_cost

pytestmark = [pytest.mark.ag2, pytest.mark.django_db(transaction=True)]
USAGE = "[[usage:prompt=10,completion=1000,cached=0,reasoning=0]]"
CALL = expected_cost("gpt-4o-mini", 10, 1000, 0, 0)


@pytest.fixture(autouse=True)
def fresh_budgets() -> Iterator[None]:
    enforce.reset()
    yield
    enforce.reset()


async def asks(server: FakeLLMServer, count: int, **scope: object) -> int:
    async with ag2_logging_session(**scope):  # type: ignore[arg-type]
        return await asks_in_session(server, count)


async def asks_in_session(server: FakeLLMServer, count: int) -> int:
    """``count`` questions to a fresh agent in the session open here; how many were answered."""
    config = OpenAIConfig(
        model="gpt-4o-mini", api_key=TEST_API_KEY, base_url=server.base_url, max_retries=0, max_tokens=1000
    )
    agent = Agent("assistant", "You are helpful.", config=config, middleware=[logging_middleware()])
    done = 0
    for n in range(count):
        await agent.ask(f"question {n} {USAGE}")
        done += 1
    return done


@pytest.mark.parametrize("fits", [1, 3])
def test_a_block_budget_stops_an_ag2_agent_before_the_crossing_request(llm: FakeLLMServer, fits: int) -> None:
    Budget.objects.create(
        scope="enterprise", enterprise_id="acme", period="week", limit=CALL * fits + CALL / 2
    )
    with pytest.raises(BudgetExceeded):
        run(asks(llm, 6, chat_id="ag2-blocked", enterprise_id="acme"))
    assert len(llm.served) == fits
    flush()
    session = Session.objects.get(chat_id="ag2-blocked")
    assert session.status == Session.Status.BLOCKED
    assert session.total_cost is not None and session.total_cost >= CALL * fits


def test_a_per_session_budget_with_ag2(llm: FakeLLMServer) -> None:
    with pytest.raises(BudgetExceeded):
        run(asks(llm, 6, chat_id="ag2-own", budget=Decimal(CALL * 2 + CALL / 2)))
    assert len(llm.served) == 2


# -- the synchronous SDK (a tool, a helper) ------------------------------------------------------


def test_a_synchronous_sdk_call_in_a_session_is_budget_checked(llm: FakeLLMServer) -> None:
    """``openai.OpenAI`` in a session: the second call would pass the per-session limit and is
    not sent; the first was settled to its real cost."""
    client = openai.OpenAI(base_url=llm.base_url, api_key=TEST_API_KEY, max_retries=0)
    messages: Any = [{"role": "user", "content": f"hi {USAGE}"}]

    def calls() -> None:
        with ag2_logging_session(chat_id="sync-own", budget=CALL * 3 / 2):
            for _ in range(3):
                client.chat.completions.create(model="gpt-4o-mini", messages=messages, max_tokens=1000)

    with client, pytest.raises(BudgetExceeded):
        calls()
    assert len(llm.served) == 1
    flush()
    session = Session.objects.get(chat_id="sync-own")
    assert session.status == Session.Status.BLOCKED and session.total_cost == CALL


def agent_with_a_sync_tool(server: FakeLLMServer, tool_model: str, middleware: list[Any]) -> Agent:
    def consult(question: str) -> str:
        """Ask another model, synchronously (as a tool or a helper library would)."""
        with openai.OpenAI(base_url=server.base_url, api_key=TEST_API_KEY, max_retries=0) as client:
            reply = client.chat.completions.create(
                model=tool_model,
                messages=[{"role": "user", "content": f"{question} {USAGE}"}],
                max_tokens=1000,
            )
        return reply.choices[0].message.content or ""

    return Agent("assistant", config=config(server), tools=[consult], middleware=middleware)


def config(server: FakeLLMServer, **extra: Any) -> OpenAIConfig:
    return OpenAIConfig(
        model="gpt-4o-mini",
        api_key=TEST_API_KEY,
        base_url=server.base_url,
        max_retries=0,
        max_tokens=1000,
        **extra,
    )


async def ask_once(agent: Agent, question: str, **scope: Any) -> None:
    async with ag2_logging_session(**scope):
        await agent.ask(question)


def test_a_sync_tool_calling_the_sdk_is_settled_in_the_budget(llm: FakeLLMServer) -> None:
    """The agent's two calls and its tool's synchronous call are all in the ledger, each at its
    real cost (no budget check: the tool's call would be missing)."""
    budget = Budget.objects.create(scope="enterprise", enterprise_id="acme", period="day", limit=Decimal(1))
    agent = agent_with_a_sync_tool(llm, "gpt-4o", [logging_middleware()])
    run(ask_once(agent, f'[[tool:consult {{"question": "why"}}]] {USAGE}', enterprise_id="acme"))
    flush()
    assert [s.model for s in llm.served] == ["gpt-4o-mini", "gpt-4o", "gpt-4o-mini"]
    real = sum(
        (
            expected_cost(s.model, s.usage.prompt_tokens, s.usage.completion_tokens, 0, 0)
            for s in llm.served
            if s.usage
        ),
        Decimal(0),
    )
    assert real == CALL * 2 + expected_cost("gpt-4o", 10, 1000, 0, 0)
    assert (figures(budget).spent, figures(budget).reserved) == (real, 0)


def test_a_sync_tool_calling_the_sdk_is_refused_past_the_limit(llm: FakeLLMServer) -> None:
    """Limit: 1.5 calls of gpt-4o-mini. The agent's first call fits; its tool's synchronous
    gpt-4o call would pass the limit: refused, never sent (the agent's next call is refused too)."""
    Budget.objects.create(scope="enterprise", enterprise_id="acme", period="day", limit=CALL * 3 / 2)
    agent = agent_with_a_sync_tool(llm, "gpt-4o", [logging_middleware()])
    with pytest.raises(BudgetExceeded):
        run(
            ask_once(
                agent, f'[[tool:consult {{"question": "why"}}]] {USAGE}', chat_id="tool", enterprise_id="acme"
            )
        )
    flush()
    assert [s.model for s in llm.served] == ["gpt-4o-mini"]
    refused = AgentEvent.objects.filter(session__chat_id="tool", name="budget_blocked")
    assert "gpt-4o" in [e.data["model"] for e in refused]
    assert Session.objects.get(chat_id="tool").status == Session.Status.BLOCKED


# -- AG2's RetryMiddleware -------------------------------------------------------------------------


@pytest.mark.parametrize("retry_first", [True, False], ids=["retry outside ours", "retry inside ours"])
def test_retry_middleware_does_not_retry_a_budget_refusal(llm: FakeLLMServer, retry_first: bool) -> None:
    """With AG2's RetryMiddleware (max_retries 3, retrying every Exception) on either side of
    ours, the request past the limit is refused once: nothing more is sent, one refusal."""
    Budget.objects.create(scope="enterprise", enterprise_id="acme", period="day", limit=CALL * 3 / 2)
    ours, retry = logging_middleware(), RetryMiddleware(max_retries=3)
    agent = Agent(
        "assistant",
        "You are helpful.",
        config=config(llm),
        middleware=[retry, ours] if retry_first else [ours, retry],
    )

    async def main() -> None:
        async with ag2_logging_session(chat_id="retried", enterprise_id="acme"):
            await agent.ask(f"first {USAGE}")
            await agent.ask(f"second {USAGE}")

    with pytest.raises(BudgetExceeded):
        run(main())
    assert len(llm.served) == 1
    flush()
    refusals = AgentEvent.objects.filter(session__chat_id="retried", name="budget_blocked")
    assert refusals.count() == 1
    assert Session.objects.get(chat_id="retried").status == Session.Status.BLOCKED


# -- streamed ag2 1.x calls ----------------------------------------------------------------------


def test_a_streamed_ag2_call_settles_from_its_usage_chunk(llm: FakeLLMServer) -> None:
    """``streaming=True`` (ag2 asks for ``include_usage``): the ledger holds the priced usage
    chunks, not the reservations (each ~twice a call here: max_tokens 2000)."""
    budget = Budget.objects.create(scope="enterprise", enterprise_id="acme", period="day", limit=Decimal(1))
    agent = Agent(
        "assistant",
        "You are helpful.",
        config=OpenAIConfig(
            model="gpt-4o-mini",
            api_key=TEST_API_KEY,
            base_url=llm.base_url,
            max_retries=0,
            max_tokens=2000,
            streaming=True,
        ),
        middleware=[logging_middleware()],
    )

    async def main() -> None:
        async with ag2_logging_session(chat_id="streamed", enterprise_id="acme"):
            for n in range(2):
                await agent.ask(f"question {n} {USAGE}")

    run(main())
    flush()
    assert len(llm.served) == 2 and all(s.streamed and s.usage is not None for s in llm.served)
    assert (figures(budget).spent, figures(budget).reserved) == (CALL * 2, 0)


def test_flush_waits_for_the_spend_of_a_session_that_ended_on_an_event_loop(llm: FakeLLMServer) -> None:
    """A session ending on an event loop moves its spend to the ledger in a worker thread;
    ``flush()`` returns only once it is there. The move is held back (the accounts' lock taken
    as the session ends, given back 0.3 s later) so that a ``flush()`` that does not wait reads
    the ledger before it: the run of a loaded CI machine where this was first seen."""
    budget = Budget.objects.create(scope="enterprise", enterprise_id="acme", period="day", limit=Decimal(1))

    async def main() -> None:
        async with ag2_logging_session(chat_id="moved", enterprise_id="acme"):
            await asks_in_session(llm, 1)
            enforce._accounts_lock.acquire()

    try:
        run(main())
    finally:
        threading.Timer(0.3, enforce._accounts_lock.release).start()
    flush()
    assert (figures(budget).spent, figures(budget).reserved) == (CALL, 0)
