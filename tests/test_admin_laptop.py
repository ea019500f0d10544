"""The admin a team lead reads on a 1366 x 768 laptop: the deciding columns of each list inside the
window (a real Chromium, light and dark theme), times to the second in the admin's time zone,
one number format on screen and one in exports, the search boxes, sessions per model and agent.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import statistics
import zoneinfo
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from ag2_logging.admin.base import moment
from ag2_logging.formats import export, show
from ag2_logging.models import Budget, LLMCall, ModelPrice, Session
from ag2_logging.pipeline.rollups import rebuild_rollups
from ag2_logging.reports.figures import Step
from ag2_logging.reports.folding import Row, call_text, fold_steps, session_tree
from tests.report_data import at, call, make_report_data, make_rich_data, refresh_totals, session
from tests.test_browser import SCREENSHOTS, browser, log_in  # noqa: F401  (the browser fixture)

# ---------------------------------------------------------------------------------------------
# One format on screen, one in exports


@pytest.mark.parametrize(
    ("value", "money", "text"),
    [
        (9000, False, "9,000"),  # the issue: token counts printed as 9000 on pages and lists
        (1234567, False, "1,234,567"),
        (0, False, "0"),
        (12.5, False, "12.5"),
        (2.345678, False, "2.35"),
        (1234.5, False, "1,235"),
        (0.000123, False, "0.000123"),
        (None, False, "—"),
        (Decimal("0.00950"), True, "$0.0095"),  # the issue: $0.0095 in a chart, $0.00950 beside it
        (0.0095, True, "$0.0095"),
        (Decimal("0.0000660"), True, "$0.000066"),  # the issue: the sessions list
        (Decimal("1.0000000000"), True, "$1.00"),  # the issue: the price override list
        (Decimal("1234.5"), True, "$1,234.50"),
        (Decimal("0.6123"), True, "$0.612"),
        (Decimal("0.5"), True, "$0.50"),
        (Decimal(0), True, "$0.00"),
        (Decimal("-0.5"), True, "-$0.50"),
        (float("nan"), True, "—"),
    ],
)
def test_show(value: Any, money: bool, text: str) -> None:
    assert show(value, money=money) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (49.050000000000004, "49.05"),  # the issue: latency_ms in the LLM-call CSV
        (0.1 + 0.2, "0.3"),
        (Decimal("1.0000000000"), "1"),
        (Decimal("6.6E-5"), "0.000066"),
        (Decimal("1E+3"), "1000"),
        (12, "12"),
        (-3, "-3"),
        (0.0, "0"),
        (None, ""),
        (float("inf"), ""),
    ],
)
def test_export(value: Any, text: str) -> None:
    assert export(value) == text


@given(st.decimals(allow_nan=False, allow_infinity=False, places=10, min_value=-(10**9), max_value=10**9))
def test_export_writes_decimals_exactly(value: Decimal) -> None:
    text = export(value)
    assert "E" not in text and "e" not in text and "," not in text
    assert Decimal(text) == value


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12))
def test_export_floats_are_short_and_close(value: float) -> None:
    text = export(value)
    assert "e" not in text.lower()
    assert float(text) == pytest.approx(value, rel=1e-14, abs=1e-300)
    assert len(text.lstrip("-").replace(".", "").lstrip("0")) <= 15 or abs(value) >= 1e15


@given(
    st.decimals(
        allow_nan=False, allow_infinity=False, places=8, min_value=Decimal("0.00000001"), max_value=10**7
    )
)
def test_show_money_keeps_three_significant_digits(value: Decimal) -> None:
    text = show(value, money=True)
    assert text.startswith("$")
    shown = Decimal(text[1:].replace(",", ""))
    if value >= 1:
        assert abs(shown - value) <= Decimal("0.005")
    else:
        assert abs(shown - value) <= value * Decimal("0.005") + Decimal("1e-12")


# ---------------------------------------------------------------------------------------------
# Times


UTC_MOMENT = dt.datetime(2026, 3, 14, 15, 32, 7, 123456, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("zone", "millis", "shown"),
    [
        ("UTC", False, "15:32:07"),
        ("UTC", True, "15:32:07.123"),
        ("Europe/Paris", False, "16:32:07"),
        ("America/New_York", True, "11:32:07.123"),
        ("Asia/Kolkata", False, "21:02:07"),
    ],
)
def test_times_to_the_second_in_the_admins_zone_with_utc_on_hover(
    zone: str, millis: bool, shown: str
) -> None:
    with timezone.override(zoneinfo.ZoneInfo(zone)):
        html = str(moment(UTC_MOMENT, millis=millis))
    assert f", {shown}</time>" in html
    assert 'title="2026-03-14 15:32:07.123 UTC"' in html
    assert 'datetime="2026-03-14T15:32:07.123456+00:00"' in html


# ---------------------------------------------------------------------------------------------
# Lists, pages and CSVs through the admin


@pytest.fixture
def admin_client_() -> Client:
    user = User.objects.create_superuser("lead", password="pw")
    client = Client()
    client.force_login(user)
    return client


def _csv(response: Any) -> list[dict[str, str]]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


@pytest.mark.django_db
def test_lists_show_seconds_and_separators(admin_client_: Client) -> None:
    s = session("chat-seconds", "acme", "triage", at(1, 10, 0, 5))
    call(
        s,
        1,
        model="gpt-4o",
        start=at(1, 10, 0, 7.5),
        prompt=9000,
        completion=1200,
        cost=None,
        latency_ms=49.050000000000004,
    )
    refresh_totals(s)
    calls = admin_client_.get(reverse("admin:ag2_logging_llmcall_changelist")).content.decode()
    assert "10:00:07</" in calls.replace("<br>", "</")  # the seconds, not "10 a.m."
    assert "9,000 → 1,200" in calls
    sessions = admin_client_.get(reverse("admin:ag2_logging_session_changelist")).content.decode()
    assert "10:00:05" in sessions and "10,200" in sessions
    page = admin_client_.get(reverse("admin:ag2_logging_session_change", args=[s.pk])).content.decode()
    assert "9,000" in page and "10,200" in page
    one = LLMCall.objects.get(session=s)
    detail = admin_client_.get(reverse("admin:ag2_logging_llmcall_change", args=[one.pk])).content.decode()
    assert "9,000" in detail and "10:00:07" in detail


@pytest.mark.django_db
def test_call_csv_latency_has_no_float_artefacts(admin_client_: Client) -> None:
    s = session("chat-latency", "acme", "triage", at(1))
    call(
        s,
        1,
        model="gpt-4o",
        start=at(1),
        prompt=10,
        completion=5,
        cost=Decimal("0.0000660"),
        latency_ms=49.050000000000004,
    )
    rows = _csv(admin_client_.get(reverse("admin:ag2_logging_llmcall_export")))
    assert [r["latency_ms"] for r in rows] == ["49.05"]
    assert Decimal(rows[0]["cost"]) == Decimal("0.000066")


@pytest.mark.django_db
def test_price_override_list_shows_dollars(admin_client_: Client) -> None:
    ModelPrice.objects.create(
        model="house-model",
        provider="",
        input_per_mtok=Decimal("1.0000000000"),
        output_per_mtok=Decimal("0.0095"),
    )
    html = admin_client_.get(reverse("admin:ag2_logging_modelprice_changelist")).content.decode()
    assert "$1.00" in html and "$0.0095" in html
    assert "1.0000000000" not in html


SEARCHES = [
    ("session", "globex", {"chat-s2"}),  # enterprise
    ("session", "digest", {"chat-s3"}),  # workflow
    ("session", "chat-s1", {"chat-s1"}),  # chat id
]


@pytest.mark.django_db
@pytest.mark.parametrize(("model", "q", "chats"), SEARCHES)
def test_search_sessions(admin_client_: Client, model: str, q: str, chats: set[str]) -> None:
    a = session("chat-s1", "acme", "triage", at(1))
    b = session("chat-s2", "globex", "triage", at(1))
    c = session("chat-s3", "initech", "weekly_digest", at(1))
    assert {a.chat_id, b.chat_id, c.chat_id}
    response = admin_client_.get(reverse(f"admin:ag2_logging_{model}_changelist"), {"q": q})
    found = {s.chat_id for s in response.context["cl"].result_list}
    assert found == chats


@pytest.mark.django_db
@pytest.mark.parametrize(("q", "expected"), [("claude", {"claude-sonnet-4"}), ("reviewer", {"gpt-4o"})])
def test_search_calls_by_model_and_agent(admin_client_: Client, q: str, expected: set[str]) -> None:
    s = session("chat-x", "acme", "triage", at(1))
    call(
        s,
        1,
        model="claude-sonnet-4",
        provider="anthropic",
        agent="writer",
        start=at(1),
        cost=None,
        latency_ms=1,
    )
    call(s, 2, model="gpt-4o", agent="reviewer", start=at(1), cost=None, latency_ms=1)
    response = admin_client_.get(reverse("admin:ag2_logging_llmcall_changelist"), {"q": q})
    assert {c.model for c in response.context["cl"].result_list} == expected


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("page", "key"),
    [("model", ("model", "provider")), ("agent", ("agent_name",))],
)
def test_breakdown_csv_counts_sessions_per_model_and_agent(
    admin_client_: Client, page: str, key: tuple[str, ...]
) -> None:
    # Hand counts: gpt-4o in s1 and s2 (2 sessions), claude in s2 only (1); agents: a in s1, s2;
    # b in s2. s2 used both models: the total is 2 sessions, not 3.
    s1 = session("chat-1", "acme", "triage", at(1))
    s2 = session("chat-2", "acme", "triage", at(1, 11))
    call(s1, 1, model="gpt-4o", agent="a", start=at(1), prompt=10, cost=Decimal("0.01"), latency_ms=5)
    call(s1, 2, model="gpt-4o", agent="a", start=at(1), prompt=10, cost=Decimal("0.01"), latency_ms=5)
    call(s2, 1, model="gpt-4o", agent="a", start=at(1, 11), prompt=10, cost=Decimal("0.01"), latency_ms=5)
    call(
        s2,
        2,
        model="claude-sonnet-4",
        provider="anthropic",
        agent="b",
        start=at(1, 11),
        prompt=10,
        cost=Decimal("0.01"),
        latency_ms=5,
    )
    for s in (s1, s2):
        refresh_totals(s)
    rebuild_rollups()
    expected = (
        {("gpt-4o", "openai"): "2", ("claude-sonnet-4", "anthropic"): "1", ("TOTAL", ""): "2"}
        if page == "model"
        else {("a",): "2", ("b",): "1", ("TOTAL",): "2"}
    )
    params = {"start": at(3).date().isoformat(), "end": at(0).date().isoformat(), "format": "csv"}
    rows = _csv(admin_client_.get(reverse("admin:ag2_logging_report_breakdown", args=[page]), params))
    assert {tuple(r[k] for k in key): r["sessions"] for r in rows} == expected
    out = io.StringIO()
    call_command(
        "ag2_logging_report",
        page,
        "--start",
        params["start"],
        "--end",
        params["end"],
        "--format",
        "csv",
        stdout=out,
    )
    by_command = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert {tuple(r[k] for k in key): r["sessions"] for r in by_command} == expected
    overview = _csv(admin_client_.get(reverse("admin:ag2_logging_report_overview"), params))
    in_overview = {r["value"]: r["sessions"] for r in overview if r["dimension"] == page}
    assert all(v != "" for v in in_overview.values()), in_overview


# ---------------------------------------------------------------------------------------------
# A real browser at 1366 x 768, nav sidebar open


#: Each list and the columns a decision needs (their headings), all of which must be inside the
#: window and inside the list's box (no sideways scroll).
LAPTOP_LISTS = [
    (
        "llm-calls",
        "/admin/ag2_logging/llmcall/",
        ["started", "agent", "model", "tokens", "cost", "latency", "status"],
    ),
    (
        "sessions",
        "/admin/ag2_logging/session/",
        ["started", "workflow", "status", "cost", "calls", "tokens", "duration"],
    ),
    (
        "models",
        "/admin/ag2_logging/dailyrollup/reports/models/",
        ["model", "calls", "cost", "p95 latency", "error rate"],
    ),
    (
        "by-workflow",
        "/admin/ag2_logging/dailyrollup/reports/by/workflow/",
        ["workflow", "sessions", "calls", "cost", "p50 latency", "p95 latency"],
    ),
    (
        "by-agent",
        "/admin/ag2_logging/dailyrollup/reports/by/agent/",
        ["agent", "sessions", "calls", "cost", "p50 latency", "p95 latency"],
    ),
    ("events", "/admin/ag2_logging/agentevent/", ["created", "session", "agent name", "name", "duration"]),
    ("tool-calls", "/admin/ag2_logging/toolcall/", ["ended", "session", "agent name", "name", "duration"]),
    (
        "budgets",
        "/admin/ag2_logging/budget/",
        ["budget", "applies to", "period", "limit", "spent", "forecast"],
    ),
    ("price-overrides", "/admin/ag2_logging/modelprice/", ["model", "input / 1m", "output / 1m", "in force"]),
]

MEASURE = """() => {
  const table = document.querySelector('#result_list, #ag2-models, #ag2-breakdown');
  const box = table.parentElement;
  const b = box.getBoundingClientRect();
  const sidebar = document.querySelector('#nav-sidebar');
  return {
    width: window.innerWidth,
    box: {left: b.left, right: b.right, scroll: box.scrollWidth, client: box.clientWidth},
    sidebar: sidebar ? sidebar.getBoundingClientRect().width : null,
    headers: [...table.querySelectorAll('thead th')].map(th => {
      const r = th.getBoundingClientRect();
      return {text: th.innerText.replace(/[▲▼]/g, '').trim().replace(/^\\d+\\s+/, '').toLowerCase(), left: r.left, right: r.right};
    }),
  };
}"""


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_deciding_columns_inside_a_1366_window(browser: Any, live_server: Any, scheme: str) -> None:  # noqa: F811
    make_rich_data()
    make_report_data()
    Budget.objects.create(
        name="acme per day", scope="enterprise", enterprise_id="acme", period="day", limit=Decimal(5)
    )
    ModelPrice.objects.create(
        model="house-model", input_per_mtok=Decimal(1), output_per_mtok=Decimal("0.0095")
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1366, "height": 768}, color_scheme=scheme)
    try:
        page = context.new_page()
        log_in(page, live_server.url)
        for name, url, columns in LAPTOP_LISTS:
            page.goto(live_server.url + url)
            m = page.evaluate(MEASURE)
            page.screenshot(path=str(SCREENSHOTS / f"laptop-{name}-{scheme}.png"))
            if "/reports/" not in url:
                assert m["sidebar"] and m["sidebar"] > 200, f"{name}: the nav sidebar is not open"
            assert m["box"]["scroll"] <= m["box"]["client"] + 1, f"{name}: the list scrolls sideways: {m}"
            found = {h["text"]: h for h in m["headers"]}
            for column in columns:
                assert column in found, f"{name}: no column {column!r} in {sorted(found)}"
                h = found[column]
                assert h["left"] >= 0 and h["right"] <= m["width"], (
                    f"{name}: {column} outside the window: {h}"
                )
                assert h["right"] <= m["box"]["right"] + 1, f"{name}: {column} past the list's edge: {h}"
        # a call's page: a long prompt line wraps inside the window
        long = LLMCall.objects.order_by("started_at").first()
        assert long is not None
        long.request = {"messages": [{"role": "user", "content": "x" * 3000 + " " + "word " * 800}]}
        long.save()
        page.goto(f"{live_server.url}/admin/ag2_logging/llmcall/{long.pk}/change/")
        pre = page.evaluate(
            "() => { const p = document.querySelector('pre.ag2-json'); const r = p.getBoundingClientRect();"
            " return {right: r.right, scroll: p.scrollWidth, client: p.clientWidth, width: window.innerWidth}; }"
        )
        page.screenshot(path=str(SCREENSHOTS / f"laptop-call-page-{scheme}.png"))
        assert pre["right"] <= pre["width"] and pre["scroll"] <= pre["client"] + 1, pre
        # the detail, timeline, conversation and overview pages: nothing runs past the window
        session = Session.objects.filter(llm_calls__isnull=False).order_by("started_at").first()
        short = LLMCall.objects.exclude(pk=long.pk).first()
        assert session is not None and short is not None
        base = f"{live_server.url}/admin/ag2_logging"
        for name, url, needed in [
            ("session-page", f"{base}/session/{session.pk}/change/", "#content-main"),
            ("timeline", f"{base}/session/{session.pk}/timeline/", "#content-main table"),
            ("conversation", f"{base}/session/{session.pk}/transcript/", "#content-main"),
            ("call-page-short", f"{base}/llmcall/{short.pk}/change/", "#content-main"),
            ("overview", f"{base}/dailyrollup/reports/", "#content-main"),
        ]:
            page.goto(url)
            fit = page.evaluate(
                """(sel) => { const el = document.querySelector(sel); if (!el) return null;
                  const r = el.getBoundingClientRect();
                  return {page: document.documentElement.scrollWidth, width: window.innerWidth,
                          right: r.right, height: r.height}; }""",
                needed,
            )
            page.screenshot(path=str(SCREENSHOTS / f"laptop-{name}-{scheme}.png"))
            assert fit is not None, f"{name}: no {needed}"
            assert fit["height"] > 0 and fit["right"] <= fit["width"] + 1, f"{name}: {fit}"
            assert fit["page"] <= fit["width"] + 1, f"{name}: the page scrolls sideways: {fit}"
    finally:
        context.close()


# ---------------------------------------------------------------------------------------------
# The timeline: calls and tools first, events folded, a call opened in place, nested sessions


def _steps(kinds: str) -> list[Step]:
    """Steps from letters: L an LLM call, T a tool call, E an agent event."""
    kind = {"L": "llm", "T": "tool", "E": "event"}
    return [Step(kind=kind[k], at=None, seq=i, agent="a", name=k, obj=None) for i, k in enumerate(kinds)]  # type: ignore[arg-type]


def _shape(rows: list[Row]) -> str:
    return " ".join(f"[{len(r.folded)}]" if r.step is None else r.step.name for r in rows)


@pytest.mark.parametrize(
    ("kinds", "everything", "shape"),
    [
        # the issue: a three-call session of 45 steps, 41 of them agent events
        ("E" * 20 + "L" + "E" * 10 + "T" + "L" + "E" * 11 + "L", False, "[20] L [10] T L [11] L"),
        ("E" * 20 + "L" + "E" * 10 + "T" + "L" + "E" * 11 + "L", True, "[20] L [10] T L [11] L"),
        ("ELETLL", False, "[1] L [1] T L L"),
        ("ELETLL", True, "E L E T L L"),
        ("LEEL", True, "L E E L"),
        ("LEEEL", True, "L [3] L"),
        ("EEE", False, "[3]"),
        ("", False, ""),
        ("LTL", False, "L T L"),
    ],
)
def test_fold_steps(kinds: str, everything: bool, shape: str) -> None:
    rows = fold_steps(_steps(kinds), everything=everything)
    assert _shape(rows) == shape
    # nothing lost, nothing reordered
    flat = [s for r in rows for s in ([r.step] if r.step else r.folded)]
    assert [s.seq for s in flat] == list(range(len(kinds)))


@given(st.text(alphabet="LTE", max_size=60), st.booleans())
def test_fold_steps_keeps_every_call_and_tool_on_its_own_row(kinds: str, everything: bool) -> None:
    rows = fold_steps(_steps(kinds), everything=everything)
    assert [r.step.name for r in rows if r.step and r.step.kind != "event"] == [k for k in kinds if k != "E"]
    assert sum(len(r.folded) + (r.step is not None) for r in rows) == len(kinds)
    assert all(r.folded or r.step for r in rows)


@pytest.mark.parametrize(
    ("request_body", "response_body", "prompt", "answer"),
    [
        (
            {
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "name": "lead", "content": "Sum 2+2"},
                ]
            },
            {"choices": [{"message": {"role": "assistant", "content": "4"}}]},
            "[system] Be brief.\n\n[lead] Sum 2+2",
            "4",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "look"}]}]},
            {
                "choices": [
                    {
                        "message": {
                            "content": None,
                            "tool_calls": [{"function": {"name": "add", "arguments": '{"a": 1}'}}],
                        }
                    }
                ]
            },
            "[user] look",
            '→ add({"a": 1})',
        ),
        (None, None, "", ""),
        ({"prompt": "x"}, {"text": "y"}, '{\n  "prompt": "x"\n}', '{\n  "text": "y"\n}'),
        (  # ag2 1.x events as stored, some cut or redacted to strings: read, never a page error
            {
                "messages": [
                    {"type": "ModelRequest", "parts": "[REDACTED:api_key]"},
                    {
                        "type": "ModelResponse",
                        "message": {"content": "hi", "metadata": {}},
                        "tool_calls": "cut",
                    },
                    {"type": "ToolResultsEvent", "results": "cut"},
                    {"type": "ToolResultEvent", "parent_id": "c1", "name": "f", "result": None},
                    {"type": "HumanInputEvent", "content": "yes"},
                    {"type": "SummaryEvent", "summary": 1, "created_at": 5.0, "__event__": "x"},
                ]
            },
            {"message": {"content": "ok", "tool_calls": [{"id": "c2", "name": "g", "arguments": "{}"}]}},
            "[user] [REDACTED:api_key]\n\n[assistant] hi\n\n[tool f] null\n\n[HumanInputEvent] yes"
            '\n\n[SummaryEvent] {"summary": 1}',
            "ok\n\n→ g({})",
        ),
    ],
)
def test_call_text(request_body: Any, response_body: Any, prompt: str, answer: str) -> None:
    assert call_text(request_body, response_body) == (prompt, answer)


@pytest.mark.django_db
def test_nested_sessions_show_as_a_tree(admin_client_: Client) -> None:
    root = session("chat-root", "acme", "plan", at(1))
    child_a = session("chat-a", "acme", "research", at(1, 10, 1), parent=root)
    child_b = session("chat-b", "acme", "write", at(1, 10, 2), parent=root)
    grandchild = session("chat-a1", "acme", "search", at(1, 10, 3), parent=child_a)
    tree = session_tree(grandchild)
    assert tree is not None

    def shape(node: Any) -> Any:
        return (node.session.chat_id, node.current, [shape(c) for c in node.children])

    assert shape(tree) == (
        "chat-root",
        False,
        [("chat-a", False, [("chat-a1", True, [])]), ("chat-b", False, [])],
    )
    assert session_tree(session("chat-alone", "acme", "plan", at(1))) is None
    html = admin_client_.get(
        reverse("admin:ag2_logging_session_timeline", args=[child_b.pk])
    ).content.decode()
    tree_html = html[html.index('id="ag2-tree"') :]
    for s in (root, child_a, grandchild):
        assert reverse("admin:ag2_logging_session_timeline", args=[s.pk]) in tree_html
    assert 'aria-current="page"><strong>write</strong>' in tree_html


@pytest.mark.django_db
def test_timeline_opens_a_call_in_place_and_the_calls_page_wraps_long_lines(admin_client_: Client) -> None:
    s = session("chat-body", "acme", "triage", at(1))
    c = call(s, 1, model="gpt-4o", start=at(1), cost=None, latency_ms=5)
    long_line = "word " * 2000
    c.request = {"messages": [{"role": "user", "content": long_line}]}
    c.response = {"choices": [{"message": {"content": "the answer"}}]}
    c.save()
    html = admin_client_.get(reverse("admin:ag2_logging_session_timeline", args=[s.pk])).content.decode()
    assert '<details class="ag2-call">' in html and "the answer" in html and "[user] word word" in html
    page = admin_client_.get(reverse("admin:ag2_logging_llmcall_change", args=[c.pk])).content.decode()
    assert "white-space: pre-wrap" in page and "overflow-wrap: anywhere" in page


@pytest.mark.django_db
def test_only_the_demo_login_page_says_a_password() -> None:
    page = Client().get("/admin/login/").content.decode()
    assert 'name="password"' in page and "password <strong>demo" not in page


# ---------------------------------------------------------------------------------------------
# Progress of the long commands: tqdm


@pytest.mark.parametrize(
    ("calls", "total"),
    [([0, 5, 10], 10), ([0, 2500, 5000], 5000), ([0, 1], 1), ([3, 3, 7], 7)],
)
def test_progress_bar_is_tqdm(calls: list[int], total: int) -> None:
    from ag2_logging.management.progress import ProgressBar

    stream = io.StringIO()
    bar = ProgressBar("repricing", stream=stream, interval=0)
    for done in calls:
        bar(done, total)
    last = stream.getvalue().replace("\r", "\n").strip().splitlines()[-1]
    # tqdm's meter (elapsed<remaining, rate) after the line the commands always drew
    assert re.fullmatch(rf"repricing \[#{{30}}\] {total}/{total} \(100%\) 00:00<00:00, .*row/s", last), last
    assert bar._bar is None  # closed once done reached the total


# ---------------------------------------------------------------------------------------------
# Latency per workflow and per agent


def _inclusive(values: list[float], fraction: float) -> float:
    """The percentile by the standard library (``statistics.quantiles``, inclusive method)."""
    if len(values) == 1:
        return values[0]
    n = 20 if fraction == 0.95 else 2
    return statistics.quantiles(values, n=n, method="inclusive")[n - 2 if n == 20 else 0]


LATENCIES = [
    {"triage": [100.0, 200.0, 300.0, 400.0, 1000.0], "digest": [49.05, 2500.0]},
    {"triage": [5.0], "digest": [10.0, 10.0, 10.0, 90000.0, 1.5, 7.25]},
]


@pytest.mark.django_db
@pytest.mark.parametrize("latencies", LATENCIES)
@pytest.mark.parametrize("page", ["workflow", "agent"])
def test_p50_and_p95_latency_per_workflow_and_agent(
    admin_client_: Client, latencies: dict[str, list[float]], page: str
) -> None:
    for n, (workflow, values) in enumerate(latencies.items()):
        s = session(f"chat-{workflow}", "acme", workflow, at(1, 9 + n))
        for seq, latency in enumerate(values):
            # agent named after the workflow: both pages group the same calls
            call(
                s,
                seq,
                model="gpt-4o",
                agent=f"{workflow}-agent",
                start=at(1, 9 + n, seq),
                cost=None,
                latency_ms=latency,
            )
        refresh_totals(s)
    rebuild_rollups()
    params = {"start": at(3).date().isoformat(), "end": at(0).date().isoformat(), "format": "csv"}
    rows = _csv(admin_client_.get(reverse("admin:ag2_logging_report_breakdown", args=[page]), params))
    key = "workflow_name" if page == "workflow" else "agent_name"
    got = {
        r[key]: (float(r["p50_latency_ms"]), float(r["p95_latency_ms"])) for r in rows if r[key] != "TOTAL"
    }
    for workflow, values in latencies.items():
        name = workflow if page == "workflow" else f"{workflow}-agent"
        ordered = sorted(values)
        assert got[name] == pytest.approx((_inclusive(ordered, 0.5), _inclusive(ordered, 0.95)), abs=0.05)
    html = admin_client_.get(
        reverse("admin:ag2_logging_report_breakdown", args=[page]), {**params, "format": ""}
    )
    assert "p95 latency" in html.content.decode()
    out = io.StringIO()
    call_command("ag2_logging_report", page, "--start", params["start"], "--end", params["end"], stdout=out)
    assert "p95_latency_ms" in out.getvalue()
