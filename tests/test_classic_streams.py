"""Classic AG2 (autogen 0.x): what the OpenAI SDK really received is recorded, not AG2's rebuilt
reply (issue 15, items 2, 15, 16).

* A streamed reply's usage comes from the stream's own usage chunk: cached, reasoning and a
  provider's own fields kept (AG2 rebuilds prompt and completion only), and a stream without one
  is ``no_usage`` (cost unknown), never a $0 success (AG2 rebuilds zeros).
* A request AG2 raises for without a logger call (a timeout, a stream cut off, a reply it cannot
  rebuild) is an error row of its session, with the exception's text.

Real classic agents against the fake LLM server, in a sync and an async chat; nothing mocked.
Expected costs come from genai-prices' own ``calc_price``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import autogen
import pytest

from ag2_logging import ag2_logging_session
from ag2_logging.conf import conf
from ag2_logging.models import LLMCall, Session
from ag2_logging.testing import FakeLLMServer
from tests.conftest import TEST_API_KEY, expected_cost

pytestmark = [pytest.mark.classic, pytest.mark.django_db(transaction=True)]

DEEPSEEK_USAGE = {
    "prompt_tokens": 16000,
    "prompt_cache_hit_tokens": 12000,
    "prompt_cache_miss_tokens": 4000,
    "completion_tokens": 500,
    "total_tokens": 16500,
}


def price(model: str, provider: str, prompt: int, completion: int, cached: int) -> Decimal:
    """genai-prices' own price (input includes cached, as OpenAI counts it)."""
    return expected_cost(model, prompt, completion, cached, 0, provider_id=provider)


@dataclass(frozen=True)
class Case:
    """One request: its directive, config, and the row it must leave."""

    directive: str
    stream: bool
    status: str  # the row's status
    tokens: tuple[int, int, int, int] = (0, 0, 0, 0)  # prompt, completion, cached, reasoning
    price_status: str = "priced"
    cost: tuple[str, str] | None = ("gpt-4o-mini", "openai")  # priced as (model, provider); None: unknown
    error: str = ""  # the start of the row's error text
    model: str = "gpt-4o-mini"


CASES = {
    # item 2: AG2 keeps prompt and completion only; the usage chunk has the cached tokens
    "stream, cached tokens": Case(
        "[[usage:prompt=2000,completion=300,cached=1000,reasoning=0]]", True, "success", (2000, 300, 1000, 0)
    ),
    "stream, reasoning tokens": Case(
        "[[usage:prompt=900,completion=400,cached=100,reasoning=250]]", True, "success", (900, 400, 100, 250)
    ),
    "stream, a provider's own fields (DeepSeek)": Case(
        f"[[usage_raw:{json.dumps(DEEPSEEK_USAGE)}]]",
        True,
        "success",
        (16000, 500, 12000, 0),
        cost=("deepseek-chat", "deepseek"),
        model="deepseek-chat",
    ),
    # item 15: a server that ignores include_usage
    "stream, no usage chunk": Case("[[usage_raw:null]]", True, "success", price_status="no_usage", cost=None),
    # item 16: AG2 raises without a logger call
    "stream ends early (AG2 cannot rebuild the reply)": Case(
        "[[stream_drop:2]]", True, "error", error="ValidationError: "
    ),
    "stream cut mid-body": Case("[[stream_drop:2:reset]]", True, "error", error="RemoteProtocolError: "),
    "request times out": Case("[[fail:timeoutx1]]", False, "error", error="APITimeoutError: "),
    # controls: what AG2 already logged stays as it was
    "no stream, cached tokens": Case(
        "[[usage:prompt=2000,completion=300,cached=1000,reasoning=0]]", False, "success", (2000, 300, 1000, 0)
    ),
    "no stream, no usage": Case("[[usage_raw:null]]", False, "success", price_status="no_usage", cost=None),
    "no stream, HTTP 500": Case("[[fail:500]]", False, "error", error="error_code:server_error"),
}


def serve_as(server: FakeLLMServer, settings: Any, provider: str) -> None:
    """The fake server's URL stands for ``provider`` (``PROVIDER_BASE_URLS``)."""
    origin = server.base_url.removesuffix("/v1")
    urls = {**settings.AG2_LOGGING.get("PROVIDER_BASE_URLS", {}), origin: provider}
    settings.AG2_LOGGING = {**settings.AG2_LOGGING, "PROVIDER_BASE_URLS": urls}
    conf.reload()


def agents(server: FakeLLMServer, configs: list[dict[str, Any]]) -> tuple[Any, Any]:
    config_list = [
        {"api_key": TEST_API_KEY, "base_url": server.base_url, "max_retries": 0, "timeout": 0.5, **c}
        for c in configs
    ]
    assistant = autogen.AssistantAgent(
        "assistant", llm_config={"config_list": config_list, "cache_seed": None}
    )
    user = autogen.UserProxyAgent(
        "user", human_input_mode="NEVER", code_execution_config=False, max_consecutive_auto_reply=0
    )
    return assistant, user


def chat(server: FakeLLMServer, configs: list[dict[str, Any]], message: str, way: str) -> Exception | None:
    """One chat turn in a session, sync (``initiate_chat``) or async (``a_initiate_chat``); the
    exception AG2 raised, if any (caught inside the session: it completes)."""
    assistant, user = agents(server, configs)
    if way == "async":

        async def main() -> Exception | None:
            async with ag2_logging_session("c-streams", "streams", "acme"):
                try:
                    await user.a_initiate_chat(assistant, message=message, max_turns=1, silent=True)
                except Exception as exc:
                    return exc
            return None

        return asyncio.run(main())
    with ag2_logging_session("c-streams", "streams", "acme"):
        try:
            user.initiate_chat(assistant, message=message, max_turns=1, silent=True)
        except Exception as exc:
            return exc
    return None


@pytest.mark.parametrize("way", ["sync", "async"])
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_each_request_leaves_the_row_of_what_the_sdk_received(
    llm: FakeLLMServer, settings: Any, caplog: pytest.LogCaptureFixture, case: Case, way: str
) -> None:
    if case.cost is not None and case.cost[1] != "openai":
        serve_as(llm, settings, case.cost[1])
    with caplog.at_level(logging.WARNING, "ag2_logging"):
        raised = chat(llm, [{"model": case.model, "stream": case.stream}], f"hi {case.directive}", way)
    assert (raised is not None) == (case.status == "error")

    session = Session.objects.get()
    (call,) = session.llm_calls.all()
    assert (call.status, call.price_status, call.agent_name, call.model) == (
        case.status,
        case.price_status,
        "assistant",
        case.model,
    )
    assert call.error.startswith(case.error) and bool(call.error) == (case.status == "error")
    assert (
        call.prompt_tokens,
        call.completion_tokens,
        call.cached_tokens,
        call.reasoning_tokens,
    ) == case.tokens
    prompt, completion, cached, _ = case.tokens
    if case.status == "error":
        expected: Decimal | None = Decimal(0)
    elif case.cost is None:
        expected = None
    else:
        expected = price(*case.cost, prompt, completion, cached)
    assert call.cost == expected
    assert (session.status, session.call_count, session.error_count) == (
        "completed",
        1,
        int(case.status == "error"),
    )
    assert session.unpriced_calls == int(expected is None)
    assert session.total_cost == expected
    assert session.total_tokens == prompt + completion
    assert "outside any session" not in caplog.text
    if case.stream and case.status == "success":
        assert llm.served[0].streamed


def test_the_issues_streamed_call_costs_what_the_issue_says(llm: FakeLLMServer) -> None:
    chat(
        llm,
        [{"model": "gpt-4o-mini", "stream": True}],
        "hi " + CASES["stream, cached tokens"].directive,
        "sync",
    )
    call = LLMCall.objects.get()
    assert (call.cached_tokens, call.cost) == (1000, Decimal("0.000405"))


@pytest.mark.parametrize("stream", [False, True])
def test_a_config_that_fails_silently_before_the_next_one_answers_is_a_row(
    llm: FakeLLMServer, stream: bool
) -> None:
    """AG2 moves on to the next config of the list after a timeout, without a logger call (the
    fake server fails the first identical request only: the second config's succeeds)."""
    configs = [{"model": "gpt-4o-mini", "stream": stream}] * 2
    usage = "[[usage:prompt=300,completion=30,cached=0,reasoning=0]]"
    assert chat(llm, configs, f"hi [[fail:timeoutx1]] {usage}", "sync") is None

    session = Session.objects.get()
    failed, answered = session.llm_calls.order_by("started_at")
    assert (failed.status, failed.cost, failed.total_tokens) == ("error", 0, 0)
    assert failed.error.startswith("APITimeoutError: ")
    assert (answered.status, answered.prompt_tokens, answered.completion_tokens) == ("success", 300, 30)
    assert answered.cost == price("gpt-4o-mini", "openai", 300, 30, 0)
    assert (session.call_count, session.error_count, session.total_cost) == (2, 1, answered.cost)
