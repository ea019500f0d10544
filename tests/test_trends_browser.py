"""The trends and recommendations pages in a real browser (headless Chromium through Playwright,
the fixtures of ``tests/test_browser.py``) at 1366 x 768: reached from the reports' navigation,
the planted anomaly flagged in view, nothing wider than the window."""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse

from ag2_logging.models import DailyRollup
from ag2_logging.pipeline.rollups import rebuild_rollups
from tests.report_data import at, call, session
from tests.test_browser import browser, log_in  # noqa: F401  (the browser fixture)

pytestmark = pytest.mark.django_db(transaction=True)

#: Screenshots for a person to look at (outside the repository).
SHOTS = Path(os.environ.get("AG2_TEST_SCREENSHOTS", "/tmp/ag2-screenshots"))


def seed() -> dt.date:
    """40 days of a workflow costing $9, $10, $11 in turn, $60 two days ago; a few calls today on
    gpt-4o for the recommendations."""
    s = session("c1", "acme", "support_triage", at(0, hour=0))
    for seq in range(3):
        call(s, seq, model="gpt-4o", start=at(0, hour=0, minute=seq), prompt=2000, completion=300,
             cost=Decimal("0.008"), latency_ms=800)  # fmt: skip
    # A rebuild keeps only the calls' rows: the calls are rolled up first, the planted rows after
    # (under another agent, so no key is shared).
    rebuild_rollups()
    today = dt.datetime.now(dt.UTC).date()
    planted = today - dt.timedelta(days=2)
    for n in range(40):
        day = today - dt.timedelta(days=n)
        for workflow, cost in (("support_triage", Decimal(60) if day == planted else Decimal(9 + n % 3)),
                               ("nightly_digest", Decimal("4.5") + Decimal(n % 2) / 10)):  # fmt: skip
            DailyRollup.objects.create(
                day=day,
                enterprise_id="acme",
                workflow_name=workflow,
                model="gpt-4o",
                provider="openai",
                agent_name="planner",
                call_count=10,
                prompt_tokens=20_000,
                completion_tokens=2_000,
                total_tokens=22_000,
                cost=cost,
            )
    return planted


FITS = """() => {
  const flag = document.querySelector('#ag2-anomaly-table .ag2-flag');
  const r = flag.getBoundingClientRect();
  const doc = document.documentElement;
  return {flag: {left: r.left, right: r.right, top: r.top, bottom: r.bottom, text: flag.textContent},
          width: window.innerWidth, height: window.innerHeight,
          scroll: doc.scrollWidth, client: doc.clientWidth};
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_trends_page_at_1366_shows_the_anomaly(browser: Any, live_server: Any, scheme: str) -> None:  # noqa: F811
    planted = seed()
    SHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1366, "height": 768}, color_scheme=scheme)
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        log_in(page, live_server.url)
        page.goto(live_server.url + reverse("admin:ag2_logging_report_overview"))
        page.click("nav .ag2-nav >> text=Trends")
        page.wait_for_selector("#ag2-anomaly-table")
        m = page.evaluate(FITS)
        page.screenshot(path=str(SHOTS / f"trends-1366-{scheme}.png"))
        page.screenshot(path=str(SHOTS / f"trends-1366-full-{scheme}.png"), full_page=True)
        assert m["flag"]["text"] == "anomaly: high"
        # The flag is inside the window without scrolling, and nothing scrolls sideways.
        assert m["flag"]["left"] >= 0 and m["flag"]["right"] <= m["width"], m
        assert m["flag"]["top"] >= 0 and m["flag"]["bottom"] <= m["height"], m
        assert m["scroll"] <= m["client"] + 1, m
        row = page.locator("#ag2-anomaly-table tr.ag2-anomaly")
        assert row.count() == 1
        text = row.inner_text()
        assert planted.isoformat() in text and "support_triage" in text and "$60.00" in text
        assert page.locator("#ag2-anomalies").inner_text().count("robust z-score") == 1
        # The flagged day opens the workflow's models on that day.
        page.click("#ag2-anomaly-table tr.ag2-anomaly a")
        page.wait_for_selector("#ag2-breakdown")
        assert "support_triage" in page.inner_text(".ag2-filters select[name=workflow] option[selected]")
        page.goto(live_server.url + reverse("admin:ag2_logging_report_trends"))
        page.click("nav .ag2-nav >> text=Recommendations")
        page.wait_for_selector("#ag2-rec-cheaper_model")
        page.screenshot(path=str(SHOTS / f"recommendations-1366-{scheme}.png"), full_page=True)
        assert "gpt-4o-mini" in page.inner_text("#ag2-rec-cheaper_model")
        assert page.evaluate(
            "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth + 1"
        )
        assert errors == []
    finally:
        context.close()
