"""The trends and recommendations pages (issue 18), through the Django test client.

Trends arithmetic is seeded as rollup rows with known figures (weeks, months, the week to date,
unknown costs, a planted anomaly); the recommendations as calls rolled up the way production
does, each estimate computed again here with genai-prices' own API (``tests.conftest``), and
one through a real AG2 chat against the fake LLM server.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import statistics
from decimal import Decimal
from typing import Any

import autogen
import pytest
from django.test import Client
from django.urls import reverse

from ag2_logging import ag2_logging_session, flush
from ag2_logging.models import DailyRollup, LLMCall, ModelPrice, Session
from ag2_logging.pipeline.rollups import rebuild_rollups
from ag2_logging.pricing import NormalizedUsage
from ag2_logging.reports import ReportFilter
from ag2_logging.reports import recommendations as recs
from ag2_logging.reports import trends as tr
from ag2_logging.reports.recommendations import failing
from tests.conftest import genai_calc, llm_config
from tests.report_data import call, refresh_totals, rollup, session
from tests.test_admin_reports import client_for, staff

pytestmark = pytest.mark.django_db

D = Decimal
#: A Sunday: the week 2026-11-23 .. 2026-11-29 (ISO 2026-W48) is whole.
SUNDAY = dt.date(2026, 11, 29)
TRENDS = "admin:ag2_logging_report_trends"
RECS = "admin:ag2_logging_report_recommendations"


@pytest.fixture
def viewer() -> Client:
    return client_for(staff("viewer", "view_dailyrollup"))


def read_csv(response: Any) -> list[dict[str, str]]:
    assert response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


def days_before(day: dt.date, n: int) -> dt.date:
    return day - dt.timedelta(days=n)


# ---------------------------------------------------------------------------------------------
# Periods


def test_periods_are_iso_weeks_and_calendar_months() -> None:
    weeks = tr.periods_ending(dt.date(2026, 11, 25), "week", 3)
    assert [(p.label, p.start, p.end) for p in weeks] == [
        ("2026-W46", dt.date(2026, 11, 9), dt.date(2026, 11, 15)),
        ("2026-W47", dt.date(2026, 11, 16), dt.date(2026, 11, 22)),
        ("2026-W48", dt.date(2026, 11, 23), dt.date(2026, 11, 29)),
    ]
    months = tr.periods_ending(dt.date(2026, 3, 10), "month", 3)
    assert [(p.label, p.start, p.end) for p in months] == [
        ("2026-01", dt.date(2026, 1, 1), dt.date(2026, 1, 31)),
        ("2026-02", dt.date(2026, 2, 1), dt.date(2026, 2, 28)),
        ("2026-03", dt.date(2026, 3, 1), dt.date(2026, 3, 31)),
    ]


# ---------------------------------------------------------------------------------------------
# Week over week, month over month


def seed_weeks() -> None:
    this_monday, last_monday = days_before(SUNDAY, 6), days_before(SUNDAY, 13)
    # triage: $10 -> $15 (+$5, +50%)
    rollup(last_monday, "triage", "4.00", tokens=4000)
    rollup(last_monday + dt.timedelta(days=3), "triage", "6.00", tokens=6000)
    rollup(this_monday, "triage", "15.00", tokens=12000)
    # search: $4 -> $1 (-$3, -75%)
    rollup(last_monday, "search", "4.00", model="gpt-4o-mini", tokens=8000)
    rollup(SUNDAY, "search", "1.00", model="gpt-4o-mini", tokens=2000)
    # draft: this week's calls have no price: cost unknown, change unknown
    rollup(this_monday, "draft", None, enterprise="globex", model="mystery-model", calls=3, tokens=900)
    # fresh: new this week, $2
    rollup(SUNDAY, "fresh", "2.00", enterprise="globex", tokens=100)
    # three weeks before: only in the oldest column
    rollup(days_before(SUNDAY, 20), "triage", "7.00")


def test_week_over_week_change_movers_and_unknown_costs() -> None:
    seed_weeks()
    report = tr.trends(tr.TrendFilter(end=SUNDAY, grain="week", by="workflow", periods=3))
    assert [p.label for p in report.periods] == ["2026-W46", "2026-W47", "2026-W48"]
    assert not report.to_date
    rows = {r.label: r for r in report.rows}
    triage = rows["triage"]
    assert [f.cost for f in triage.figures] == [D("7.00"), D("10.00"), D("15.00")]
    assert triage.change.cost_delta == D("5.00")
    assert triage.change.cost_ratio == pytest.approx(0.5)
    assert triage.change.tokens_ratio == pytest.approx(0.2)  # 10,000 -> 12,000
    assert triage.change.days == 7
    search = rows["search"]
    assert search.change.cost_delta == D("-3.00") and search.change.cost_ratio == pytest.approx(-0.75)
    assert rows["fresh"].change.is_new and rows["fresh"].change.cost_delta == D("2.00")
    draft = rows["draft"]
    assert draft.current.cost_state == "unknown" and draft.current.cost is None
    assert draft.change.cost_delta is None
    # The total: $14 known before; this week at least $18 with unknown calls: the change is unknown.
    assert report.total.change.previous.cost == D("14.00")
    assert report.total.current.cost_state == "partial" and report.total.current.priced_cost == D("18.00")
    assert report.total.change.cost_delta is None
    assert [r.label for r in report.movers] == ["triage", "search", "fresh"]


def test_week_to_date_is_compared_with_the_same_days_before() -> None:
    wednesday = days_before(SUNDAY, 4)
    last_monday = days_before(SUNDAY, 13)
    for i, cost in enumerate(["1", "2", "3", "40"]):  # last week Mon..Thu
        rollup(last_monday + dt.timedelta(days=i), "triage", cost)
    for i, cost in enumerate(["3", "3", "3", "100"]):  # this week Mon..Thu (Thu after the end)
        rollup(days_before(SUNDAY, 6) + dt.timedelta(days=i), "triage", cost)
    report = tr.trends(tr.TrendFilter(end=wednesday, grain="week", by="workflow", periods=2))
    (triage,) = report.rows
    assert report.to_date and triage.change.days == 3
    assert triage.current.cost == D(9)  # Thursday is after the end
    assert triage.figures[0].cost == D(46)  # the whole previous week in its column
    assert triage.change.previous.cost == D(6)  # ...but Mon..Wed in the change
    assert triage.change.cost_delta == D(3) and triage.change.cost_ratio == pytest.approx(0.5)


def test_month_over_month_by_enterprise_and_model() -> None:
    rollup(dt.date(2026, 10, 3), "triage", "20.00", tokens=5000)
    rollup(dt.date(2026, 10, 31), "search", "5.00", enterprise="globex", model="gpt-4o-mini")
    rollup(dt.date(2026, 11, 1), "triage", "12.50", tokens=3000)
    rollup(dt.date(2026, 11, 30), "search", "7.50", enterprise="globex", model="gpt-4o-mini")
    by_enterprise = tr.trends(tr.TrendFilter(end=dt.date(2026, 11, 30), grain="month", by="enterprise"))
    rows = {r.label: r for r in by_enterprise.rows}
    assert rows["acme"].change.cost_delta == D("-7.50") and rows["acme"].change.days == 31
    assert rows["acme"].change.cost_ratio == pytest.approx(-0.375)
    assert rows["globex"].change.cost_delta == D("2.50") and rows[
        "globex"
    ].change.cost_ratio == pytest.approx(0.5)
    by_model = tr.trends(tr.TrendFilter(end=dt.date(2026, 11, 30), grain="month", by="model"))
    assert {r.label: r.change.cost_delta for r in by_model.rows} == {
        "gpt-4o (openai)": D("-7.50"),
        "gpt-4o-mini (openai)": D("2.50"),
    }
    assert [r.label for r in by_model.movers] == ["gpt-4o (openai)", "gpt-4o-mini (openai)"]


def test_trends_page_and_csv(viewer: Client) -> None:
    seed_weeks()
    url = reverse(TRENDS)
    page = viewer.get(url, {"end": SUNDAY.isoformat(), "periods": "3"})
    assert page.status_code == 200
    html = page.content.decode()
    assert "Cost, 2026-W48" in html and "+$5.00 (+50.0%)" in html and "-$3.00 (-75.0%)" in html
    assert "against the whole previous period" in html
    assert 'aria-current="page"' in html and ">Trends<" in html
    table = html.split('id="ag2-trends"', 1)[1]
    draft_row = table.split("draft", 1)[1].split("</tr>", 1)[0]
    assert "unknown" in draft_row and "$0" not in draft_row  # unknown is never shown as $0
    rows = read_csv(viewer.get(url, {"end": SUNDAY.isoformat(), "periods": "3", "format": "csv"}))
    current = {r["workflow_name"]: r for r in rows if r["period"] == "2026-W48"}
    assert current["triage"]["cost"] == "15" and current["triage"]["cost_change"] == "5"
    assert current["triage"]["cost_change_ratio"] == "0.5000" and current["triage"]["previous_cost"] == "10"
    assert current["draft"]["cost"] == "" and current["draft"]["cost_complete"] == "no"
    assert current["draft"]["cost_change"] == ""
    assert current["TOTAL"]["cost_change"] == "" and current["TOTAL"]["previous_cost"] == "14"
    older = [r for r in rows if r["workflow_name"] == "triage" and r["period"] == "2026-W46"]
    assert older[0]["cost"] == "7" and older[0]["cost_change"] == ""
    by_month = viewer.get(url, {"grain": "month", "by": "model", "end": SUNDAY.isoformat()})
    assert by_month.status_code == 200 and "2026-11" in by_month.content.decode()


def test_trends_filter_reports_bad_parameters(viewer: Client) -> None:
    response = viewer.get(reverse(TRENDS), {"grain": "year", "by": "agent", "periods": "99", "end": "soon"})
    assert response.status_code == 200
    errors = response.context["filter_errors"]
    assert len(errors) == 4
    tflt = response.context["tflt"]
    assert (tflt.grain, tflt.by, tflt.periods) == ("week", "workflow", 24)


def test_trends_need_the_rollup_view_permission() -> None:
    assert client_for(staff("nobody")).get(reverse(TRENDS)).status_code == 403
    assert client_for(staff("nobody2")).get(reverse(RECS)).status_code == 403


# ---------------------------------------------------------------------------------------------
# Anomalies


def seed_anomaly(end: dt.date) -> dt.date:
    """triage: $9, $10, $11 in turn for 40 days, $60 two days before ``end``; steady: $5 a day
    with a cent of noise, never flagged."""
    planted = days_before(end, 2)
    for n in range(40):
        day = days_before(end, n)
        rollup(day, "triage", "60.00" if day == planted else str(9 + n % 3))
        rollup(day, "steady", f"5.0{n % 2}")
    return planted


def test_a_planted_anomaly_is_flagged_with_its_robust_z() -> None:
    planted = seed_anomaly(SUNDAY)
    found, checked = tr.anomalies(tr.TrendFilter(end=SUNDAY))
    assert checked == 2
    (anomaly,) = found
    assert (anomaly.workflow, anomaly.day, anomaly.direction) == ("triage", planted, "high")
    # Independently: the 28 days before the planted day.
    history = [D(9 + n % 3) for n in range(3, 31)]
    median = statistics.median(history)
    mad = statistics.median([abs(x - median) for x in history])
    assert (anomaly.median, anomaly.mad, anomaly.history_days) == (median, mad, 28)
    assert anomaly.z == pytest.approx(0.6745 * float((D(60) - median) / mad))
    assert anomaly.z > tr.ANOMALY_THRESHOLD


def test_low_days_unknown_days_and_short_histories() -> None:
    end = SUNDAY
    low = days_before(end, 1)
    for n in range(35):
        day = days_before(end, n)
        rollup(day, "triage", "0.50" if day == low else str(9 + n % 3))
    rollup(days_before(end, 3), "triage", None, model="mystery-model", calls=5)  # that day: unknown
    for n in range(5):  # five days of history only: never checked
        rollup(days_before(end, n), "young", "1.00" if n else "90.00")
    found, checked = tr.anomalies(tr.TrendFilter(end=end))
    assert checked == 1
    assert [(a.workflow, a.day, a.direction) for a in found] == [("triage", low, "low")]


def test_today_is_checked_for_rises_only() -> None:
    today = dt.datetime.now(dt.UTC).date()
    for n in range(1, 30):
        rollup(days_before(today, n), "triage", str(9 + n % 3))
    rollup(today, "triage", "0.10")  # today is not over: not a drop
    assert tr.anomalies(tr.TrendFilter(end=today))[0] == []
    DailyRollup.objects.filter(day=today).update(cost=D(80))
    (rise,) = tr.anomalies(tr.TrendFilter(end=today))[0]
    assert rise.day == today and rise.direction == "high"


def test_robust_z_falls_back_to_the_mean_absolute_deviation() -> None:
    history = [D(10)] * 20 + [D(12)] * 8  # MAD 0
    z, median, mad = tr.robust_z(D(30), history)
    mean_ad = D(16) / 28
    assert (median, mad) == (D(10), D(0))
    assert z == pytest.approx(float(D(20) / mean_ad) / 1.253314)
    assert tr.robust_z(D(10), [D(10)] * 10)[0] == 0
    assert tr.robust_z(D(11), [D(10)] * 10)[0] == float("inf")


def test_the_anomaly_is_flagged_on_the_page_with_its_rule(viewer: Client) -> None:
    planted = seed_anomaly(SUNDAY)
    html = viewer.get(reverse(TRENDS), {"end": SUNDAY.isoformat()}).content.decode()
    section = html.split('id="ag2-anomalies"', 1)[1].split("</section>", 1)[0]
    assert "robust z-score is 0.6745 × (cost − m) / MAD" in section and "|z| &gt; 3.5" in section  # noqa: RUF001
    (row,) = section.split('<tr class="ag2-anomaly">')[1:]
    assert planted.isoformat() in row and "triage" in row and "anomaly: high" in row
    assert "$60.00" in row and "$10.00" in row and "+33.7" in row


# ---------------------------------------------------------------------------------------------
# Recommendations


def at(day: dt.date, hour: int = 10) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


def week_filter() -> ReportFilter:
    return ReportFilter(start=days_before(SUNDAY, 6), end=SUNDAY)


def test_a_cheaper_model_of_the_same_provider_with_its_estimate() -> None:
    s = session("c1", "acme", "triage", at(SUNDAY))
    usage = NormalizedUsage(prompt_tokens=3000, completion_tokens=400, cached_tokens=1000)
    paid = genai_calc("gpt-4o", "openai", usage).total_price
    for seq in range(4):
        call(s, seq, model="gpt-4o", start=at(SUNDAY, 11), prompt=3000, completion=400, cached=1000,
             cost=paid, latency_ms=900)  # fmt: skip
    call(s, 4, model="gpt-4o", start=at(SUNDAY, 11), cost=D(0), latency_ms=50, status="error", error="boom")
    # gpt-4o-mini has no cheaper sibling in the table: nothing for this one.
    s2 = session("c2", "acme", "search", at(SUNDAY))
    call(s2, 0, model="gpt-4o-mini", start=at(SUNDAY, 11), prompt=100, completion=10, cost=D("0.0001"),
         latency_ms=100)  # fmt: skip
    rebuild_rollups()
    (rec,) = recs.cheaper_models(week_filter())
    current = genai_calc("gpt-4o", "openai", usage).total_price * 4
    cheaper = genai_calc("gpt-4o-mini", "openai", usage).total_price * 4
    assert rec.data["alternative"] == "gpt-4o-mini" and rec.data["calls"] == 4
    assert rec.data["current_estimate"] == current and rec.data["alternative_estimate"] == cheaper
    assert rec.estimate == current - cheaper > 0
    assert rec.data["recorded_cost"] == paid * 4
    assert "gpt-4o-mini" in rec.action and "an estimate" in rec.estimate_text
    # A project's own table names other models.
    (other,) = recs.cheaper_models(week_filter(), alternatives={"gpt-4o": ["gpt-4.1-nano"]})
    assert other.data["alternative_estimate"] == genai_calc("gpt-4.1-nano", "openai", usage).total_price * 4


def test_repeated_prompts_with_a_low_cache_hit_rate() -> None:
    s = session("c1", "acme", "rag", at(SUNDAY))
    prompts = [(4000, 0), (6000, 400), (8000, 400), (500, 0), (9000, 6000)]  # (prompt, cached)
    for seq, (prompt, cached) in enumerate(prompts):
        call(s, seq, model="gpt-4o", start=at(SUNDAY, 11), prompt=prompt, completion=50, cached=cached,
             cost=D("0.01"), latency_ms=500)  # fmt: skip
    call(
        s, 9, model="gpt-4o", agent="critic", start=at(SUNDAY, 11), prompt=9000, cost=D("0.01"), latency_ms=1
    )
    # A well cached workflow is not listed.
    s2 = session("c2", "acme", "cached", at(SUNDAY))
    for seq in range(4):
        call(s2, seq, model="gpt-4o", start=at(SUNDAY, 11), prompt=8000, completion=5, cached=7000 if seq else 0,
             cost=D("0.01"), latency_ms=1)  # fmt: skip
    rebuild_rollups()
    (rec,) = recs.prompt_cache_misses(week_filter())[0]
    # Repeated: min(prev, this) from 1,024 tokens: 4000, 6000, (500: too small), 500.
    # The 500-token call is below the threshold; the last call repeats min(500, 9000) = 500.
    repeated = 4000 + 6000 + 500
    hit = 400 + 400 + 500
    assert (rec.data["repeated_tokens"], rec.data["cached_tokens"]) == (repeated, hit)
    assert rec.data["hit_rate"] == pytest.approx(hit / repeated)

    def input_cost(prompt: int, cached: int) -> Decimal:
        usage = NormalizedUsage(prompt_tokens=prompt, completion_tokens=0, cached_tokens=cached)
        return genai_calc("gpt-4o", "openai", usage).total_price

    saving = (
        input_cost(6000, 400) - input_cost(6000, 4000) + input_cost(8000, 400) - input_cost(8000, 6000)
    )  # fmt: skip  (the last call's 500 repeated tokens were all cache reads)
    assert rec.estimate == saving > 0
    assert rec.subject == "workflow rag"


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "gpt-4o"),  # one price set: its compiled plan
        ("deepseek", "deepseek-chat"),  # prices by the hour: price_call
        ("local", "qwen-local"),  # local, at price_call's default rate 0
        ("custom", "house-model"),  # unknown
    ],
)
def test_cache_saving_is_price_call_twice_per_call(provider: str, model: str) -> None:
    """The cache check's shortcuts (compiled plans, one price for a model priced the same at any
    tokens) give what pricing each call twice with ``price_call`` gives."""
    from ag2_logging.pricing import price_call
    from ag2_logging.reports.recommendations.cache import _CacheTally

    calls = [(4000, 3000, 0, 0), (6000, 4000, 400, 0), (8000, 6000, 400, 200), (9000, 9000, 6000, 0)]
    tally = _CacheTally()
    prices: dict[Any, Any] = {}
    saving, unpriced = Decimal(0), 0
    for prompt, before, cached, write in calls:
        tally.add(before, provider, model, prompt, cached, write, prices)
        missed = min(min(before, prompt) - min(cached, before, prompt), prompt - cached - write)
        if missed <= 0:
            continue

        def cost(c: int, prompt: int = prompt, write: int = write) -> Any:
            usage = NormalizedUsage(
                prompt_tokens=prompt, completion_tokens=0, cached_tokens=c, cache_write_tokens=write
            )
            return price_call(provider, model, usage).cost

        now, if_cached = cost(cached), cost(cached + missed)
        if now is None or if_cached is None:
            unpriced += 1
        else:
            saving += now - if_cached
    assert (tally.saving, tally.unpriced, tally.calls) == (saving, unpriced, len(calls))
    assert unpriced == (len(calls) if model == "house-model" else 0)
    assert (saving > 0) == (provider in ("openai", "deepseek"))


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "gpt-4o"),  # one price set: its compiled plan
        ("anthropic", "claude-sonnet-4"),  # cache writes priced
        ("google", "gemini-2.5-pro"),  # tiers by prompt size (over 200,000 tokens)
        ("deepseek", "deepseek-chat"),  # prices by the hour: no fixed plan
        ("local", "qwen-local"),  # local: flat
        ("custom", "house-model"),  # unknown: flat
    ],
)
def test_cache_input_prices_are_input_price(provider: str, model: str) -> None:
    """``_InputPrices`` (the plan run on the counts, each shape once) gives ``_input_price``'s
    figure, digit for digit (``str``), on shapes of every size, and refuses what it refuses; a
    model priced the same at any tokens is priced once, at (0, 0, 0), as the check always did."""
    from ag2_logging.reports.recommendations.cache import _flat, _input_price, _InputPrices

    prices = _InputPrices(provider, model)
    flat = _flat(provider, model)
    assert flat is (provider in ("local", "custom"))
    shapes = [
        (prompt, cached, write)
        for prompt in (0, 1, 1_024, 4_000, 128_000, 200_000, 200_001, 1_000_000)
        for cached in sorted({0, 1, prompt // 3, prompt // 2, max(prompt - 1, 0), prompt})
        for write in sorted({0, 7, prompt // 5})
    ]
    for prompt, cached, write in [*shapes, *shapes]:  # the second time from what it remembers
        if flat:
            assert str(prices(prompt, cached, write)) == str(_input_price(provider, model, 0, 0, 0))
            continue
        if cached + write > prompt:
            with pytest.raises(ValueError, match="exceed prompt_tokens"):
                _input_price(provider, model, prompt, cached, write)
            with pytest.raises(ValueError, match="exceed prompt_tokens"):
                prices(prompt, cached, write)
            continue
        expected = _input_price(provider, model, prompt, cached, write)
        got = prices(prompt, cached, write)
        assert str(got) == str(expected), (prompt, cached, write)
    if not flat:
        with pytest.raises(ValueError, match="cannot be negative"):
            prices(-1, 0, 0)


@pytest.mark.django_db(transaction=True)
def test_a_real_chat_in_the_trends_and_its_cache_recommendation(llm: Any, settings: Any) -> None:
    settings.AG2_LOGGING = {**settings.AG2_LOGGING, "CAPTURE_BODIES": False}
    assistant = autogen.AssistantAgent("assistant", llm_config=llm_config(llm))
    user = autogen.UserProxyAgent(
        "user", human_input_mode="NEVER", code_execution_config=False, max_consecutive_auto_reply=5,
        default_auto_reply="[[usage:prompt=6000,completion=20,cached=600]] go on",
    )  # fmt: skip
    with ag2_logging_session("chat-rag", "rag", "acme"):
        user.initiate_chat(
            assistant, message="[[usage:prompt=6000,completion=20,cached=600]] hi", max_turns=3
        )
    flush()
    session_row = Session.objects.get(chat_id="chat-rag")
    assert session_row.summarized_at is not None
    served = [r.usage for r in llm.successful()]
    assert len(served) == 3 and LLMCall.objects.filter(session=session_row).count() == 3
    today = dt.datetime.now(dt.UTC).date()
    (rec,) = recs.prompt_cache_misses(ReportFilter(start=today, end=today))[0]
    # Every call after the first repeats 6,000 tokens, of which 600 were cache reads.
    assert (rec.data["repeated_tokens"], rec.data["cached_tokens"]) == (12000, 1200)
    full = NormalizedUsage(prompt_tokens=6000, completion_tokens=0, cached_tokens=600)
    hit = NormalizedUsage(prompt_tokens=6000, completion_tokens=0, cached_tokens=6000)
    per_call = (
        genai_calc("gpt-4o-mini", "openai", full).total_price
        - genai_calc("gpt-4o-mini", "openai", hit).total_price
    )
    assert rec.estimate == 2 * per_call
    # The same chat in this week's trends, through ingest and summarize.
    report = tr.trends(tr.TrendFilter(end=today))
    (rag,) = report.rows
    paid = genai_calc("gpt-4o-mini", "openai", NormalizedUsage(6000, 20, cached_tokens=600)).total_price
    assert rag.label == "rag" and rag.current.calls == 3 and rag.current.cost == 3 * paid
    assert rag.change.is_new and rag.change.cost_delta == 3 * paid


def test_sessions_with_many_errors_or_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    bad = session("bad", "acme", "triage", at(SUNDAY))
    for seq in range(6):
        failed = seq < 2
        call(bad, seq, model="gpt-4o", start=at(SUNDAY, 11), cost=D("0.10") if not failed else D(0),
             latency_ms=1500 if failed else 200, status="error" if failed else "success",
             error="429" if failed else "", retries=1 if seq == 4 else 0)  # fmt: skip
    # A failed call after the period: in the session's totals, not in the period's figures.
    call(bad, 6, model="gpt-4o", start=at(SUNDAY + dt.timedelta(days=1), 11), cost=D(0), latency_ms=900,
         status="error", error="429")  # fmt: skip
    fine = session("fine", "acme", "triage", at(SUNDAY))  # 3 failed of 20: under 20%
    for seq in range(20):
        call(fine, seq, model="gpt-4o", start=at(SUNDAY, 11), cost=D("0.01"), latency_ms=10,
             status="error" if seq < 3 else "success", error="x" if seq < 3 else "")  # fmt: skip
    for s in (bad, fine):
        refresh_totals(s)  # as ingest leaves them: the check starts from the sessions' totals
    rebuild_rollups()
    (rec,) = recs.failing_sessions(week_filter())
    assert rec.data["chat_id"] == "bad"
    assert (rec.data["errors"], rec.data["retries"], rec.data["attempts"], rec.data["calls"]) == (2, 1, 3, 6)
    assert rec.data["failed_seconds"] == pytest.approx(3.0)
    assert rec.data["cost"] == D("0.40")
    assert "3 failed attempts, 3 s waiting on failed calls" in rec.estimate_text
    # Past MAX_IDS candidates their calls are grouped through a subquery: the same answer.
    monkeypatch.setattr(failing, "MAX_IDS", 0)
    assert recs.failing_sessions(week_filter()) == [rec]


def test_an_expired_price_override_with_its_calls_since() -> None:
    expired_on = days_before(SUNDAY, 3)
    ModelPrice.objects.create(
        provider="acme-llm", model="house-model*", input_per_mtok=D("2"), output_per_mtok=D("6"),
        cached_input_per_mtok=D("0.5"), effective_to=expired_on,
    )  # fmt: skip
    still = ModelPrice.objects.create(
        provider="", model="other-model", input_per_mtok=D("1"), output_per_mtok=D("1"),
        effective_to=SUNDAY + dt.timedelta(days=30),
    )  # fmt: skip
    s = session("c1", "acme", "triage", at(days_before(SUNDAY, 5)))
    # Before the end: priced by the override, not counted.
    call(s, 0, model="house-model-1", provider="acme-llm", start=at(days_before(SUNDAY, 5)), prompt=1000,
         completion=100, cost=D("0.0026"), latency_ms=10)  # fmt: skip
    # Since: no price any more (unknown), 2 calls.
    for seq, day in ((1, expired_on), (2, SUNDAY)):
        call(s, seq, model="house-model-2", provider="acme-llm", start=at(day), prompt=3000, cached=1000,
             completion=500, cost=None, latency_ms=10)  # fmt: skip
    rebuild_rollups()
    found = recs.recommendations(week_filter(), today=SUNDAY).items["expired_override"]
    (rec,) = found
    assert rec.data["pattern"] == "house-model*" and rec.data["id"] != still.pk
    assert (rec.data["calls"], rec.data["unpriced_calls"]) == (2, 2)
    assert rec.data["recorded_cost"] is None and rec.estimate is None
    # 2 x (2,000 uncached x $2 + 1,000 cached x $0.5 + 500 out x $6) / 1M
    assert rec.data["at_override"] == D(2) * (2000 * D(2) + 1000 * D("0.5") + 500 * D(6)) / 1_000_000
    assert "unknown recorded" in rec.estimate_text


def test_recommendations_page_and_csv(viewer: Client) -> None:
    s = session("c1", "acme", "triage", at(SUNDAY))
    usage = NormalizedUsage(prompt_tokens=2000, completion_tokens=300)
    for seq in range(3):
        call(s, seq, model="gpt-4o", start=at(SUNDAY, 11), prompt=2000, completion=300,
             cost=genai_calc("gpt-4o", "openai", usage).total_price, latency_ms=100)  # fmt: skip
    rebuild_rollups()
    params = {"start": days_before(SUNDAY, 6).isoformat(), "end": SUNDAY.isoformat()}
    html = viewer.get(reverse(RECS), params).content.decode()
    section = html.split('id="ag2-rec-cheaper_model"', 1)[1].split("</section>", 1)[0]
    assert "workflow triage on gpt-4o" in section and "gpt-4o-mini" in section and "estimate" in section
    assert ">Recommendations<" in html
    rows = read_csv(viewer.get(reverse(RECS), {**params, "format": "csv"}))
    (row,) = rows
    saving = (
        genai_calc("gpt-4o", "openai", usage).total_price
        - genai_calc("gpt-4o-mini", "openai", usage).total_price
    ) * 3
    assert row["kind"] == "cheaper_model" and D(row["estimate_usd"]) == saving


def test_the_pages_make_a_bounded_number_of_queries(viewer: Client) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries(workflows: int) -> tuple[int, int]:
        for w in range(workflows):
            s = session(f"c{w}-{workflows}", "acme", f"wf{w}", at(SUNDAY))
            for seq in range(3):
                call(s, seq, model="gpt-4o", start=at(SUNDAY, 11), prompt=2000, completion=10, cached=0,
                     cost=D("0.01"), latency_ms=10, status="error" if seq == 0 else "success",
                     retries=1)  # fmt: skip
        rebuild_rollups()
        counts = []
        for name, params in ((TRENDS, {"end": SUNDAY.isoformat()}), (RECS, {"end": SUNDAY.isoformat()})):
            with CaptureQueriesContext(connection) as captured:
                assert viewer.get(reverse(name), params).status_code == 200
            counts.append(len(captured))
        return counts[0], counts[1]

    few = queries(2)
    assert queries(12) == few
