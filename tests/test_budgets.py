"""Budgets: period math, the shared ledgers under concurrency, and real classic chats against the
fake LLM server stopped before the call that would cross a limit (expected costs from
genai-prices' own ``calc_price``, request counts from the server)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import autogen
import pytest
from django.db import connection
from hypothesis import given, settings
from hypothesis import strategies as st

from ag2_logging import BudgetExceeded, ag2_logging_session, flush
from ag2_logging.budgets import enforce, periods
from ag2_logging.budgets.accounts import Account
from ag2_logging.budgets.ledger import DatabaseLedger, RedisLedger
from ag2_logging.conf import conf
from ag2_logging.formats import show
from ag2_logging.models import Budget, Session
from ag2_logging.signals import budget_threshold_reached
from ag2_logging.testing.fake_llm import FakeLLMServer
from tests.conftest import expected_cost, llm_config
from tests.support import BROKER_URL, in_fork

pytestmark = pytest.mark.django_db(transaction=True)
#: The Redis database of this run's broker (each `make test` run has its own, so runs side by
#: side never share a ledger; the tests of one run are sequential, so flushing it is safe).
REDIS_URL = BROKER_URL if BROKER_URL.startswith("redis://") else "redis://127.0.0.1:6379/14"
PARIS = ZoneInfo("Europe/Paris")
#: Usage every reply reports in the chats here: the completion dominates the cost.
USAGE = "[[usage:prompt=10,completion=1000,cached=0,reasoning=0]]"
CALL = expected_cost("gpt-4o-mini", 10, 1000, 0, 0)


@pytest.fixture(autouse=True)
def fresh_budgets() -> Iterator[None]:
    enforce.reset()
    yield
    enforce.set_clock(None)
    enforce.reset()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# -- period math -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "now", "tz", "key", "start", "end"),
    [
        ("day", utc(2026, 3, 9, 23, 59, 59), UTC, "2026-03-09", utc(2026, 3, 9), utc(2026, 3, 10)),
        ("day", utc(2026, 3, 10, 0, 0, 0), UTC, "2026-03-10", utc(2026, 3, 10), utc(2026, 3, 11)),
        # Paris is UTC+1 in winter: 23:30 UTC is already the next local day.
        ("day", utc(2026, 1, 5, 23, 30), PARIS, "2026-01-06", utc(2026, 1, 5, 23), utc(2026, 1, 6, 23)),
        # The spring DST change (29 March 2026): the local day lasts 23 hours.
        ("day", utc(2026, 3, 29, 12), PARIS, "2026-03-29", utc(2026, 3, 28, 23), utc(2026, 3, 29, 22)),
        # Weeks start on Monday: Sunday 8 March 2026 23:59 is in the week of Monday 2 March.
        ("week", utc(2026, 3, 8, 23, 59), UTC, "2026-W10", utc(2026, 3, 2), utc(2026, 3, 9)),
        ("week", utc(2026, 3, 9, 0, 0), UTC, "2026-W11", utc(2026, 3, 9), utc(2026, 3, 16)),
        ("week", utc(2026, 12, 31, 12), UTC, "2026-W53", utc(2026, 12, 28), utc(2027, 1, 4)),
        ("month", utc(2026, 2, 28, 23, 59), UTC, "2026-02", utc(2026, 2, 1), utc(2026, 3, 1)),
        ("month", utc(2026, 12, 31, 23, 0), PARIS, "2027-01", utc(2026, 12, 31, 23), utc(2027, 1, 31, 23)),
        ("month", utc(2024, 2, 29, 10), UTC, "2024-02", utc(2024, 2, 1), utc(2024, 3, 1)),
        (
            "rolling_hours",
            utc(2026, 3, 9, 14, 59),
            UTC,
            "h2026-03-09T14",
            utc(2026, 3, 9, 12),
            utc(2026, 3, 9, 15),
        ),
    ],
)
def test_period_boundaries(
    period: str, now: datetime, tz: Any, key: str, start: datetime, end: datetime
) -> None:
    found = periods.period_of(period, now, tz, window_hours=3)
    assert (found.key, found.start, found.end) == (key, start, end)


@settings(max_examples=200, deadline=None)
@given(
    moment=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
    ),
    period=st.sampled_from(["day", "week", "month"]),
    zone=st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Pacific/Apia"]),
)
def test_a_period_contains_its_moment_and_the_next_starts_at_its_end(
    moment: datetime, period: str, zone: str
) -> None:
    tz = ZoneInfo(zone)
    found = periods.period_of(period, moment, tz)
    assert found.start is not None and found.end is not None
    assert found.start <= moment < found.end
    following = periods.period_of(period, found.end, tz)
    assert following.start == found.end and following.key != found.key
    local = found.start.astimezone(tz)
    assert (local.hour, local.minute) == (0, 0) or zone == "Pacific/Apia"
    if period == "week":
        assert local.weekday() == 0
    if period == "month":
        assert local.day == 1


# -- the shared ledgers under concurrency --------------------------------------------------------


def _ledger(kind: str) -> Any:
    if kind == "redis":
        redis = pytest.importorskip("redis")
        redis.Redis.from_url(REDIS_URL).flushdb()
        return RedisLedger(REDIS_URL)
    return DatabaseLedger()


@pytest.mark.parametrize("kind", ["db", "redis"])
def test_concurrent_reservations_never_pass_the_limit(kind: str) -> None:
    """16 threads, each with its own account (as 16 processes would have), reserve and settle
    calls of $0.003 against $0.10: the ledger never holds more than the limit, and every call
    that fitted was admitted (33 calls: the 34th would pass $0.10)."""
    ledger, limit, cost = _ledger(kind), Decimal("0.10"), Decimal("0.003")
    admitted: list[int] = []
    meta = {"budget_id": None, "period_start": None, "period_end": None}

    def worker(n: int) -> None:
        account = Account(ledger, "t:conc", [], meta, lease=kind == "db")
        count = 0
        while account.reserve(cost, limit):
            account.settle(cost, cost)
            count += 1
        account.flush(force=True)
        admitted.append(count)
        connection.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    spent, reserved = ledger.totals("t:conc")
    assert reserved == 0
    assert spent == cost * sum(admitted) <= limit
    assert sum(admitted) == 33


# -- real classic chats --------------------------------------------------------------------------


def chat(server: FakeLLMServer, turns: int = 20, **scope: Any) -> None:
    assistant = autogen.AssistantAgent("assistant", llm_config=llm_config(server, max_tokens=1000))
    user = autogen.UserProxyAgent(
        "user", human_input_mode="NEVER", code_execution_config=False, max_consecutive_auto_reply=turns
    )
    with ag2_logging_session(**scope):
        user.initiate_chat(assistant, message=f"go on {USAGE}", max_turns=turns)


@pytest.mark.parametrize(("fits", "ledger"), [(3, "db"), (1, "db"), (5, "db"), (3, "redis")])
def test_a_block_budget_stops_a_classic_chat_before_the_call_that_would_cross_it(
    llm: FakeLLMServer, settings: Any, fits: int, ledger: str
) -> None:
    if ledger == "redis":
        _ledger("redis")
        settings.AG2_LOGGING = {**settings.AG2_LOGGING, "BUDGET_REDIS_URL": REDIS_URL}
        conf.reload()
    budget = Budget.objects.create(
        scope="enterprise", enterprise_id="acme", period="day", limit=CALL * fits + CALL / 2
    )
    with pytest.raises(BudgetExceeded) as raised:
        chat(llm, chat_id="blocked", enterprise_id="acme", workflow_name="wf")
    assert len(llm.served) == fits
    flush()
    session = Session.objects.get(chat_id="blocked")
    assert session.status == Session.Status.BLOCKED
    assert session.call_count == fits and session.total_cost == CALL * fits
    exc = raised.value
    assert (exc.budget, exc.limit, exc.scope) == (budget.pk, budget.limit, "enterprise acme, day")
    assert exc.spent == CALL * fits and exc.period_end is not None


def test_an_unrelated_enterprise_and_a_warn_budget_do_not_block(llm: FakeLLMServer) -> None:
    Budget.objects.create(scope="enterprise", enterprise_id="other", period="day", limit=CALL / 2)
    Budget.objects.create(scope="global", period="day", limit=CALL / 2, action="warn")
    chat(llm, turns=3, chat_id="free", enterprise_id="acme")
    assert len(llm.served) == 3
    flush()
    assert Session.objects.get(chat_id="free").status == Session.Status.COMPLETED


def test_a_per_session_budget(llm: FakeLLMServer) -> None:
    with pytest.raises(BudgetExceeded) as raised:
        chat(llm, chat_id="own", enterprise_id="acme", budget=CALL * 2 + CALL / 2)
    assert len(llm.served) == 2 and raised.value.budget is None
    chat(llm, turns=2, chat_id="next", enterprise_id="acme", budget=CALL * 2 + CALL / 2)
    assert len(llm.served) == 4  # a new session has its own allowance


def test_soft_threshold_fires_once_per_period_and_a_new_period_resets_spend(llm: FakeLLMServer) -> None:
    """Limit: 4 calls and a half; soft threshold at 50% (2.25 calls): the third call crosses it.
    A second session the same day sends nothing more; the next day starts from zero."""
    clock = [utc(2026, 3, 9, 23, 0)]
    enforce.set_clock(lambda: clock[0])
    Budget.objects.create(
        scope="workflow", workflow_name="nightly", period="day", limit=CALL * 4 + CALL / 2, soft_percent=50
    )
    received: list[dict[str, Any]] = []

    def receiver(**kwargs: Any) -> None:
        received.append(kwargs)

    budget_threshold_reached.connect(receiver)
    try:
        chat(llm, turns=3, chat_id="d1", workflow_name="nightly")
        with pytest.raises(BudgetExceeded):
            chat(llm, turns=3, chat_id="d1b", workflow_name="nightly")
        assert len(llm.served) == 4 and len(received) == 1
        clock[0] = utc(2026, 3, 10, 0, 0)  # midnight UTC: a new day
        chat(llm, turns=3, chat_id="d2", workflow_name="nightly")
    finally:
        budget_threshold_reached.disconnect(receiver)
    assert len(llm.served) == 7 and len(received) == 2
    assert [r["spent"] for r in received] == [CALL * 3, CALL * 3]
    flush()
    crossed = Session.objects.get(chat_id="d1")
    assert crossed.agent_events.filter(name="budget_threshold").count() == 1


def test_budget_saved_applies_to_the_next_session(llm: FakeLLMServer) -> None:
    chat(llm, turns=2, chat_id="before", enterprise_id="late")
    Budget.objects.create(scope="enterprise", enterprise_id="late", period="month", limit=CALL * 3 + CALL / 2)
    with pytest.raises(BudgetExceeded):
        chat(llm, turns=5, chat_id="after", enterprise_id="late")
    assert len(llm.served) == 2 + 3  # spend before the budget existed is not in its ledger


@pytest.mark.parametrize("ledger", ["db", "redis"])
def test_sixteen_concurrent_sessions_of_one_enterprise_overshoot_at_most_one_call_each(
    llm: FakeLLMServer, settings: Any, ledger: str
) -> None:
    if ledger == "redis":
        _ledger("redis")
        settings.AG2_LOGGING = {**settings.AG2_LOGGING, "BUDGET_REDIS_URL": REDIS_URL}
        conf.reload()
    limit = CALL * 40 + CALL / 2
    Budget.objects.create(scope="enterprise", enterprise_id="many", period="day", limit=limit)
    outcomes: list[str] = []

    def run(n: int) -> None:
        try:
            chat(llm, turns=10, chat_id=f"c{n}", enterprise_id="many")
            outcomes.append("completed")
        except BudgetExceeded:
            outcomes.append("blocked")
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    served = len(llm.served)
    assert CALL * served <= limit + CALL * 16
    assert served >= 40 - 16  # leases held by others block early by less than a call each
    assert "blocked" in outcomes


# -- the admin -----------------------------------------------------------------------------------


def test_the_admin_shows_spend_reservations_forecast_and_blocked_sessions(
    llm: FakeLLMServer, client: Any
) -> None:
    import importlib

    from django.contrib.auth.models import User
    from django.urls import clear_url_caches

    import ag2_logging.admin.budgets  # noqa: F401 - registers BudgetAdmin until admin/__init__ imports it

    # The admin's URLs were built when the URLconf was first imported, maybe before this import.
    importlib.reload(importlib.import_module("tests.urls"))
    clear_url_caches()

    clock = [utc(2026, 3, 10, 6, 0)]  # a quarter of the day gone: the forecast is 4x the spend
    enforce.set_clock(lambda: clock[0])
    budget = Budget.objects.create(
        name="acme daily", scope="enterprise", enterprise_id="acme", period="day", limit=CALL * 2 + CALL / 2
    )
    with pytest.raises(BudgetExceeded):
        chat(llm, chat_id="adm", enterprise_id="acme")
    flush()
    from ag2_logging.budgets.figures import blocked_sessions, figures

    found = figures(budget)
    assert (found.spent, found.reserved, found.forecast) == (
        CALL * 2,
        0,
        (CALL * 8).quantize(Decimal("1e-6")),
    )
    assert list(blocked_sessions(budget).values_list("chat_id", flat=True)) == ["adm"]
    client.force_login(User.objects.create_superuser("admin", "a@example.com", "pw"))
    page = client.get("/admin/ag2_logging/budget/").content.decode()
    assert (
        "acme daily" in page
        and show(CALL * 2, money=True) in page
        and show((CALL * 8).quantize(Decimal("1e-6")), money=True) in page
        and f"{CALL * 2:.6f}" not in page  # money carries its currency, unpadded
    )
    detail = client.get(f"/admin/ag2_logging/budget/{budget.pk}/change/").content.decode()
    assert show(CALL * 2, money=True) in detail and f"{CALL * 2:.6f}" not in detail
    listed = client.get(
        f"/admin/ag2_logging/session/?status__exact=blocked&error__startswith=BudgetExceeded: budget %23{budget.pk} ("
    )
    assert listed.status_code == 200 and "adm" in listed.content.decode()
    form = client.post(
        "/admin/ag2_logging/budget/add/",
        {
            "scope": "global",
            "period": "rolling_hours",
            "limit": "1",
            "soft_percent": "80",
            "action": "block",
            "unknown_model": "block",
        },
    )
    assert "A rolling period needs its window in hours." in form.content.decode()


def test_an_unnamed_budget_shows_its_limit_as_money(client: Any) -> None:
    """A new user's budget read "budgetco day 0.0000800000" in the list: padded, no currency."""
    from django.contrib.auth.models import User

    budget = Budget.objects.create(
        scope="enterprise", enterprise_id="budgetco", period="day", limit=Decimal("0.0000800000")
    )
    budget.refresh_from_db()  # the limit as the database gives it back: ten places
    assert str(budget) == "budgetco day $0.00008"
    client.force_login(User.objects.create_superuser("admin", "a@example.com", "pw"))
    page = client.get("/admin/ag2_logging/budget/").content.decode()
    assert "budgetco day $0.00008" in page and "0.0000800000" not in page
    assert "$0" in page  # spent this period, with its currency


@pytest.mark.parametrize(
    ("spent", "limit", "estimate", "shown"),
    [
        (
            Decimal("0E-10"),
            Decimal("0.0010000000"),
            None,
            "spent and reserved $0 would pass the limit $0.001",
        ),
        (Decimal("0.0089570000"), Decimal("1"), None, "spent and reserved $0.008957 would pass the limit $1"),
        (Decimal("12.5"), Decimal("10.00"), None, "spent and reserved $12.5 would pass the limit $10"),
        # A new user's first call refused: $0 spent alone reads as a fault without the estimate.
        (
            Decimal("0E-10"),
            Decimal("0.0000800000"),
            Decimal("0.0024810000"),
            "spent and reserved $0 plus this call's estimated $0.002481 would pass the limit $0.00008",
        ),
    ],
)
def test_budget_exceeded_says_plain_dollars_and_chains_nothing(
    spent: Decimal, limit: Decimal, estimate: Decimal | None, shown: str
) -> None:
    import pickle

    from ag2_logging.budgets.enforce import run_off_loop
    from ag2_logging.budgets.errors import BudgetExceeded

    def refuse() -> None:
        raise BudgetExceeded(
            budget=1, scope="enterprise acme", limit=limit, spent=spent, period_end=None, estimate=estimate
        )

    with pytest.raises(BudgetExceeded) as caught:
        run_off_loop(refuse)  # sync code: no event loop runs here
    assert str(caught.value) == f"budget #1 (enterprise acme): {shown}"
    assert caught.value.__context__ is None and caught.value.__cause__ is None
    again = pickle.loads(pickle.dumps(caught.value))  # a Celery result carries it whole
    assert (str(again), again.estimate, again.spent) == (str(caught.value), estimate, spent)


@pytest.mark.parametrize("broken", ["budgets", "ledger"])
def test_budgets_fail_open_when_they_cannot_be_read(
    llm: FakeLLMServer, monkeypatch: pytest.MonkeyPatch, broken: str
) -> None:
    """A ledger that cannot be reached (database or Redis down) never stops a workflow: the
    call goes out unbudgeted, counted and logged."""
    from django.db import OperationalError

    from ag2_logging.budgets import enforce
    from ag2_logging.budgets.accounts import Account

    Budget.objects.create(scope="enterprise", enterprise_id="acme", period="day", limit=CALL / 2)

    def down(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("could not connect to server")

    if broken == "budgets":
        monkeypatch.setattr(enforce, "applicable", down)
    else:
        monkeypatch.setattr(Account, "reserve", down)
    before = enforce.unavailable["calls"]
    chat(llm, turns=2, chat_id="open", enterprise_id="acme")  # would be blocked at once
    assert len(llm.served) == 2
    assert enforce.unavailable["calls"] - before == 2


def test_a_request_outside_any_session_is_never_budgeted(llm: FakeLLMServer) -> None:
    import openai

    from ag2_logging.budgets import enforce

    Budget.objects.create(scope="global", period="day", limit=CALL / 2)
    assert enforce.idle(None)
    client = openai.OpenAI(base_url=llm.base_url, api_key="sk-test-outside", max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert len(llm.served) == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork")
def test_a_forked_child_moves_spend_on_threads_of_its_own() -> None:
    """Forked while the parent's spend-move threads were all busy (sessions that ended on an
    event loop), a child's own moves still run, and it does not wait for the parent's."""
    release = threading.Event()
    held = [enforce._executor.submit(release.wait, 30) for _ in range(4)]  # every thread busy
    with enforce._pending_lock:
        enforce._pending.update(held)
    try:

        def child() -> str:
            ran = enforce._executor.submit(lambda: "ran").result(timeout=5)
            enforce.drain(1.0)
            return f"{ran} drained"

        report = in_fork(child)
        assert report == "ran drained", report
    finally:
        release.set()
        for future in held:
            future.result(timeout=30)
        with enforce._pending_lock:
            enforce._pending.difference_update(held)
