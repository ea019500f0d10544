"""Budgets and streamed calls (issue 17): a streamed classic call's reservation is settled from the
stream's usage chunk, so the ledger holds what the calls really cost; a stream without one (or cut
off) keeps its reservation as its cost, counted and noted on the session.

Real classic chats with ``stream=True`` against the fake LLM server (classic AG2 asks for
``stream_options.include_usage``); expected costs from genai-prices' own ``calc_price``.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import autogen
import pytest

from ag2_logging import BudgetExceeded, ag2_logging_session, flush
from ag2_logging.budgets import enforce
from ag2_logging.budgets.figures import figures
from ag2_logging.conf import conf
from ag2_logging.models import AgentEvent, Budget, Session
from ag2_logging.testing.fake_llm import FakeLLMServer
from tests.conftest import expected_cost, llm_config
from tests.test_budgets import REDIS_URL, _ledger

pytestmark = [pytest.mark.classic, pytest.mark.django_db(transaction=True)]

USAGE = "[[usage:prompt=10,completion=1000,cached=0,reasoning=0]]"
#: What one such call really costs.
CALL = expected_cost("gpt-4o-mini", 10, 1000, 0, 0)
#: Output tokens each request may produce: its reservation is about twice its real cost.
MAX_TOKENS = 2000


@pytest.fixture(autouse=True)
def fresh_budgets() -> Iterator[None]:
    enforce.reset()
    yield
    enforce.reset()


def streamed_chat(server: FakeLLMServer, message: str, turns: int, **scope: Any) -> None:
    config = llm_config(server, max_tokens=MAX_TOKENS, stream=True, max_retries=0)
    assistant = autogen.AssistantAgent("assistant", llm_config=config)
    user = autogen.UserProxyAgent(
        "user", human_input_mode="NEVER", code_execution_config=False, max_consecutive_auto_reply=turns
    )
    with ag2_logging_session(**scope):
        user.initiate_chat(assistant, message=message, max_turns=turns, silent=True)


def use_redis(settings: Any) -> None:
    _ledger("redis")  # flushes this run's Redis database
    settings.AG2_LOGGING = {**settings.AG2_LOGGING, "BUDGET_REDIS_URL": REDIS_URL}
    conf.reload()


@pytest.mark.parametrize("ledger", ["db", "redis"])
def test_a_streamed_call_settles_to_its_usage_chunk(llm: FakeLLMServer, settings: Any, ledger: str) -> None:
    """Limit: 4.5 real calls. Each request reserves ~2 calls' worth (max_tokens 2000), so kept
    reservations would stop the chat after 2 calls; settled to their usage chunks, 3 fit (the
    4th's reservation would pass the limit) and the ledger holds exactly their priced usage."""
    if ledger == "redis":
        use_redis(settings)
    budget = Budget.objects.create(
        scope="enterprise", enterprise_id="acme", period="day", limit=CALL * 4 + CALL / 2
    )
    kept_before = sum(enforce.kept.values())
    with pytest.raises(BudgetExceeded):
        streamed_chat(llm, f"go on {USAGE}", 10, chat_id="s1", enterprise_id="acme")
    flush()
    assert len(llm.served) == 3 and all(s.streamed for s in llm.served)
    served = [s.usage for s in llm.served]
    assert all(u is not None for u in served)
    real = sum(
        (
            expected_cost("gpt-4o-mini", u.prompt_tokens, u.completion_tokens, u.cached_tokens, 0)
            for u in served
        ),
        Decimal(0),
    )
    assert real == CALL * 3
    found = figures(budget)
    assert (found.spent, found.reserved) == (real, 0)
    assert sum(enforce.kept.values()) == kept_before
    session = Session.objects.get(chat_id="s1")
    assert session.status == Session.Status.BLOCKED and session.total_cost == real


@pytest.mark.parametrize(
    ("directive", "reason"),
    [
        ("[[usage_raw:null]]", "stream_without_usage"),  # a server that ignores include_usage
        ("[[stream_drop:2:reset]]", "stream_failed"),  # the stream is cut mid-body
    ],
)
def test_a_stream_without_usage_keeps_its_reservation_counted_and_noted(
    llm: FakeLLMServer, directive: str, reason: str
) -> None:
    budget = Budget.objects.create(scope="enterprise", enterprise_id="acme", period="day", limit=Decimal(1))
    before = enforce.kept[reason]
    raised: Exception | None = None
    try:
        streamed_chat(llm, f"hi {directive}", 1, chat_id="s2", enterprise_id="acme")
    except Exception as exc:  # AG2 raises for the cut stream: the session still ends
        raised = exc
    assert (raised is not None) == (reason == "stream_failed")
    flush()
    assert len(llm.served) == 1 and llm.served[0].usage is None
    assert enforce.kept[reason] - before == 1
    (note,) = AgentEvent.objects.filter(session__chat_id="s2", name="budget_reservation_kept")
    data = note.data
    assert (data["reason"], data["model"]) == (reason, "gpt-4o-mini")
    kept = Decimal(data["amount"])
    # the worst case: at least the 2000 output tokens at gpt-4o-mini's output price
    assert kept >= expected_cost("gpt-4o-mini", 0, MAX_TOKENS, 0, 0)
    found = figures(budget)
    assert (found.spent, found.reserved) == (kept, 0)
