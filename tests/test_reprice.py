"""Price overrides, repricing and unknown models, through real classic AG2 chats."""

from __future__ import annotations

import datetime as dt
import json
import logging
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from ag2_logging import ag2_logging_session
from ag2_logging.models import DailyRollup, LLMCall, ModelPrice, Session
from ag2_logging.pipeline.rollups import rebuild_rollups
from ag2_logging.pricing import cache as price_overrides
from ag2_logging.testing import FakeLLMServer
from tests.conftest import expected_cost
from tests.test_classic import make_agents

pytestmark = pytest.mark.django_db(transaction=True)

MTOK = Decimal(1_000_000)


@pytest.fixture(autouse=True)
def fresh_overrides() -> None:
    price_overrides.invalidate()


def run_chat(server: FakeLLMServer, chat_id: str, *, model: str = "gpt-4o-mini", turns: int = 1) -> Session:
    assistant, user = make_agents(server, model=model)
    with ag2_logging_session(chat_id, "wf", "acme") as recorder:
        user.initiate_chat(assistant, message=f"go [[marker:{chat_id}]]", max_turns=turns, silent=True)
    assert recorder is not None
    return Session.objects.get(id=recorder.session_id)


def override_cost(call: LLMCall, price: ModelPrice) -> Decimal:
    """The override's price for a call, by hand (prompt includes cached, completion reasoning)."""
    uncached = call.prompt_tokens - call.cached_tokens - call.cache_write_tokens
    output = call.completion_tokens - call.reasoning_tokens
    return (
        uncached * price.input_per_mtok
        + call.cached_tokens * (price.cached_input_per_mtok or price.input_per_mtok)
        + output * price.output_per_mtok
        + call.reasoning_tokens * (price.reasoning_per_mtok or price.output_per_mtok)
    ) / MTOK


def rollup_table() -> list[tuple[Any, ...]]:
    return sorted(
        DailyRollup.objects.values_list(
            "day", "enterprise_id", "model", "call_count", "cost", "unpriced_calls"
        )
    )


def test_unknown_model_is_flagged_not_zero(llm: FakeLLMServer, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ag2_logging"):
        session = run_chat(llm, "c-unknown", model="acme-internal-llm", turns=2)
    calls = list(session.llm_calls.all())
    assert len(calls) == 2
    assert all(c.cost is None and c.price_status == "unknown" for c in calls)
    assert all(c.total_tokens == 150 for c in calls)  # tokens still counted
    assert session.unpriced_calls == 2
    assert session.total_tokens == 300
    warnings = [
        r
        for r in caplog.records
        if r.name.startswith("ag2_logging") and "acme-internal-llm" in r.getMessage()
    ]
    assert len(warnings) == 1  # once per model per process

    admin = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw")
    client = Client()
    client.force_login(admin)
    page = client.get("/admin/ag2_logging/llmcall/", {"price_status__exact": "unknown"})
    assert page.status_code == 200
    assert {c.pk for c in page.context["cl"].result_list} == {c.pk for c in calls}
    other = client.get("/admin/ag2_logging/llmcall/", {"price_status__exact": "priced"})
    assert list(other.context["cl"].result_list) == []


def test_override_applies_only_in_its_period_and_reprice_fixes_totals(llm: FakeLLMServer) -> None:
    old = run_chat(llm, "c-old")
    new = run_chat(llm, "c-new", turns=2)
    ten_days_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    LLMCall.objects.filter(session=old).update(started_at=ten_days_ago, ended_at=ten_days_ago)
    rebuild_rollups()  # the old call's rollup moves to its day
    genai_price = expected_cost("gpt-4o-mini", 120, 30, 40, 10)
    assert all(c.cost == genai_price for c in LLMCall.objects.all())

    price = ModelPrice.objects.create(
        provider="openai",
        model="gpt-4o-mini",
        input_per_mtok=Decimal("1.00"),
        cached_input_per_mtok=Decimal("0.10"),
        output_per_mtok=Decimal("4.00"),
        reasoning_per_mtok=Decimal("8.00"),
        effective_from=(dt.datetime.now(dt.UTC) - dt.timedelta(days=5)).date(),
    )
    dry = call_command_json("ag2_logging_reprice", "--dry-run")
    assert dry["changed"] == 2 and dry["dry_run"] is True
    assert all(c.cost == genai_price for c in LLMCall.objects.all())  # dry run wrote nothing

    result = call_command_json("ag2_logging_reprice")
    assert result["changed"] == 2
    assert result["sessions"] == 1
    for call in LLMCall.objects.filter(session=new):
        assert call.price_status == "override"
        assert call.cost == override_cost(call, price)
    old_call = LLMCall.objects.get(session=old)
    assert (old_call.cost, old_call.price_status) == (genai_price, "priced")  # before the period
    new.refresh_from_db()
    assert new.total_cost == sum((c.cost for c in new.llm_calls.all()), Decimal(0))
    after = rollup_table()
    rebuild_rollups()
    assert rollup_table() == after  # rollups moved by the same amounts as the calls

    assert call_command_json("ag2_logging_reprice")["changed"] == 0  # idempotent


def test_sessions_recorded_after_an_override_use_it(llm: FakeLLMServer) -> None:
    ModelPrice.objects.create(
        provider="", model="gpt-4o*", input_per_mtok=Decimal("2"), output_per_mtok=Decimal("6")
    )
    session = run_chat(llm, "c-live-override")
    call = session.llm_calls.get()
    assert call.price_status == "override"
    assert call.cost == (Decimal(120) * 2 + Decimal(30) * 6) / MTOK
    assert call.ag2_cost is not None and call.ag2_cost != call.cost  # AG2's own figure is kept beside ours


def test_reprice_filters_and_progress(llm: FakeLLMServer) -> None:
    run_chat(llm, "c-a")
    run_chat(llm, "c-b", model="gpt-4o")
    ModelPrice.objects.create(model="gpt-4o", input_per_mtok=Decimal("1"), output_per_mtok=Decimal("1"))
    err = StringIO()
    out = StringIO()
    call_command("ag2_logging_reprice", "--model", "gpt-4o", "--since", "2000-01-01", stdout=out, stderr=err)
    assert "Examined 1 calls; changed 1 in 1 sessions." in out.getvalue()
    assert "gpt-4o:" in out.getvalue()
    assert "repricing [" in err.getvalue() and "1/1 (100%)" in err.getvalue()
    assert LLMCall.objects.get(model="gpt-4o-mini").price_status == "priced"
    assert call_command_json("ag2_logging_reprice", "--enterprise", "nobody")["examined"] == 0


def test_reprice_rejects_bad_input() -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--since takes a date"):
        call_command("ag2_logging_reprice", "--since", "last tuesday")
    with pytest.raises(CommandError, match="--batch-size"):
        call_command("ag2_logging_reprice", "--batch-size", "0")


def call_command_json(*args: str) -> dict[str, Any]:
    out = StringIO()
    call_command(*args, "--json", stdout=out, stderr=StringIO())
    return json.loads(out.getvalue())


def test_admin_shows_where_ag2s_own_cost_differs(llm: FakeLLMServer) -> None:
    """AG2 classic prices cached input tokens at the full input price; we price them as billed."""
    session = run_chat(llm, "c-differs")
    call = session.llm_calls.get()
    assert call.cached_tokens == 40
    assert call.ag2_cost is not None
    assert call.ag2_cost > call.cost  # AG2 ignores the cache discount
    admin = get_user_model().objects.create_superuser("fin", "fin@example.com", "pw")
    client = Client()
    client.force_login(admin)
    differs = client.get("/admin/ag2_logging/llmcall/", {"ag2_cost": "differs"})
    assert [c.pk for c in differs.context["cl"].result_list] == [call.pk]
    same = client.get("/admin/ag2_logging/llmcall/", {"ag2_cost": "same"})
    assert list(same.context["cl"].result_list) == []
    page = client.get(f"/admin/ag2_logging/llmcall/{call.pk}/change/").content.decode()
    assert "differs from ours" in page


# -- an override reprices exactly the calls it covers: its models, its provider, its period -------

#: The calls recorded (one real chat each), then moved: (provider, UTC days ago of the call).
SPREAD = [("openai", 0), ("openai", 3), ("openai", 10), ("azure", 3), ("azure", 0)]


def day(days_ago: int) -> dt.date:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago)).date()


def spread_calls(server: FakeLLMServer) -> list[LLMCall]:
    """One priced gpt-4o-mini call per row of SPREAD (real classic chats), moved to its provider
    and day, with the rollups and session totals rebuilt as ingest would have them. Each call's
    cost is made stale (twice today's genai-prices figure, as if recorded under an older price
    list), so a call repriced when it should not be would change."""
    from ag2_logging.pipeline.ingest import refresh_session_totals

    calls = []
    for i, (provider, days_ago) in enumerate(SPREAD):
        session = run_chat(server, f"c-spread-{i}")
        (call,) = session.llm_calls.all()
        assert call.cost is not None
        when = dt.datetime.combine(day(days_ago), dt.time(12), tzinfo=dt.UTC)
        LLMCall.objects.filter(pk=call.pk).update(
            provider=provider, started_at=when, ended_at=when + dt.timedelta(seconds=1), cost=call.cost * 2
        )
        refresh_session_totals(session)
        session.save()
        calls.append(LLMCall.objects.get(pk=call.pk))
    rebuild_rollups()
    assert all(c.price_status == "priced" and c.cost is not None for c in calls)
    return calls


#: (case, the override's provider, effective_from and effective_to as days ago (None: open),
#: the indexes in SPREAD of the calls it covers)
SCOPES = [
    ("one provider, a closed period", "openai", 5, 1, {1}),
    ("any provider, open end", "", 5, None, {0, 1, 3, 4}),
    ("provider spelled in capitals, open start", "Azure", None, 2, {3}),
    ("one provider, a long closed period", "openai", 12, 2, {1, 2}),
]


def make_override(provider: str, since: int | None, to: int | None) -> ModelPrice:
    return ModelPrice.objects.create(
        provider=provider,
        model="gpt-4o-mini",
        input_per_mtok=Decimal("1.00"),
        cached_input_per_mtok=Decimal("0.10"),
        output_per_mtok=Decimal("4.00"),
        reasoning_per_mtok=Decimal("8.00"),
        effective_from=day(since) if since is not None else None,
        effective_to=day(to) if to is not None else None,
    )


def assert_repriced_exactly(calls: list[LLMCall], covered: set[int], price: ModelPrice) -> None:
    """The covered calls have the override's price, by hand; every other call kept its own;
    session totals and rollups follow (the rollups equal a rebuild)."""
    for index, before in enumerate(calls):
        after = LLMCall.objects.get(pk=before.pk)
        if index in covered:
            assert (after.cost, after.price_status) == (override_cost(after, price), "override"), index
            assert after.cost != before.cost
        else:
            assert (after.cost, after.price_status) == (before.cost, before.price_status), index
        session = Session.objects.get(pk=after.session_id)
        assert session.total_cost == after.cost
    table = rollup_table()
    rebuild_rollups()
    assert rollup_table() == table


@pytest.mark.parametrize("via", ["admin", "command", "task"])
@pytest.mark.parametrize(
    ("provider", "since", "to", "covered"), [s[1:] for s in SCOPES], ids=[s[0] for s in SCOPES]
)
def test_an_override_reprices_exactly_the_calls_it_covers(
    llm: FakeLLMServer,
    settings: Any,
    via: str,
    provider: str,
    since: int | None,
    to: int | None,
    covered: set[int],
) -> None:
    from ag2_logging import tasks
    from ag2_logging.conf import conf

    calls = spread_calls(llm)
    price = make_override(provider, since, to)
    first = price.effective_from.isoformat() if price.effective_from else None
    last = (price.effective_to - dt.timedelta(days=1)).isoformat() if price.effective_to else None
    if via == "admin":
        settings.AG2_LOGGING = {**settings.AG2_LOGGING, "PIPELINE": "inline"}
        conf.reload()
        editor = get_user_model().objects.create_superuser("ed", "ed@example.com", "pw")
        client = Client()
        client.force_login(editor)
        url = f"/admin/ag2_logging/modelprice/{price.pk}/reprice/"
        assert f"{len(covered)} call" in client.get(url).content.decode()
        response = client.post(url, follow=True)
        (message,) = [str(m) for m in response.context["messages"]]
        assert f"examined {len(covered)} call(s), changed {len(covered)}" in message, message
        assert f"({provider or '*'}, {first or '…'} to {last or '…'})" in message, message
    elif via == "command":
        args = ["--model", "gpt-4o-mini"]
        args += ["--provider", provider] if provider else []
        args += ["--since", first] if first else []
        args += ["--until", last] if last else []
        assert call_command_json("ag2_logging_reprice", *args)["changed"] == len(covered)
    else:
        result = tasks.reprice.delay(model="gpt-4o-mini", provider=provider, since=first, until=last).get()
        assert (result["examined"], result["changed"]) == (len(covered), len(covered))
    assert_repriced_exactly(calls, covered, price)


def test_reprice_until_before_since_is_refused() -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--until must not be before --since"):
        call_command("ag2_logging_reprice", "--since", "2026-02-01", "--until", "2026-01-31")
    with pytest.raises(CommandError, match="--until takes a date"):
        call_command("ag2_logging_reprice", "--until", "soon")


@pytest.mark.parametrize("batch_size", [1, 2, 1_000])
def test_a_repricing_counts_the_same_whatever_its_batches(llm: FakeLLMServer, batch_size: int) -> None:
    """Each batch counts apart and is added to the result (RepriceResult.merge, so that a batch
    run again after a deadlock counts once): one call per batch or all in one, the same result."""
    from ag2_logging.pipeline.reprice import reprice

    run_chat(llm, "c-a", turns=2)
    run_chat(llm, "c-b", model="gpt-4o")
    run_chat(llm, "c-c", model="unknown-model-xyz")
    ModelPrice.objects.create(model="gpt-4o*", input_per_mtok=Decimal("3"), output_per_mtok=Decimal("9"))
    ModelPrice.objects.create(
        model="unknown-model-xyz", input_per_mtok=Decimal("1"), output_per_mtok=Decimal("2")
    )
    price_overrides.invalidate()
    whole = reprice(dry_run=True, batch_size=1_000).as_dict()
    assert whole["examined"] == LLMCall.objects.count() == 4 and whole["changed"] == 4
    assert whole["sessions"] == Session.objects.count() == 3
    assert sorted(whole["by_model"]) == ["gpt-4o", "gpt-4o-mini", "unknown-model-xyz"]
    assert reprice(dry_run=True, batch_size=batch_size).as_dict() == whole
    assert reprice(batch_size=batch_size).as_dict() == {**whole, "dry_run": False}
