"""ag2 1.x: every LLM request made in a session is recorded, whatever the agent's middleware list
and order, with the provider of the URL the SDK client really used, and a reply without usage
recorded as such (issue 15, items 14-16). Real agents against the fake LLM server; nothing mocked.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import genai_prices
import pytest
from ag2 import Agent
from ag2.config import OpenAIConfig
from ag2.middleware import RetryMiddleware

from ag2_logging import ag2_logging_session
from ag2_logging.conf import conf
from ag2_logging.integrations.ag2 import logging_middleware
from ag2_logging.models import LLMCall, Session, ToolCall
from ag2_logging.testing import FakeLLMServer
from tests.ag2.conftest import run
from tests.conftest import TEST_API_KEY, expected_cost

pytestmark = [pytest.mark.ag2, pytest.mark.django_db(transaction=True)]


def rows(session: Session) -> list[LLMCall]:
    return list(session.llm_calls.order_by("seq"))


async def in_session(agent: Agent, message: str) -> Any:
    async with ag2_logging_session("chat", "coverage") as recorder:
        try:
            return await agent.ask(message)
        except Exception as exc:
            return exc
    assert recorder is not None


# -- item 14: the provider comes from the URL the client used ------------------------------------


@pytest.fixture
def groq_at_fake(llm: FakeLLMServer, settings: Any) -> None:
    origin = llm.base_url.removesuffix("/v1")
    urls = {**settings.AG2_LOGGING.get("PROVIDER_BASE_URLS", {}), origin: "groq"}
    settings.AG2_LOGGING = {**settings.AG2_LOGGING, "PROVIDER_BASE_URLS": urls}
    conf.reload()


@pytest.mark.parametrize("url_given_as", ["base_url", "OPENAI_BASE_URL"])
def test_provider_is_read_from_the_url_the_client_used(
    llm: FakeLLMServer, groq_at_fake: None, monkeypatch: pytest.MonkeyPatch, url_given_as: str
) -> None:
    if url_given_as == "OPENAI_BASE_URL":
        monkeypatch.setenv("OPENAI_BASE_URL", llm.base_url)
        config = OpenAIConfig(model="llama-3.3-70b-versatile", api_key=TEST_API_KEY, max_retries=0)
    else:
        monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
        config = OpenAIConfig(
            model="llama-3.3-70b-versatile", api_key=TEST_API_KEY, base_url=llm.base_url, max_retries=0
        )
    agent = Agent("assistant", config=config, middleware=[logging_middleware()])
    run(in_session(agent, "hi [[usage:prompt=500,completion=50,cached=0,reasoning=0]]"))

    (call,) = rows(Session.objects.get())
    expected = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=500, output_tokens=50), "llama-3.3-70b-versatile", provider_id="groq"
    ).total_price
    assert (call.provider, call.price_status) == ("groq", "priced")
    assert call.cost == expected == Decimal("0.0003345")


# -- item 16: middleware orders x agent kinds -----------------------------------------------------

# (name, SDK max_retries, middleware of the agent (factory), directive, expected rows as
# (attempt, status)); every request the server saw is one row, and retried rows count.
ORDER_CASES = [
    ("logging only, SDK retries", 2, lambda: [logging_middleware()], "[[fail:429x2]]", 3),
    (
        "retry then logging, SDK retries",
        2,
        lambda: [RetryMiddleware(), logging_middleware()],
        "[[fail:500x2]]",
        3,
    ),
    (
        "logging then retry, no SDK retries",
        0,
        lambda: [logging_middleware(), RetryMiddleware(max_retries=2)],
        "[[fail:500x2]]",
        3,
    ),
    (
        "retry then logging, no SDK retries",
        0,
        lambda: [RetryMiddleware(max_retries=2), logging_middleware()],
        "[[fail:500x2]]",
        3,
    ),
    ("no logging middleware", 0, lambda: [], "", 1),
    ("no logging middleware, SDK retries", 2, lambda: [], "[[fail:429x1]]", 2),
    ("logging only, no failure", 2, lambda: [logging_middleware()], "", 1),
]


@pytest.mark.parametrize(
    ("max_retries", "middleware", "directive", "requests"),
    [case[1:] for case in ORDER_CASES],
    ids=[case[0] for case in ORDER_CASES],
)
def test_every_request_is_a_row_whatever_the_middleware(
    llm: FakeLLMServer,
    caplog: pytest.LogCaptureFixture,
    max_retries: int,
    middleware: Any,
    directive: str,
    requests: int,
) -> None:
    config = OpenAIConfig(
        model="gpt-4o-mini", api_key=TEST_API_KEY, base_url=llm.base_url, max_retries=max_retries
    )
    agent = Agent("assistant", config=config, middleware=middleware())
    with caplog.at_level(logging.WARNING, "ag2_logging.integrations.ag2"):
        reply = run(in_session(agent, f"hi {directive}"))
    assert not isinstance(reply, Exception)

    served = llm.served
    assert len(served) == requests and [s.status == 200 for s in served] == [False] * (requests - 1) + [True]
    session = Session.objects.get()
    calls = rows(session)
    assert [c.attempt for c in calls] == list(range(1, requests + 1))
    assert [c.status for c in calls] == ["error"] * (requests - 1) + ["success"]
    assert [c.retries for c in calls] == [0] + [1] * (requests - 1)
    assert len({c.invocation_id for c in calls}) == 1
    (ok,) = [c for c in calls if c.status == "success"]
    usage = served[-1].usage
    assert usage is not None and ok.response_id == served[-1].response_id
    assert (ok.prompt_tokens, ok.completion_tokens, ok.cached_tokens) == (
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.cached_tokens,
    )
    assert ok.cost == expected_cost(
        "gpt-4o-mini",
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.cached_tokens,
        usage.reasoning_tokens,
    )
    assert (session.call_count, session.error_count, session.retry_count) == (
        requests,
        requests - 1,
        requests - 1,
    )
    assert session.total_tokens == usage.prompt_tokens + usage.completion_tokens
    unwatched = "no logging_middleware() saw" in caplog.text
    assert unwatched == (not middleware())


def test_helper_agent_inside_a_tool_is_recorded(llm: FakeLLMServer) -> None:
    config = OpenAIConfig(model="gpt-4o-mini", api_key=TEST_API_KEY, base_url=llm.base_url, max_retries=0)
    helper = Agent("helper", config=config)  # no logging_middleware()

    async def consult(question: str) -> str:
        """Ask the helper."""
        reply = await helper.ask(f"{question} [[usage:prompt=70,completion=7,cached=0,reasoning=0]]")
        return reply.body or ""

    agent = Agent("assistant", config=config, tools=[consult], middleware=[logging_middleware()])
    run(in_session(agent, '[[tool:consult {"question": "why"}]]'))

    session = Session.objects.get()
    calls = rows(session)
    assert len(calls) == len(llm.served) == 3
    assert [(c.agent_name, c.prompt_tokens) for c in calls] == [
        ("assistant", 120),
        ("", 70),
        ("assistant", 120),
    ]
    assert session.total_tokens == sum(s.usage.total_tokens for s in llm.served if s.usage)
    assert ToolCall.objects.filter(session=session, name="consult").count() == 1


# -- item 15: a stream without usage ---------------------------------------------------------------

# (directive, expected status, usage reported)
STREAM_CASES = [
    ("[[usage:prompt=200,completion=20,cached=0,reasoning=0]]", "success", True),
    ("[[stream_drop:2]]", "success", False),
    ("[[usage_raw:null]]", "success", False),  # a server that ignores include_usage
    ("[[stream_drop:2:reset]]", "error", False),
]


@pytest.mark.parametrize(("directive", "status", "reported"), STREAM_CASES)
@pytest.mark.parametrize("with_middleware", [True, False])
def test_stream_without_usage_is_not_a_free_success(
    llm: FakeLLMServer, directive: str, status: str, reported: bool, with_middleware: bool
) -> None:
    config = OpenAIConfig(
        model="gpt-4o-mini", api_key=TEST_API_KEY, base_url=llm.base_url, max_retries=0, streaming=True
    )
    agent = Agent("assistant", config=config, middleware=[logging_middleware()] if with_middleware else [])
    result = run(in_session(agent, f"hi {directive}"))
    assert isinstance(result, Exception) == (status == "error")

    session = Session.objects.get()
    (call,) = rows(session)
    assert call.status == status and llm.served[0].streamed
    if status == "error":
        assert call.error and call.cost == 0 and session.error_count == 1
    elif reported:
        assert (call.prompt_tokens, call.completion_tokens) == (200, 20)
        assert call.cost == expected_cost("gpt-4o-mini", 200, 20, 0, 0)
        assert call.price_status == "priced" and session.unpriced_calls == 0
    else:
        assert (call.total_tokens, call.cost, call.price_status) == (0, None, "no_usage")
        assert session.unpriced_calls == 1 and session.total_cost is None
