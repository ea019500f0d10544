"""The live dashboard in a real browser (headless Chromium, Playwright) while a real classic AG2
chat runs in the background against the fake LLM server: the running session's cost rises on
the page, then the session leaves it when it ends, under WSGI (Django's live server: the page
polls its JSON endpoint) and under ASGI (uvicorn serving tests/asgi.py in another process: a
WebSocket through Django Channels, the in-memory channel layer).

The chat is paced by the test (one reply at a time), so each figure is read between two calls.
Screenshots go to ``$TMPDIR/ag2-live-screenshots``.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from ag2_logging.capture import heartbeat
from ag2_logging.conf import conf
from ag2_logging.testing.fake_llm import FakeLLMServer
from tests.support import REPO, child_env, stop_worker
from tests.test_browser import browser  # noqa: F401  (the Chromium fixture)
from tests.test_live_dashboard import CALL, PAGE_URL, PacedChat

pytestmark = pytest.mark.django_db(transaction=True)
SHOTS = Path(tempfile.gettempdir()) / "ag2-live-screenshots"
PASSWORD = "correct horse battery"

ROW_JS = """([chat, field]) => {
  const row = [...document.querySelectorAll('#ag2-live-running tbody tr')]
    .find(tr => tr.textContent.includes(chat));
  if (!row) return null;
  return field === 'calls' ? row.querySelector('.ag2-live-calls').textContent
                           : row.querySelector('.ag2-live-cost').dataset.cost;
}"""

#: The latest calls table's cells, row by row.
LATEST_JS = """() => [...document.querySelectorAll('#ag2-live-calls tbody tr')]
  .map(tr => [...tr.querySelectorAll('td')].map(td => td.textContent))"""


@pytest.fixture
def fast_live(settings: Any) -> None:
    settings.AG2_LOGGING = {**settings.AG2_LOGGING, "LIVE_SECONDS": 0.2}
    conf.reload()
    heartbeat.live_deltas()  # counts earlier tests' sessions still owe are not this test's


@pytest.fixture
def page_of(browser: Any) -> Iterator[Any]:  # noqa: F811
    SHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(30_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    yield page
    context.close()
    assert errors == [], errors


def log_in(page: Any, base: str) -> None:
    if not User.objects.filter(username="admin").exists():
        User.objects.create_superuser("admin", password=PASSWORD)
    page.goto(f"{base}/admin/login/?next=/admin/ag2_logging/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/ag2_logging/")


def row_value(page: Any, chat_id: str, field: str) -> Any:
    return page.evaluate(ROW_JS, [chat_id, field])


def wait_calls(page: Any, chat_id: str, calls: int) -> Decimal:
    """Wait until the page shows ``calls`` calls for the chat; its cost then."""
    page.wait_for_function(f"() => ({ROW_JS})([{chat_id!r}, 'calls']) === {str(calls)!r}")
    return Decimal(row_value(page, chat_id, "cost"))


def watch_a_chat(page: Any, base: str, llm: FakeLLMServer, chat_id: str, name: str) -> None:
    """Open the dashboard, run a paced chat of three replies, see its cost rise, see it end."""
    log_in(page, base)
    page.goto(base + PAGE_URL)
    page.wait_for_selector("#ag2-live-state[data-state=live]")
    chat = PacedChat(llm, turns=3, chat_id=chat_id, workflow_name="triage", enterprise_id="acme").start()
    try:
        first = wait_calls(page, chat_id, 1)
        page.screenshot(path=str(SHOTS / f"{name}-1-call.png"), full_page=True)
        # The running session's call is listed among the latest calls (rendered with the row).
        cells = page.evaluate(LATEST_JS)
        assert len(cells) == 1 and cells[0][1:6] == ["acme", "triage", "assistant", "gpt-4o-mini", "1,010"]
        assert cells[0][7].endswith(" ms") and cells[0][8] == "success"
        chat.step()
        second = wait_calls(page, chat_id, 2)
        page.screenshot(path=str(SHOTS / f"{name}-2-calls.png"), full_page=True)
    finally:
        chat.finish()
    assert (first, second) == (CALL, 2 * CALL)
    page.wait_for_function(f"() => ({ROW_JS})([{chat_id!r}, 'calls']) === null")
    page.wait_for_function("() => document.getElementById('ag2-live-hour-calls').textContent === '3'")
    assert page.is_visible("#ag2-live-running-empty")
    page.screenshot(path=str(SHOTS / f"{name}-ended.png"), full_page=True)


def test_the_dashboard_polls_under_wsgi(
    page_of: Any, live_server: Any, llm: FakeLLMServer, fast_live: None
) -> None:
    watch_a_chat(page_of, live_server.url, llm, "live-wsgi", "wsgi")
    transport = page_of.locator("#ag2-live-transport")
    assert transport.get_attribute("data-transport") == "polling"
    assert "polling" in transport.inner_text()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def asgi_server(tmp_path: Path) -> Iterator[str]:
    """uvicorn serving tests/asgi.py on a loopback port, against this test's database."""
    port = _free_port()
    log_path = tmp_path / "uvicorn.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tests.asgi:application", "--host", "127.0.0.1",
         "--port", str(port), "--ws", "websockets", "--log-level", "warning"],
        env=child_env(tmp_path, AG2_TEST_LIVE_SECONDS="0.2"), cwd=REPO, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"uvicorn exited: {log_path.read_text()[-3000:]}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, f"uvicorn did not listen: {log_path.read_text()[-3000:]}"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_worker(proc)
        log.close()


def test_the_dashboard_is_pushed_over_a_websocket_under_asgi(
    page_of: Any, asgi_server: str, llm: FakeLLMServer, fast_live: None
) -> None:
    sockets: list[str] = []
    page_of.on("websocket", lambda ws: sockets.append(ws.url))
    polls: list[str] = []
    page_of.on("request", lambda r: polls.append(r.url) if "data.json" in r.url else None)
    watch_a_chat(page_of, asgi_server, llm, "live-asgi", "asgi")
    transport = page_of.locator("#ag2-live-transport")
    assert transport.get_attribute("data-transport") == "websocket"
    assert "WebSocket" in transport.inner_text()
    assert sockets == [asgi_server.replace("http://", "ws://") + "/ws/ag2_logging/live/"]
    assert polls == []  # every figure came over the WebSocket
