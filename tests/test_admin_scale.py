"""What keeps the admin fast at millions of rows, checked on a few: the lists' count stops at a
cap (estimated past it, never a full ``COUNT(*)``), the reports read no call above
``EXACT_LIMIT``, and the number of queries of the lists and the overview does not grow with the
rows. The timings themselves are in ``bench/bench_reports.py``."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from ag2_logging.admin import pagination
from ag2_logging.models import LLMCall, Session
from ag2_logging.pipeline.rollups import rebuild_rollups
from tests.report_data import Data, at, call, make_report_data, session, week_params

pytestmark = pytest.mark.django_db

LISTS = [
    ("admin:ag2_logging_llmcall_changelist", {}),
    ("admin:ag2_logging_llmcall_changelist", {"enterprise": "acme"}),
    ("admin:ag2_logging_llmcall_changelist", {"model": "gpt-4o-mini", "o": "-5"}),
    ("admin:ag2_logging_llmcall_changelist", {"p": "2"}),
    ("admin:ag2_logging_session_changelist", {}),
    ("admin:ag2_logging_session_changelist", {"enterprise": "acme", "q": "chat"}),
]


@pytest.fixture
def data() -> Data:
    return make_report_data()


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(User.objects.create(username="root", is_staff=True, is_superuser=True))
    return client


def add_rows(sessions: int, calls_each: int = 5) -> None:
    """More sessions of acme (the enterprise every list above filters on), then the rollups."""
    for i in range(sessions):
        s = session(
            f"chat-bulk-{sessions}-{i}", "acme" if i % 2 else f"ent-{i % 7}", f"wf-{i % 5}", at(i % 6)
        )
        for j in range(calls_each):
            call(s, j, model="gpt-4o-mini", agent=f"agent-{i % 4}", start=at(i % 6, 11, j), prompt=10,
                 completion=5, cost=Decimal("0.001"), latency_ms=100 * j)  # fmt: skip
    rebuild_rollups()


def analyze() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for model in (LLMCall, Session):
                cursor.execute(f'ANALYZE "{model._meta.db_table}"')


def unbounded_counts(captured: CaptureQueriesContext, table: str) -> list[str]:
    """The captured ``COUNT`` queries over ``table`` without a ``LIMIT``: full counts."""
    return [
        q["sql"]
        for q in captured.captured_queries
        if re.search(r"COUNT\(\*\)", q["sql"]) and f'"{table}"' in q["sql"] and " LIMIT " not in q["sql"]
    ]


@pytest.mark.parametrize(("name", "params"), LISTS)
def test_list_queries_do_not_grow_with_rows(
    data: Data, admin_client: Client, name: str, params: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A cap of 5 rows: both counts are past it (estimated on PostgreSQL, exact elsewhere).
    monkeypatch.setattr(pagination, "EXACT_UP_TO", 5)
    add_rows(4)
    analyze()
    url = reverse(name)
    admin_client.get(url, params)
    with CaptureQueriesContext(connection) as small:
        assert admin_client.get(url, params).status_code == 200
    add_rows(40)
    analyze()
    with CaptureQueriesContext(connection) as large:
        response = admin_client.get(url, params)
        assert response.status_code == 200
    assert len(large.captured_queries) == len(small.captured_queries) < 15
    assert response.context["cl"].result_count > 5


def test_call_list_count_is_capped_then_estimated(
    data: Data, admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pagination, "EXACT_UP_TO", 20)
    url = reverse("admin:ag2_logging_llmcall_changelist")
    few = admin_client.get(url)
    assert not few.context["cl"].paginator.estimated
    assert few.context["cl"].result_count == LLMCall.objects.count() < 20
    assert "about" not in few.content.decode().split('class="paginator"')[1]
    add_rows(40)
    analyze()
    total = LLMCall.objects.count()
    assert total > 100
    with CaptureQueriesContext(connection) as captured:
        many = admin_client.get(url)
    cl = many.context["cl"]
    capped = [
        q["sql"] for q in captured.captured_queries if "COUNT(*)" in q["sql"] and " LIMIT 21" in q["sql"]
    ]
    assert len(capped) == 1, captured.captured_queries
    paginator_text = " ".join(many.content.decode().split('class="paginator"')[1].split("</p>")[0].split())
    if connection.vendor == "postgresql":
        # The planner's figure from the statistics ANALYZE just took: no COUNT over the table.
        assert cl.paginator.estimated
        assert unbounded_counts(captured, LLMCall._meta.db_table) == []
        assert abs(cl.result_count - total) <= total * 0.2
        assert f"about {cl.result_count:,} LLM calls" in paginator_text
    else:
        assert not cl.paginator.estimated and cl.result_count == total
        assert f"{total:,} LLM calls" in paginator_text
    # A filtered list past the cap: the estimate of its plan (PostgreSQL), never a full count.
    with CaptureQueriesContext(connection) as captured:
        filtered = admin_client.get(url, {"enterprise": "acme"})
    acme = LLMCall.objects.filter(session__enterprise_id="acme").count()
    assert acme > 20
    if connection.vendor == "postgresql":
        assert filtered.context["cl"].paginator.estimated
        assert unbounded_counts(captured, LLMCall._meta.db_table) == []
        assert filtered.context["cl"].result_count > 20
    else:
        assert filtered.context["cl"].result_count == acme
    # A deep page (read as its keys, then its rows) holds the rows of that slice, in order.
    monkeypatch.setattr(pagination, "DEFERRED_FROM", 10)
    with CaptureQueriesContext(connection) as captured:
        second = admin_client.get(url, {"p": "2"})
    expected = list(LLMCall.objects.order_by("-started_at", "-pk").values_list("pk", flat=True)[50:100])
    assert [row.pk for row in second.context["cl"].result_list] == expected and len(expected) > 10
    assert any(" OFFSET 50" in q["sql"] for q in captured.captured_queries)


def test_reports_above_exact_limit_read_no_calls(
    data: Data, admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ag2_logging.reports import queries

    by = "admin:ag2_logging_report_breakdown"
    exact = {
        slug: admin_client.get(reverse(by, args=[slug]), week_params()).context["report"]
        for slug in ("model", "agent")
    }
    exact_overview = admin_client.get(reverse("admin:ag2_logging_report_overview"), week_params())
    monkeypatch.setattr(queries, "EXACT_LIMIT", 1)
    calls_table = f'"{LLMCall._meta.db_table}"'
    pages: dict[str, Any] = {}
    for slug, url in (
        ("model", reverse(by, args=["model"])),
        ("agent", reverse(by, args=["agent"])),
        ("overview", reverse("admin:ag2_logging_report_overview")),
    ):
        with CaptureQueriesContext(connection) as captured:
            response = admin_client.get(url, week_params())
        assert response.status_code == 200
        reading_calls = [
            q["sql"]
            for q in captured.captured_queries
            # the overview's count of unattributed calls reads only those (a partial index)
            if calls_table in q["sql"] and '"session_id" IS NULL' not in q["sql"]
        ]
        assert reading_calls == [], slug
        pages[slug] = response.context["report"]
    # Sessions per model from the model rollups: the same figures as counted on the calls.
    model = pages["model"]
    assert [(r.label, r.figures.sessions) for r in model.rows] == [
        (r.label, r.figures.sessions) for r in exact["model"].rows
    ]
    # Per agent they are not counted (the column shows "—"); the total is the period's sessions.
    agent = pages["agent"]
    assert [r.label for r in agent.rows] == [r.label for r in exact["agent"].rows]
    assert all(r.figures.sessions is None for r in agent.rows)
    assert agent.total.sessions == exact["agent"].total.sessions == 3
    # The overview: the same totals and top rows as below the limit.
    overview = pages["overview"]
    before = exact_overview.context["report"]
    assert overview.total == before.total
    assert [(r.label, r.figures.sessions) for r in overview.top["enterprise"].rows] == [
        (r.label, r.figures.sessions) for r in before.top["enterprise"].rows
    ]
    assert [(r.label, r.figures.sessions) for r in overview.top["model"].rows] == [
        (r.label, r.figures.sessions) for r in before.top["model"].rows
    ]


def test_overview_makes_fewer_than_15_queries_whatever_the_rows(data: Data, admin_client: Client) -> None:
    url = reverse("admin:ag2_logging_report_overview")
    admin_client.get(url, week_params())
    with CaptureQueriesContext(connection) as small:
        assert admin_client.get(url, week_params()).status_code == 200
    add_rows(30)
    with CaptureQueriesContext(connection) as large:
        assert admin_client.get(url, week_params()).status_code == 200
    assert len(large.captured_queries) == len(small.captured_queries) < 15
