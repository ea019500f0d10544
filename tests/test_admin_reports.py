"""The admin's report pages, lists and CSV exports, through the Django test client."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from ag2_logging.formats import export
from ag2_logging.models import LLMCall, ModelPrice, Session
from tests.report_data import Data, make_report_data, today, week_params

pytestmark = pytest.mark.django_db

REPORT_PAGES = [
    ("admin:ag2_logging_report_overview", []),
    ("admin:ag2_logging_report_breakdown", ["enterprise"]),
    ("admin:ag2_logging_report_breakdown", ["workflow"]),
    ("admin:ag2_logging_report_breakdown", ["model"]),
    ("admin:ag2_logging_report_breakdown", ["agent"]),
    ("admin:ag2_logging_report_breakdown", ["day"]),
    ("admin:ag2_logging_report_breakdown", ["user"]),
    ("admin:ag2_logging_report_breakdown", ["tag"]),
    ("admin:ag2_logging_report_models", []),
]
LISTS = ["session", "llmcall", "agentevent", "toolcall", "dailyrollup"]


@pytest.fixture
def data() -> Data:
    return make_report_data()


def staff(username: str, *codenames: str) -> User:
    user = User.objects.create(username=username, is_staff=True)  # force_login: no password to hash
    if codenames:
        user.user_permissions.set(
            Permission.objects.filter(content_type__app_label="ag2_logging", codename__in=codenames)
        )
    return user


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def viewer() -> Client:
    return client_for(
        staff(
            "viewer",
            "view_dailyrollup",
            "view_session",
            "view_llmcall",
            "view_agentevent",
            "view_toolcall",
        )
    )


def read_csv(response: Any) -> list[dict[str, str]]:
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


# -- permissions ----------------------------------------------------------------------------


def all_urls(data: Data) -> list[tuple[str, str]]:
    """(url, codename it needs) for every page and export."""
    urls = [(reverse(name, args=args), "view_dailyrollup") for name, args in REPORT_PAGES]
    urls += [(reverse(name, args=args) + "?format=csv", "view_dailyrollup") for name, args in REPORT_PAGES]
    timeline = reverse("admin:ag2_logging_session_timeline", args=[data.s1.pk])
    urls += [(timeline, "view_session"), (timeline + "?format=csv", "view_session")]
    for model in LISTS:
        urls.append((reverse(f"admin:ag2_logging_{model}_changelist"), f"view_{model}"))
        urls.append((reverse(f"admin:ag2_logging_{model}_export"), f"view_{model}"))
    return urls


def test_anonymous_users_are_sent_to_the_login_page(data: Data) -> None:
    client = Client()
    for url, _codename in all_urls(data):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("admin:login")), url


def test_staff_without_the_view_permission_get_403(data: Data) -> None:
    # a staff member who may see everything but the one model each page needs
    for url, codename in all_urls(data):
        others = {"view_dailyrollup", "view_session", "view_llmcall", "view_agentevent", "view_toolcall"} - {
            codename
        }
        client = client_for(staff(f"u{abs(hash(url))}", *others))
        assert client.get(url).status_code == 403, url


def test_staff_with_the_view_permission_get_200(data: Data) -> None:
    for url, codename in all_urls(data):
        client = client_for(staff(f"v{abs(hash(url))}", codename))
        response = client.get(url)
        assert response.status_code == 200, url


def test_log_rows_are_read_only_and_prices_are_editable(data: Data) -> None:
    admin = User.objects.create(username="root", is_staff=True, is_superuser=True)
    client = client_for(admin)
    call = LLMCall.objects.filter(session=data.s1).first()
    assert call is not None
    assert client.get(reverse("admin:ag2_logging_llmcall_add")).status_code == 403
    assert client.get(reverse("admin:ag2_logging_llmcall_delete", args=[call.pk])).status_code == 403
    page = client.get(reverse("admin:ag2_logging_llmcall_change", args=[call.pk]))
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    response = client.post(
        reverse("admin:ag2_logging_modelprice_add"),
        {
            "provider": "",
            "model": "mystery*",
            "input_per_mtok": "1",
            "output_per_mtok": "2",
            "currency_note": "",
        },
    )
    assert response.status_code == 302
    assert ModelPrice.objects.get().model == "mystery*"
    bad = client.post(
        reverse("admin:ag2_logging_modelprice_add"),
        {
            "model": "x",
            "input_per_mtok": "-1",
            "output_per_mtok": "2",
            "effective_from": "2026-02-01",
            "effective_to": "2026-01-01",
        },
    )
    assert bad.status_code == 200
    assert b"cannot be negative" in bad.content
    assert b"is exclusive" in bad.content


def test_the_app_index_links_every_report(data: Data, viewer: Client) -> None:
    page = viewer.get(reverse("admin:app_list", args=["ag2_logging"])).content.decode()
    for name, args in REPORT_PAGES:
        assert f'href="{reverse(name, args=args)}"' in page
    without = client_for(staff("noreports", "view_session")).get(
        reverse("admin:app_list", args=["ag2_logging"])
    )
    assert reverse("admin:ag2_logging_report_overview") not in without.content.decode()


# -- report pages ---------------------------------------------------------------------------


def test_breakdown_by_enterprise_shows_totals_share_and_unknown_costs(data: Data, viewer: Client) -> None:
    response = viewer.get(reverse("admin:ag2_logging_report_breakdown", args=["enterprise"]), week_params())
    assert response.status_code == 200
    report = response.context["report"]
    rows = {row.label: row for row in report.rows}
    assert set(rows) == {"acme", "globex"}
    acme, globex = rows["acme"].figures, rows["globex"].figures
    assert (acme.calls, acme.sessions, acme.errors, acme.total_tokens) == (5, 2, 1, 11700)
    assert acme.cost == Decimal("0.1233")
    assert (globex.calls, globex.unpriced, globex.cost_state, globex.priced_cost) == (
        3,
        2,
        "partial",
        Decimal("0.0005"),
    )
    assert report.total.priced_cost == Decimal("0.1238")
    assert rows["acme"].cost_share == pytest.approx(0.1233 / 0.1238)
    html = response.content.decode()
    assert "≥ $0.0005" in html  # partly unpriced: a lower bound, never a plain figure
    assert "$0.12" in html


def test_breakdown_by_model_marks_unpriced_models_unknown(data: Data, viewer: Client) -> None:
    response = viewer.get(reverse("admin:ag2_logging_report_breakdown", args=["model"]), week_params())
    rows = {row.label: row for row in response.context["report"].rows}
    assert rows["mystery (custom)"].figures.cost is None
    assert rows["mystery (custom)"].figures.cost_state == "unknown"
    assert rows["gpt-4o (openai)"].figures.cost == Decimal("0.12")
    html = response.content.decode()
    assert 'class="ag2-unknown"' in html
    assert "$0.00</td>" not in html.split("mystery")[1].split("</tr>")[0]


def test_breakdown_page_shows_its_costliest_rows_and_counts_the_rest(
    data: Data, viewer: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ag2_logging.admin import views  # where BREAKDOWN_PAGE_ROWS is read

    url = reverse("admin:ag2_logging_report_breakdown", args=["model"])
    whole = viewer.get(url, week_params())
    ranked = [row.label for row in whole.context["report"].rows]
    assert len(ranked) >= 3 and 'id="ag2-more-rows"' not in whole.content.decode()
    monkeypatch.setattr(views, "BREAKDOWN_PAGE_ROWS", 1)
    response = viewer.get(url, week_params())
    assert [row.label for row, _links in response.context["rows"]] == ranked[:1]
    html = response.content.decode()
    assert f"{len(ranked) - 1} more rows, ranked lower, are in the CSV" in html
    assert ranked[1] not in html.split("<tbody>")[1].split("</tbody>")[0]
    # The total and the CSV keep every row.
    assert response.context["report"].total.calls == whole.context["report"].total.calls
    assert len(read_csv(viewer.get(url, week_params(format="csv")))) == len(ranked) + 1
    days = viewer.get(reverse("admin:ag2_logging_report_breakdown", args=["day"]), week_params())
    assert len(days.context["rows"]) == 7  # days are never cut


def test_filters_period_enterprise_and_workflow(data: Data, viewer: Client) -> None:
    url = reverse("admin:ag2_logging_report_breakdown", args=["enterprise"])
    wide = viewer.get(
        url,
        {
            "start": (today().replace(day=1)).isoformat() if False else "2000-01-01",
            "end": today().isoformat(),
        },
    )
    assert wide.context["filter_errors"]  # more than the maximum period: cut, and said so
    last_60 = viewer.get(url, week_params(start=str(today().toordinal())))  # not a date
    assert last_60.context["filter_errors"]
    from datetime import timedelta

    with_old = viewer.get(
        url, {"start": (today() - timedelta(days=45)).isoformat(), "end": today().isoformat()}
    )
    acme = next(r for r in with_old.context["report"].rows if r.label == "acme")
    assert acme.figures.cost == Decimal("1.1233")
    only_acme = viewer.get(
        reverse("admin:ag2_logging_report_breakdown", args=["workflow"]), week_params(enterprise="acme")
    )
    assert {r.label for r in only_acme.context["report"].rows} == {"triage", "digest"}
    triage = viewer.get(
        reverse("admin:ag2_logging_report_breakdown", args=["model"]), week_params(workflow="triage")
    )
    labels = {r.label for r in triage.context["report"].rows}
    assert labels == {"gpt-4o-mini (openai)", "mystery (custom)"}
    both = viewer.get(
        reverse("admin:ag2_logging_report_breakdown", args=["agent"]),
        week_params(enterprise="acme", workflow="digest"),
    )
    assert [(r.label, r.figures.calls) for r in both.context["report"].rows] == [("analyst", 2)]
    swapped = viewer.get(
        url, {"start": today().isoformat(), "end": (today() - timedelta(days=6)).isoformat()}
    )
    assert swapped.context["flt"].start < swapped.context["flt"].end


def test_breakdown_by_day_lists_every_day_of_the_period(data: Data, viewer: Client) -> None:
    response = viewer.get(reverse("admin:ag2_logging_report_breakdown", args=["day"]), week_params())
    rows = response.context["report"].rows
    assert len(rows) == 7
    by_day = {r.label: r.figures for r in rows}
    from datetime import timedelta

    yesterday = (today() - timedelta(days=1)).isoformat()
    assert by_day[yesterday].calls == 5
    assert by_day[yesterday].sessions == 2
    assert by_day[yesterday].cost_state == "partial"
    assert by_day[today().isoformat()].calls == 0  # the running session is not rolled up yet


def test_overview_totals_and_charts(data: Data, viewer: Client) -> None:
    response = viewer.get(reverse("admin:ag2_logging_report_overview"), week_params())
    report = response.context["report"]
    assert report.total.calls == 8
    assert report.total.sessions == 3  # s1, s2, s3; the running one is counted when it ends
    assert report.running_sessions == 1
    assert report.unattributed_calls == 1
    assert report.total.priced_cost == Decimal("0.1238")
    assert report.total.unpriced == 2
    html = response.content.decode()
    assert html.count("<svg viewBox") >= 3  # cost per day, tokens per day, share by model
    assert "#0072B2" in html  # Okabe-Ito
    assert "still running" in html and "outside any session" in html
    # The token chart's bands split the headline's input and output, and their labels say so.
    tokens, total = report.series.tokens, report.total
    assert sum(tokens["input"]) + sum(tokens["cached"]) == total.prompt_tokens > sum(tokens["input"])
    assert sum(tokens["output"]) + sum(tokens["reasoning"]) == total.completion_tokens > sum(tokens["output"])
    for label in ("input, uncached", "input, cached", "output, visible", "output, reasoning"):
        assert label in html
    by_enterprise = viewer.get(reverse("admin:ag2_logging_report_overview"), week_params(stack="enterprise"))
    assert by_enterprise.context["report"].series.names == ["acme", "globex"]


def test_model_comparison_figures_and_sorting(data: Data, viewer: Client) -> None:
    url = reverse("admin:ag2_logging_report_models")
    response = viewer.get(url, week_params())
    rows = {(r.model, r.provider): r for r in response.context["report"].rows}
    mini = rows["gpt-4o-mini", "openai"]
    assert mini.figures.calls == 4
    assert mini.figures.sessions == 2
    assert mini.figures.cost == Decimal("0.0038")
    assert mini.cost_per_session == Decimal("0.0019")
    assert mini.cost_per_1k_tokens == Decimal("0.0038") * 1000 / 3850
    assert mini.error_rate == 0.25
    assert mini.retry_rate == 0.5
    assert mini.cache_hit_rate == 100 / 3300
    assert mini.mean_latency_ms == pytest.approx((800 + 1200 + 300 + 700) / 4)
    # p95 of 300, 700, 800, 1200 by linear interpolation: 800 + 0.85 * 400
    assert mini.p95_latency_ms == pytest.approx(1140)
    mystery = rows["mystery", "custom"]
    assert (
        mystery.figures.cost is None
        and mystery.cost_per_1k_tokens is None
        and mystery.cost_per_session is None
    )
    order = [r.model for r in response.context["report"].rows]
    assert order == ["gpt-4o", "gpt-4o-mini", "mystery"]  # by cost; unknown last
    by_latency = viewer.get(url, week_params(sort="p95"))
    assert [r.model for r in by_latency.context["report"].rows] == ["mystery", "gpt-4o-mini", "gpt-4o"]
    hist = response.context["report"].histogram
    assert sum(hist.totals) == 8  # finished sessions only, like the rollups
    assert 'aria-sort="descending"' in response.content.decode()


def test_session_timeline_orders_every_step(data: Data, viewer: Client) -> None:
    response = viewer.get(reverse("admin:ag2_logging_session_timeline", args=[data.s1.pk]))
    steps = [(s.kind, s.name) for s in response.context["steps"]]
    assert steps == [
        ("event", "new_agent"),
        ("llm", "gpt-4o-mini"),
        ("event", "received_message"),
        ("tool", "add"),
        ("llm", "gpt-4o-mini"),
        ("llm", "gpt-4o-mini"),
    ]
    html = response.content.decode()
    assert "Error code: 500" in html
    assert "$0.0012" in html and "$0.0021" in html
    assert reverse("admin:ag2_logging_toolcall_change", args=[response.context["steps"][3].obj.pk]) in html
    unknown = viewer.get(reverse("admin:ag2_logging_session_timeline", args=[data.s3.pk])).content.decode()
    assert unknown.count('class="ag2-unknown"') >= 2
    missing = viewer.get(
        reverse("admin:ag2_logging_session_timeline", args=["00000000-0000-0000-0000-000000000000"])
    )
    assert missing.status_code == 404


def test_lists_link_sessions_and_calls_and_filter(data: Data, viewer: Client) -> None:
    sessions = viewer.get(reverse("admin:ag2_logging_session_changelist")).content.decode()
    assert f"?session__id__exact={data.s1.pk}" in sessions
    assert reverse("admin:ag2_logging_session_timeline", args=[data.s1.pk]) in sessions
    calls_url = reverse("admin:ag2_logging_llmcall_changelist")
    of_s1 = viewer.get(calls_url, {"session__id__exact": str(data.s1.pk)})
    assert of_s1.context["cl"].result_count == 3
    assert reverse("admin:ag2_logging_session_change", args=[data.s1.pk]) in of_s1.content.decode()
    for params, expected in [
        ({"price_status__exact": "unknown"}, 2),
        ({"enterprise": "globex"}, 3),
        ({"workflow": "digest"}, 2),
        ({"model": "gpt-4o", "provider": "openai"}, 3),
        ({"agent_name": "analyst"}, 2),
        ({"status__exact": "error"}, 1),
        ({"q": "chat-s2"}, 2),
        ({"q": str(data.s3.pk)}, 3),
        ({"started_at__gte": today().isoformat()}, 1),
    ]:
        response = viewer.get(calls_url, params)
        assert response.status_code == 200, params
        assert response.context["cl"].result_count == expected, params
    found = viewer.get(reverse("admin:ag2_logging_session_changelist"), {"q": "chat-s3"})
    assert found.context["cl"].result_count == 1
    unpriced = viewer.get(reverse("admin:ag2_logging_session_changelist"), {"priced": "unknown"})
    assert [s.chat_id for s in unpriced.context["cl"].result_list] == ["chat-s3"]
    s3_page = viewer.get(reverse("admin:ag2_logging_session_change", args=[data.s3.pk])).content.decode()
    assert "≥ $0.0005" in s3_page


def _choices(response: Any, parameter: str) -> list[str]:
    (spec,) = [
        f for f in response.context["cl"].filter_specs if getattr(f, "parameter_name", "") == parameter
    ]
    return [value for value, _label in spec.lookup_choices]


def test_session_list_filters_offer_a_blocked_session_without_calls(data: Data, viewer: Client) -> None:
    """A session blocked before its first call has no rollup row: its enterprise and workflow
    were missing from the sessions list's filters, which read their choices from the rollups."""
    from tests.report_data import at, session

    blocked = session("blocked-0", "blockco", "blockwf", at(1), status=Session.Status.BLOCKED)
    session("old-0", "oldco", "oldwf", at(400), status=Session.Status.BLOCKED)  # past the window
    sessions_url = reverse("admin:ag2_logging_session_changelist")
    page = viewer.get(sessions_url)
    enterprises, workflows = _choices(page, "enterprise"), _choices(page, "workflow")
    assert "blockco" in enterprises and "blockwf" in workflows
    assert {"acme", "globex"} <= set(enterprises)  # the rolled-up ones are still there
    assert "oldco" not in enterprises
    assert enterprises == sorted(set(enterprises))
    chosen = viewer.get(sessions_url, {"enterprise": "blockco"})
    assert [s.pk for s in chosen.context["cl"].result_list] == [blocked.pk]
    # The call lists keep the rollups' choices: such a session has no calls to list.
    assert "blockco" not in _choices(
        viewer.get(reverse("admin:ag2_logging_llmcall_changelist")), "enterprise"
    )


# -- CSV ------------------------------------------------------------------------------------


def test_report_csv_has_exact_figures(data: Data, viewer: Client) -> None:
    url = reverse("admin:ag2_logging_report_breakdown", args=["enterprise"])
    rows = read_csv(viewer.get(url, week_params(format="csv")))
    by = {r["enterprise_id"]: r for r in rows}
    assert by["acme"]["calls"] == "5"
    assert by["acme"]["sessions"] == "2"
    assert by["acme"]["cost"] == "0.1233"
    assert by["acme"]["cost_complete"] == "yes"
    assert by["globex"]["cost"] == "0.0005"
    assert by["globex"]["unpriced_calls"] == "2"
    assert by["globex"]["cost_complete"] == "no"
    assert by["TOTAL"]["cost"] == "0.1238"
    assert by["TOTAL"]["total_tokens"] == str(11700 + 1550)
    models = read_csv(
        viewer.get(reverse("admin:ag2_logging_report_breakdown", args=["model"]), week_params(format="csv"))
    )
    mystery = next(r for r in models if r["model"] == "mystery")
    assert mystery["cost"] == ""  # unknown, never 0
    comparison = read_csv(viewer.get(reverse("admin:ag2_logging_report_models"), week_params(format="csv")))
    mini = next(r for r in comparison if r["model"] == "gpt-4o-mini")
    assert (mini["calls"], mini["sessions"], mini["cost"], mini["cost_per_session"]) == (
        "4",
        "2",
        "0.0038",
        "0.0019",
    )
    assert mini["p95_latency_ms"] == "1140.0"
    days = read_csv(
        viewer.get(reverse("admin:ag2_logging_report_breakdown", args=["day"]), week_params(format="csv"))
    )
    assert len(days) == 8  # seven days and the total
    overview = read_csv(viewer.get(reverse("admin:ag2_logging_report_overview"), week_params(format="csv")))
    assert overview[-1]["dimension"] == "total" and overview[-1]["cost"] == "0.1238"
    timeline = read_csv(
        viewer.get(reverse("admin:ag2_logging_session_timeline", args=[data.s1.pk]) + "?format=csv")
    )
    assert [r["kind"] for r in timeline] == ["event", "llm", "event", "tool", "llm", "llm"]
    assert timeline[1]["cost"] == "0.0012"


def test_filtered_call_list_exports_exactly_its_rows(data: Data, viewer: Client) -> None:
    response = viewer.get(
        reverse("admin:ag2_logging_llmcall_export"),
        {"enterprise": "acme", "started_at__gte": week_params()["start"]},
    )
    rows = read_csv(response)
    assert len(rows) == 6  # s1 (3), s2 (2) and the running session's call
    expected = {
        str(c.pk): c for c in LLMCall.objects.filter(session__enterprise_id="acme").exclude(session=data.old)
    }
    assert set(r["id"] for r in rows) == set(expected)
    for row in rows:
        c = expected[row["id"]]
        assert row["cost"] == export(c.cost)  # as the report CSVs write it: no padding
        assert row["total_tokens"] == str(c.total_tokens)
        assert row["chat_id"] == c.session.chat_id
    unknown = read_csv(
        viewer.get(reverse("admin:ag2_logging_llmcall_export"), {"price_status__exact": "unknown"})
    )
    assert [r["cost"] for r in unknown] == ["", ""]


def test_list_csvs_write_costs_as_the_report_csvs_do(viewer: Client) -> None:
    """A new user's call list CSV read "0.0011940000" and "0.0000000000" where the session's
    timeline CSV read "0.001194": every CSV writes a cost the same way, unknown stays empty."""
    from tests.report_data import at, call, refresh_totals, session

    s = session("trim", "trimco", "wf", at(1))
    call(s, 1, model="gpt-4o-mini", start=at(1, 10, 0, 1), cost=Decimal("0.001194"), latency_ms=5)
    call(s, 2, model="gpt-4o-mini", start=at(1, 10, 0, 2), cost=Decimal("0E-10"), latency_ms=5)
    call(s, 3, model="mystery", start=at(1, 10, 0, 3), cost=None, latency_ms=5)
    refresh_totals(s)
    listed = read_csv(viewer.get(reverse("admin:ag2_logging_llmcall_export"), {"enterprise": "trimco"}))
    by_seq = {r["seq"]: r["cost"] for r in listed}
    assert by_seq == {"1": "0.001194", "2": "0", "3": ""}
    timeline = read_csv(
        viewer.get(reverse("admin:ag2_logging_session_timeline", args=[s.pk]) + "?format=csv")
    )
    assert [r["cost"] for r in timeline if r["kind"] == "llm"] == ["0.001194", "0", ""]
    sessions = read_csv(viewer.get(reverse("admin:ag2_logging_session_export"), {"enterprise": "trimco"}))
    assert [(r["total_cost"], r["cost_complete"]) for r in sessions] == [("0.001194", "no")]


def test_csv_cells_cannot_become_formulas(viewer: Client) -> None:
    from ag2_logging.pipeline.rollups import rebuild_rollups
    from tests.report_data import at, call, session

    evil = session('=HYPERLINK("http://x")', "=cmd|' /C calc'!A0", "+SUM(1,2)", at(1))
    call(
        evil,
        1,
        model="@model",
        agent="-2+3",
        start=at(1, 10, 0, 1),
        prompt=5,
        completion=5,
        cost=Decimal("0.01"),
        latency_ms=10,
        error="\tbad",
    )
    call(
        evil,
        2,
        model="\rcarriage",
        agent="ok",
        start=at(1, 10, 0, 2),
        prompt=5,
        completion=5,
        cost=Decimal("0.01"),
        latency_ms=10,
    )
    rebuild_rollups()
    for slug, column, value in [
        ("enterprise", "enterprise_id", "'=cmd|' /C calc'!A0"),
        ("workflow", "workflow_name", "'+SUM(1,2)"),
        ("agent", "agent_name", "'-2+3"),
        ("model", "model", "'@model"),
    ]:
        rows = read_csv(
            viewer.get(reverse("admin:ag2_logging_report_breakdown", args=[slug]), week_params(format="csv"))
        )
        assert value in [r[column] for r in rows], slug
        assert not any(r[column].startswith(("=", "+", "-", "@", "\t", "\r")) for r in rows), slug
    calls = read_csv(viewer.get(reverse("admin:ag2_logging_llmcall_export")))
    cells = [v for r in calls for v in r.values()]
    assert '\'=HYPERLINK("http://x")' in cells
    assert "'\tbad" in cells
    # A name cannot hold a carriage return: it is shown escaped (and so cannot start a formula).
    assert "\\x0dcarriage" in cells
    assert not any(v.startswith(("=", "+", "@", "\t", "\r")) for v in cells)
    assert not any(v.startswith("-") for r in calls for k, v in r.items() if k not in ("latency_ms",))


# -- query counts ---------------------------------------------------------------------------


def _more_data() -> None:
    """Ten times the rows: the number of queries must not change."""
    from ag2_logging.pipeline.rollups import rebuild_rollups
    from tests.report_data import at, call, session

    for i in range(30):
        s = session(f"bulk-{i}", f"ent-{i % 7}", f"wf-{i % 5}", at(i % 6))
        for j in range(5):
            call(
                s,
                j,
                model=f"model-{j}",
                agent=f"agent-{i % 4}",
                start=at(i % 6, 11, j),
                prompt=10,
                completion=5,
                cost=Decimal("0.001"),
                latency_ms=100 * j,
            )
    rebuild_rollups()


@pytest.mark.parametrize(("name", "args"), [*REPORT_PAGES])
def test_report_pages_make_a_bounded_number_of_queries(
    data: Data, viewer: Client, django_assert_max_num_queries: Any, name: str, args: list[str]
) -> None:
    url = reverse(name, args=args)
    viewer.get(url, week_params())  # warm the session and permission caches of nothing: same count
    # The overview counts the sessions of each of its four top tables (one query each); every
    # page lists the user filter's choices (one query on the user rollups, one for their names).
    with django_assert_max_num_queries(20) as small:
        assert viewer.get(url, week_params()).status_code == 200
    _more_data()
    with django_assert_max_num_queries(20) as large:
        assert viewer.get(url, week_params()).status_code == 200
    assert len(large.captured_queries) == len(small.captured_queries)


def test_timeline_and_lists_make_a_bounded_number_of_queries(
    data: Data, viewer: Client, django_assert_max_num_queries: Any
) -> None:
    timeline = reverse("admin:ag2_logging_session_timeline", args=[data.s1.pk])
    # + the calls' prompts and responses (one query) and the tree of nested sessions (one per level)
    with django_assert_max_num_queries(12):
        assert viewer.get(timeline).status_code == 200
    _more_data()
    for model in LISTS:
        with django_assert_max_num_queries(12):
            assert viewer.get(reverse(f"admin:ag2_logging_{model}_changelist")).status_code == 200
    with django_assert_max_num_queries(12):
        body = b"".join(viewer.get(reverse("admin:ag2_logging_llmcall_export")).streaming_content)
    assert body.count(b"\n") == LLMCall.objects.count() + 1
    assert Session.objects.count() > 30


def test_model_comparison_reads_the_model_rollups_on_big_periods(
    data: Data, viewer: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ag2_logging.reports import queries as reports  # where EXACT_LIMIT is read

    url = reverse("admin:ag2_logging_report_models")
    exact = viewer.get(url, week_params()).context["report"]
    assert not exact.from_histogram
    monkeypatch.setattr(reports, "EXACT_LIMIT", 1)
    response = viewer.get(url, week_params())
    report = response.context["report"]
    assert report.from_histogram
    page = response.content.decode()
    assert "Compute p95 from every call" in page
    assert f"±{report.p95_resolution_pct}%" in page and report.p95_resolution_pct == 6
    assert [r.label for r in report.rows] == [r.label for r in exact.rows]
    assert [r.figures.sessions for r in report.rows] == [r.figures.sessions for r in exact.rows]
    assert all(r.figures.sessions for r in report.rows)
    assert [r.p95_latency_ms is None for r in report.rows] == [r.p95_latency_ms is None for r in exact.rows]
    assert report.histogram.counts == exact.histogram.counts
    counted = viewer.get(url, week_params(exact="1")).context["report"]
    assert not counted.from_histogram
    assert [r.p95_latency_ms for r in counted.rows] == [r.p95_latency_ms for r in exact.rows]
