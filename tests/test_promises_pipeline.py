"""Promises of reprice and the rollups that only an end-to-end test (or none) would notice
(issue 15, item 21), and the override's admin page that reprices the calls it covers (item 5)."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from ag2_logging.models import DailyRollup, LLMCall, ModelDayRollup, ModelPrice, Session
from ag2_logging.pipeline.reprice import override_scope, reprice
from ag2_logging.pipeline.rollups import rebuild_rollups, summarize_session
from tests.report_data import at, call, refresh_totals, session
from tests.test_admin_reports import client_for, staff

pytestmark = pytest.mark.django_db

D = Decimal
PROMPT, COMPLETION = 1000, 200
#: An override of $3 / $15 per million tokens: by hand, 1000 * 3e-6 + 200 * 15e-6.
OVERRIDE_COST = D(PROMPT) * 3 / 1_000_000 + D(COMPLETION) * 15 / 1_000_000


def _override(model: str = "house-*", **extra: Any) -> ModelPrice:
    return ModelPrice.objects.create(model=model, input_per_mtok=D(3), output_per_mtok=D(15), **extra)


# -- an override never gives a failed (or cached, or usage-less) call a cost ------------------------

# (what the call is, its fields, the cost and status it must keep)
KEPT: list[tuple[str, dict[str, Any], Decimal | None, str]] = [
    ("failed", {"status": "error", "error": "Error code: 500", "cost": D(0)}, D(0), "priced"),
    ("failed, status left success", {"status": "success", "error": "timeout", "cost": D(0)}, D(0), "priced"),
    ("failed, no error text", {"status": "error", "error": "", "cost": D(0)}, D(0), "priced"),
    ("AG2 cache hit", {"is_cached": True, "cost": D(0)}, D(0), "priced"),
    ("no usage reported", {"cost": None, "price_status": "no_usage"}, None, "no_usage"),
]


@pytest.mark.parametrize(("fields", "cost", "status"), [k[1:] for k in KEPT], ids=[k[0] for k in KEPT])
def test_an_override_never_reprices_failed_cached_or_usage_less_calls(
    fields: dict[str, Any], cost: Decimal | None, status: str
) -> None:
    s = session("s", "acme", "triage", at(1))
    price_status = fields.pop("price_status", "priced")
    kept = call(
        s,
        1,
        model="house-model",
        start=at(1, 10),
        prompt=PROMPT,
        completion=COMPLETION,
        latency_ms=5,
        **fields,
    )
    LLMCall.objects.filter(pk=kept.pk).update(price_status=price_status)
    priced = call(
        s,
        2,
        model="house-model",
        start=at(1, 11),
        prompt=PROMPT,
        completion=COMPLETION,
        cost=None,
        latency_ms=5,
    )
    refresh_totals(s)
    rebuild_rollups()
    _override()
    result = reprice()
    kept.refresh_from_db()
    priced.refresh_from_db()
    assert (kept.cost, kept.price_status) == (cost, status)
    assert (priced.cost, priced.price_status) == (OVERRIDE_COST, "override")
    assert result.changed == 1
    s.refresh_from_db()
    assert s.total_cost == OVERRIDE_COST
    assert DailyRollup.objects.get().cost == OVERRIDE_COST


def test_repricing_keeps_inferred_while_genai_prices_still_prices_it() -> None:
    s = session("s", "acme", "triage", at(1))
    c = call(
        s,
        1,
        model="gpt-4o-mini",
        start=at(1, 10),
        prompt=PROMPT,
        completion=COMPLETION,
        cost=D("123"),
        latency_ms=5,
    )
    LLMCall.objects.filter(pk=c.pk).update(price_status="inferred")
    reprice()
    c.refresh_from_db()
    assert c.price_status == "inferred"
    import genai_prices

    usage = genai_prices.Usage(input_tokens=PROMPT, output_tokens=COMPLETION)
    assert c.cost == genai_prices.calc_price(usage, "gpt-4o-mini", provider_id="openai").total_price.quantize(
        D("1e-10")
    )


# -- days: a call is counted on the UTC day it ended -------------------------------------------------


def _crossing_midnight() -> tuple[Session, LLMCall]:
    day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=2)
    midnight = dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)
    s = Session.objects.create(
        chat_id="night",
        enterprise_id="acme",
        workflow_name="batch",
        status="completed",
        started_at=midnight - dt.timedelta(minutes=5),
        ended_at=midnight + dt.timedelta(minutes=5),
    )
    c = LLMCall.objects.create(
        id=uuid.uuid4(),
        session=s,
        model="gpt-4o",
        provider="openai",
        prompt_tokens=10,
        completion_tokens=5,
        total_tokens=15,
        cost=D("0.5"),
        price_status="priced",
        latency_ms=120_000.0,
        started_at=midnight - dt.timedelta(minutes=1),
        ended_at=midnight + dt.timedelta(minutes=1),
    )
    return s, c


@pytest.mark.parametrize("how", ["summarize", "rebuild"])
def test_a_call_across_utc_midnight_is_rolled_up_on_its_end_day(how: str) -> None:
    s, c = _crossing_midnight()
    assert c.ended_at is not None and c.started_at is not None
    if how == "summarize":
        assert summarize_session(s.pk)
    else:
        rebuild_rollups()
    end_day, start_day = c.ended_at.date(), c.started_at.date()
    assert end_day == start_day + dt.timedelta(days=1)
    assert list(DailyRollup.objects.values_list("day", "call_count", "cost")) == [(end_day, 1, D("0.5"))]
    assert list(ModelDayRollup.objects.values_list("day", "session_count")) == [(end_day, 1)]


def test_reprice_since_and_until_are_the_rollup_days() -> None:
    s, c = _crossing_midnight()
    LLMCall.objects.filter(pk=c.pk).update(cost=None, price_status="unknown", model="house-model")
    assert c.ended_at is not None
    _override()
    # The day it started: not repriced; the day it ended: repriced.
    assert reprice(until=c.ended_at.date() - dt.timedelta(days=1)).examined == 0
    assert reprice(since=c.ended_at.date(), until=c.ended_at.date()).changed == 1
    # A call without an end counts on the day it started, as in the rollups.
    other = call(
        s, 9, model="house-model", start=at(5), prompt=PROMPT, completion=COMPLETION, cost=None, latency_ms=1
    )
    LLMCall.objects.filter(pk=other.pk).update(ended_at=None)
    assert reprice(since=at(5).date(), until=at(5).date()).changed == 1


# -- the override's admin page -----------------------------------------------------------------------


def test_override_scope_is_its_pattern_and_period() -> None:
    s = session("s", "acme", "triage", at(1))
    for i, model in enumerate(["house-a", "HOUSE-B", "other", "house-a"]):
        call(s, i, model=model, start=at(1, 10, i), prompt=1, completion=1, cost=None, latency_ms=1)
    scope = override_scope(_override("house-*", effective_from=at(3).date(), effective_to=at(0).date()))
    assert scope.models == ("HOUSE-B", "house-a")
    assert (scope.since, scope.until) == (at(3).date(), at(1).date())  # effective_to is exclusive


@pytest.fixture
def editor() -> Any:
    return client_for(staff("editor", "view_modelprice", "change_modelprice", "add_modelprice"))


def test_saving_an_override_says_past_calls_keep_their_price_and_links_to_reprice(editor: Any) -> None:
    s = session("s", "acme", "triage", at(1))
    call(
        s,
        1,
        model="house-model",
        start=at(1, 10),
        prompt=PROMPT,
        completion=COMPLETION,
        cost=None,
        latency_ms=5,
    )
    page = editor.get(reverse("admin:ag2_logging_modelprice_add")).content.decode()
    assert "keep the price they were recorded with" in page
    data = {
        "provider": "",
        "model": "house-*",
        "currency_note": "",
        "input_per_mtok": "3",
        "output_per_mtok": "15",
    }
    response = editor.post(reverse("admin:ag2_logging_modelprice_add"), data, follow=True)
    price = ModelPrice.objects.get()
    texts = [str(m) for m in get_messages(response.wsgi_request)] or [response.content.decode()]
    reprice_url = reverse("admin:ag2_logging_modelprice_reprice", args=[price.pk])
    assert any("1 call already recorded" in t and reprice_url in t for t in texts), texts
    assert LLMCall.objects.get().cost is None  # saving alone changes no past call
    change = editor.get(reverse("admin:ag2_logging_modelprice_change", args=[price.pk])).content.decode()
    assert reprice_url in change and "Reprice the calls it covers" in change


def test_the_reprice_page_reprices_inline_and_says_what_changed(editor: Any, settings: Any) -> None:
    from ag2_logging.conf import conf

    settings.AG2_LOGGING = {**settings.AG2_LOGGING, "PIPELINE": "inline"}
    conf.reload()
    s = session("s", "acme", "triage", at(1))
    failed = call(
        s, 1, model="house-model", start=at(1, 9), cost=D(0), latency_ms=5, status="error", error="500"
    )
    c = call(
        s,
        2,
        model="house-model",
        start=at(1, 10),
        prompt=PROMPT,
        completion=COMPLETION,
        cost=None,
        latency_ms=5,
    )
    refresh_totals(s)
    rebuild_rollups()
    price = _override()
    url = reverse("admin:ag2_logging_modelprice_reprice", args=[price.pk])
    confirm = editor.get(url).content.decode()
    assert "1 call already recorded" in confirm and "house-model" in confirm and "inline" in confirm
    response = editor.post(url, follow=True)
    messages = [str(m) for m in get_messages(response.wsgi_request)]
    c.refresh_from_db()
    failed.refresh_from_db()
    assert (c.cost, failed.cost) == (OVERRIDE_COST, D(0))
    assert any(f"cost unknown -> {OVERRIDE_COST}" in m and "changed 1" in m for m in messages), messages
    assert DailyRollup.objects.get().cost == OVERRIDE_COST
    # The list action does the same (and changes nothing the second time).
    changelist = reverse("admin:ag2_logging_modelprice_changelist")
    response = editor.post(
        changelist, {"action": "reprice_covered_calls", "_selected_action": [price.pk]}, follow=True
    )
    assert any("changed 0" in str(m) for m in get_messages(response.wsgi_request))


def test_only_editors_of_prices_may_reprice() -> None:
    price = _override()
    viewer = client_for(staff("viewer", "view_modelprice"))
    assert viewer.post(reverse("admin:ag2_logging_modelprice_reprice", args=[price.pk])).status_code == 403
