"""The report pages in a real browser: headless Chromium from Debian, driven by Playwright.

``make test`` installs Chromium (``apt-get install chromium``) when it is missing; without it these
tests fail, saying so, rather than skip. Screenshots of every page go to
``artifacts/screenshots/`` (kept by CI) so a person can look at them.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from ag2_logging.models import Session
from tests.report_data import make_report_data, make_rich_data, today

pytestmark = pytest.mark.django_db(transaction=True)

CHROMIUM = os.environ.get("AG2_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium is not installed ({CHROMIUM} is missing): run `make test`, which installs it, "
            "or `apt-get install chromium` (or set AG2_TEST_CHROMIUM to a Chromium binary)."
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - the test extra installs it
        pytest.fail('Playwright is missing: pip install -e ".[test]" (never `playwright install`).')
    # Playwright's sync API keeps an event loop in this thread; the ORM calls the tests make
    # between page actions are plain sync code, not async code.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def page(browser: Any, live_server: Any) -> Iterator[Any]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1440, "height": 900}, accept_downloads=True)
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "response",
        lambda r: (
            errors.append(f"{r.status} {r.url}") if r.status >= 400 and "favicon" not in r.url else None
        ),
    )
    yield page
    context.close()
    assert errors == [], errors


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def log_in(page: Any, base: str) -> None:
    User.objects.create_superuser("admin", password="correct horse battery")
    page.goto(f"{base}/admin/login/?next=/admin/ag2_logging/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "correct horse battery")
    page.click("input[type=submit]")
    page.wait_for_url(re.compile(r"/admin/ag2_logging/$"))


def download_csv(page: Any, selector: str) -> list[dict[str, str]]:
    with page.expect_download() as info:
        page.click(selector)
    path = info.value.path()
    return list(csv.DictReader(io.StringIO(Path(path).read_text())))


def test_reports_in_a_browser(page: Any, live_server: Any) -> None:
    make_rich_data()
    make_report_data()
    base = live_server.url
    log_in(page, base)
    shot(page, "01-app-index")

    page.click("text=Cost overview")
    page.wait_for_selector(".ag2-cards")
    assert page.locator("svg[role=img]").count() >= 3
    shot(page, "02-overview")

    # a date filter: the last 7 days
    start = (today().toordinal() - 6, today())
    from datetime import date

    page.fill("input[name=start]", date.fromordinal(start[0]).isoformat())
    page.click(".ag2-filters input[type=submit]")
    page.wait_for_url(re.compile(r"start=" + date.fromordinal(start[0]).isoformat()))
    assert page.input_value("input[name=start]") == date.fromordinal(start[0]).isoformat()
    shot(page, "03-overview-last-7-days")

    page.click(".ag2-panel h2 small a:has-text('by enterprise')")
    page.wait_for_url(re.compile(r"stack=enterprise"))
    shot(page, "04-overview-stacked-by-enterprise")

    for slug in ("enterprise", "workflow", "model", "agent", "day"):
        page.click(f".ag2-nav a:has-text('By {slug}')")
        page.wait_for_url(re.compile(rf"/reports/by/{slug}/\?"))
        assert page.locator("#ag2-breakdown tfoot").count() == 1
        shot(page, f"05-by-{slug}")

    rows = download_csv(page, ".ag2-csv")
    assert rows[-1]["day"] == "TOTAL"
    assert len(rows) == 8  # seven days, then the total

    page.click(".ag2-nav a:has-text('Model comparison')")
    page.wait_for_selector("#ag2-models")
    page.click("#ag2-models thead a:has-text('p95 latency')")
    page.wait_for_url(re.compile(r"sort=-p95"))
    shot(page, "06-model-comparison")

    page.select_option("select[name=enterprise]", "acme")
    page.click(".ag2-filters input[type=submit]")
    page.wait_for_url(re.compile(r"enterprise=acme"))
    models = download_csv(page, ".ag2-csv")
    assert models and all(r["model"] for r in models)

    session = Session.objects.get(chat_id="chat-s1")
    page.goto(f"{base}/admin/ag2_logging/session/?q=chat-s1")
    page.click("a:has-text('timeline')")
    page.wait_for_url(re.compile(rf"/session/{session.pk}/timeline/"))
    # calls and tools only (the default): each run of events folded into one row
    assert page.locator("#ag2-timeline > tbody > tr").count() == 6
    assert page.locator("#ag2-timeline > tbody > tr.ag2-fold").count() == 2
    page.click("#ag2-timeline details.ag2-call summary >> nth=0")  # a call opens in place
    assert page.locator("#ag2-timeline details.ag2-call[open] pre").first.is_visible()
    shot(page, "07-session-timeline")
    page.click("a:has-text('everything')")
    page.wait_for_url(re.compile(r"show=all"))
    assert page.locator("#ag2-timeline > tbody > tr.ag2-fold").count() == 0  # runs of one or two
    assert page.locator("#ag2-timeline > tbody > tr").count() == 6
    steps = download_csv(page, ".ag2-csv")
    assert [r["kind"] for r in steps] == ["event", "llm", "event", "tool", "llm", "llm"]

    busy = Session.objects.filter(workflow_name="support_triage").order_by("-call_count").first()
    assert busy is not None
    page.goto(f"{base}/admin/ag2_logging/session/{busy.pk}/timeline/")
    shot(page, "08-session-timeline-busy")

    page.goto(f"{base}/admin/ag2_logging/llmcall/?price_status__exact=unknown")
    shot(page, "09-llm-calls-unpriced")
    exported = download_csv(page, "a.ag2-csv")
    assert exported and all(r["cost"] == "" and r["price_status"] == "unknown" for r in exported)

    page.goto(f"{base}/admin/ag2_logging/session/")
    shot(page, "10-sessions")

    page.goto(f"{base}/admin/ag2_logging/dailyrollup/reports/")
    page.emulate_media(media="print")
    shot(page, "11-overview-print")
    page.emulate_media(media="screen", color_scheme="dark")
    page.goto(f"{base}/admin/ag2_logging/dailyrollup/reports/models/")
    shot(page, "12-model-comparison-dark")
