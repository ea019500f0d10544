"""An unknown cost stays unknown everywhere it is shown or exported (issue 15, item 4): session
totals, the sessions list and its CSV (empty cell plus ``cost_complete``), the shares and
rankings of the reports, the reprice command's summary."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.urls import reverse

from ag2_logging.models import LLMCall, ModelPrice, Session
from ag2_logging.pipeline.rollups import rebuild_rollups
from tests.report_data import at, call, refresh_totals, session, week_params
from tests.test_admin_reports import client_for, read_csv, staff

pytestmark = pytest.mark.django_db

D = Decimal
#: A 0.0% share (not the end of 100.0%).
ZERO_SHARE = re.compile(r"(?<![\d.])0\.0%")

# (status, cost, price_status) of each call of a session.
CallSpec = tuple[str, Decimal | None, str]
OK = ("success", D("0.0125"), "priced")
CHEAP = ("success", D("0.0001"), "priced")
FAILED = ("error", D(0), "priced")  # price_call's rule: a failed call costs 0 and is priced
UNPRICED = ("success", None, "unknown")
NO_USAGE = ("success", None, "no_usage")
INFERRED = ("success", D("0.002"), "inferred")


def _session_with(calls: list[CallSpec], chat_id: str = "s") -> Session:
    s = session(chat_id, "acme", "triage", at(1))
    for seq, (status, cost, price_status) in enumerate(calls):
        row = call(
            s,
            seq,
            model="m",
            start=at(1, 10, 0, seq),
            prompt=100 * (seq + 1),
            completion=10 * (seq + 1),
            cost=cost,
            latency_ms=100,
            status=status,
            error="Error code: 500" if status == "error" else "",
        )
        LLMCall.objects.filter(pk=row.pk).update(price_status=price_status)
    refresh_totals(s)
    s.refresh_from_db()
    return s


# calls -> (call_count, error_count, unpriced_calls, total_cost, cost_complete, cost_state)
TOTALS_CASES: list[tuple[str, list[CallSpec], tuple[int, int, int, Decimal | None, bool, str]]] = [
    ("no calls", [], (0, 0, 0, D(0), True, "none")),
    ("all priced", [OK, CHEAP], (2, 0, 0, D("0.0126"), True, "known")),
    # The failed call counts as a call and an error, at 0: the others' sum is the total.
    ("a failed call counts", [OK, FAILED, CHEAP], (3, 1, 0, D("0.0126"), True, "known")),
    ("only failed calls", [FAILED, FAILED], (2, 2, 0, D(0), True, "known")),
    ("all unpriced (the report)", [UNPRICED, UNPRICED, UNPRICED], (3, 0, 3, None, False, "unknown")),
    # A failed call's 0 is no price for the others: still unknown, not "at least $0".
    ("unpriced beside a failed call", [UNPRICED, FAILED], (2, 1, 1, None, False, "unknown")),
    ("some unpriced", [OK, UNPRICED], (2, 0, 1, D("0.0125"), False, "partial")),
    ("no usage counts as unpriced", [OK, NO_USAGE], (2, 0, 1, D("0.0125"), False, "partial")),
    ("only no usage", [NO_USAGE], (1, 0, 1, None, False, "unknown")),
    ("inferred is priced", [INFERRED, OK], (2, 0, 0, D("0.0145"), True, "known")),
]


@pytest.mark.parametrize(
    ("calls", "expected"), [c[1:] for c in TOTALS_CASES], ids=[c[0] for c in TOTALS_CASES]
)
def test_session_totals_after_ingest(calls: list[CallSpec], expected: tuple[Any, ...]) -> None:
    """``refresh_session_totals`` (what ingest and reprice run): every call counted, failed ones
    included; unknown is NULL, never 0."""
    s = _session_with(calls)
    call_count, errors, unpriced, total_cost, complete, state = expected
    assert (s.call_count, s.error_count, s.unpriced_calls) == (call_count, errors, unpriced)
    assert s.total_cost == total_cost
    assert s.cost_complete is complete
    assert s.cost_state == state
    assert s.known_cost == total_cost
    # Tokens: the sum by hand, failed calls included.
    assert s.prompt_tokens == sum(100 * (i + 1) for i in range(len(calls)))
    assert s.completion_tokens == sum(10 * (i + 1) for i in range(len(calls)))


def test_sessions_csv_leaves_unknown_costs_empty_and_says_whether_complete() -> None:
    known = _session_with([OK, FAILED], "known")
    unknown = _session_with([UNPRICED, UNPRICED, UNPRICED], "unknown")
    partial = _session_with([OK, UNPRICED], "partial")
    # A row written by an older release: 0 where the cost is unknown.
    Session.objects.filter(pk=unknown.pk).update(total_cost=D(0))
    viewer = client_for(staff("v", "view_session"))
    rows = {r["chat_id"]: r for r in read_csv(viewer.get(reverse("admin:ag2_logging_session_export")))}
    header = list(rows["known"])
    assert header.index("cost_complete") == header.index("total_cost") + 1
    assert (rows["known"]["total_cost"], rows["known"]["cost_complete"]) == ("0.0125", "yes")
    assert (rows["unknown"]["total_cost"], rows["unknown"]["cost_complete"]) == ("", "no")
    assert (rows["partial"]["total_cost"], rows["partial"]["cost_complete"]) == ("0.0125", "no")
    assert known.pk and partial.pk


def test_session_pages_say_unknown_never_zero() -> None:
    s = _session_with([UNPRICED, UNPRICED, FAILED], "all-unpriced")
    viewer = client_for(staff("v", "view_session", "view_llmcall"))
    for url in (
        reverse("admin:ag2_logging_session_changelist"),
        reverse("admin:ag2_logging_session_change", args=[s.pk]),
        reverse("admin:ag2_logging_session_timeline", args=[s.pk]),
    ):
        page = viewer.get(url).content.decode()
        assert "unknown" in page, url
        assert "$0.00" not in page.replace("$0.00</td>", ""), url  # only failed calls' own 0


def _two_models() -> None:
    """gpt-4o: priced, 47% of tokens; mystery: 53.0% of tokens, no price at all."""
    s = session("c", "acme", "triage", at(1))
    call(s, 1, model="gpt-4o", start=at(1, 10), prompt=400, completion=70, cost=D("0.01"), latency_ms=10)
    call(s, 2, model="mystery", start=at(1, 10, 1), prompt=500, completion=30, cost=None, latency_ms=10)
    rebuild_rollups()


def test_shares_with_unknown_costs_are_unknown_and_say_incomplete() -> None:
    _two_models()
    viewer = client_for(staff("v", "view_dailyrollup"))
    url = reverse("admin:ag2_logging_report_breakdown", args=["model"])
    rows = {r["model"]: r for r in read_csv(viewer.get(url, week_params(format="csv")))}
    assert rows["mystery"]["cost"] == "" and rows["mystery"]["cost_complete"] == "no"
    assert rows["mystery"]["cost_share"] == ""  # unknown, not 0.0000
    assert rows["mystery"]["token_share"] == f"{530 / 1000:.4f}"
    assert rows["gpt-4o"]["cost_share"] == "1.0000"
    page = viewer.get(url, week_params()).content.decode()
    assert not ZERO_SHARE.search(page)
    assert "incomplete" in page and "Share of known cost" in page
    assert "53.0% of tokens" in page  # the share chart's text for the unknown model
    models = viewer.get(reverse("admin:ag2_logging_report_models"), week_params()).content.decode()
    # (error and cache-hit rates of 0.0% are real figures: only the share chart is looked at)
    assert not re.search(r"(?<![\d.])0\.0% ·", models) and "incomplete" in models
    assert "unknown · 53.0% of tokens" in models


def test_reprice_command_says_unknown_not_zero() -> None:
    s = session("r", "acme", "triage", at(1))
    tokens = [(1000, 200), (3000, 100), (500, 50)]
    for seq, (prompt, completion) in enumerate(tokens):
        call(
            s,
            seq,
            model="house-model",
            start=at(1, 10, seq),
            prompt=prompt,
            completion=completion,
            cost=None,
            latency_ms=10,
        )
    refresh_totals(s)
    rebuild_rollups()
    ModelPrice.objects.create(model="house-model", input_per_mtok=D("4"), output_per_mtok=D("12"))
    # By hand: input at $4/M, output at $12/M.
    expected = sum(D(p) * 4 / 1_000_000 + D(c) * 12 / 1_000_000 for p, c in tokens)
    out = StringIO()
    call_command("ag2_logging_reprice", stdout=out, stderr=StringIO())
    text = out.getvalue()
    assert f"Cost unknown -> {expected}" in text, text
    assert "  house-model: unknown -> " in text
    assert "0 -> " not in text
    json_out = StringIO()
    call_command("ag2_logging_reprice", "--dry-run", "--json", stdout=json_out, stderr=StringIO())
    s.refresh_from_db()
    assert s.total_cost == expected and s.cost_complete
    assert '"cost_before_complete": true' in json_out.getvalue()


def test_reprice_summary_before_is_null_when_unknown() -> None:
    from ag2_logging.pipeline.reprice import RepriceResult, cost_text

    result = RepriceResult(cost_before=D(0), unpriced_before=3, cost_after=D("0.0216"), unpriced_after=0)
    assert result.as_dict()["cost_before"] is None
    assert result.as_dict()["cost_after"] == "0.0216"
    assert [cost_text(D(0), 3), cost_text(D("0.5"), 1), cost_text(D(0), 0)] == ["unknown", "≥ 0.5", "0"]


def test_rollup_list_shows_unknown_for_unpriced_rows() -> None:
    _two_models()
    viewer = client_for(staff("v", "view_dailyrollup"))
    page = viewer.get(reverse("admin:ag2_logging_dailyrollup_changelist")).content.decode()
    assert "unknown" in page
    assert dt.date.today()  # the rollup days are UTC days; the list shows every row
