"""A session's conversation page: a real classic AG2 group chat (GroupChat + GroupChatManager,
round robin, against the fake LLM server) read back as a chat, in the test client and in Chromium."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import autogen
import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from ag2_logging import ag2_logging_session, flush
from ag2_logging.admin.transcript import message_entry, transcript
from ag2_logging.models import Session
from example_project.demo.agents import build_group_chat, task_message
from tests.test_browser import browser, log_in  # noqa: F401  (the browser fixture)

pytestmark = pytest.mark.django_db(transaction=True)

SCREENSHOTS = Path("/tmp/transcript-shots")
#: A long line without spaces (must wrap) and a right-to-left override (must show escaped).
LONG = "x" * 400
TASK = f"Check the price of SKU-1001 please \u202e {LONG}"

#: The round robin the demo's group chat runs (example_project/demo/agents.py): the user posts the
#: task, the analyst asks for lookup_price, the user runs it, the analyst reports, the planner ends.
SAID = ["user", "analyst", "user", "analyst", "planner"]


def run_group_chat(llm: Any, chat_id: str = "group-1") -> Session:
    with ag2_logging_session(chat_id, "support_triage", "acme"):
        team = build_group_chat(model="gpt-4o-mini", base_url=llm.base_url)
        assert isinstance(team.groupchat, autogen.GroupChat)
        assert isinstance(team.manager, autogen.GroupChatManager)
        team.run(task_message(TASK, sku="SKU-1001", marker="tx"))
    flush()
    return Session.objects.get(chat_id=chat_id)


def _speakers(page_html: str) -> list[str]:
    return re.findall(r'<article class="ag2-msg[^"]*" data-speaker="([^"]*)"', page_html)


def test_group_chat_reads_in_the_order_it_was_said(llm: Any, admin_client: Client) -> None:
    session = run_group_chat(llm)
    url = reverse("admin:ag2_logging_session_transcript", args=[session.pk])

    change = admin_client.get(reverse("admin:ag2_logging_session_change", args=[session.pk]))
    assert url in change.content.decode()  # the link beside the timeline's

    response = admin_client.get(url)
    assert response.status_code == 200
    page = response.content.decode()
    # Each message once, by the agent that said it (the manager's relays are not messages).
    assert _speakers(page) == SAID
    messages = [e for e in transcript(session).entries if e.kind == "message"]
    assert [(m.speaker, m.recipient) for m in messages] == [(who, "manager") for who in SAID]
    assert messages[1].tool_calls == ['lookup_price({"sku": "SKU-1001"})']
    assert (messages[2].role, messages[2].content) == ("tool", "19.99")
    assert messages[3].content.startswith("tool result: 19.99")
    assert messages[4].content.endswith("TERMINATE")

    # The three LLM calls and the tool call sit between the messages they led to.
    kinds = [(e.kind, e.speaker) for e in transcript(session).entries]
    assert kinds == [
        ("message", "user"),
        ("llm", "analyst"),
        ("message", "analyst"),
        ("tool", "user"),
        ("message", "user"),
        ("llm", "analyst"),
        ("message", "analyst"),
        ("llm", "planner"),
        ("message", "planner"),
    ]
    order = [
        page.index(text) for text in ("Check the price", "lookup_price(", "tool result: 19.99", "fake reply")
    ]
    assert order == sorted(order)
    # The prompt and response of each call, in place; the tool's arguments and result.
    assert page.count('class="ag2-tx-step ag2-tx-llm') == 3
    assert "You are the planner." in html.unescape(page)
    assert html.escape('{"sku": "SKU-1001"}') in page
    # Control characters show escaped, as everywhere in the admin.
    assert "\u202e" not in page
    assert "\\u202e" in page


def test_relays_are_left_out() -> None:
    relay = {"message": {"content": "hi", "role": "user", "name": "analyst"}, "sender": "manager"}
    said = {"message": "hi", "sender": "analyst"}
    tool = {
        "message": {"content": "None", "role": "assistant", "name": "analyst", "tool_calls": []},
        "sender": "analyst",
    }
    assert message_entry(1, None, "user", relay) is None
    entry = message_entry(2, None, "manager", said)
    assert entry is not None
    assert (entry.speaker, entry.recipient, entry.content) == ("analyst", "manager", "hi")
    assert message_entry(3, None, "manager", {"sender": "x"}) is None
    kept = message_entry(4, None, "manager", tool)
    assert kept is not None
    assert kept.content == "None"  # no tool calls: the text is what was said


def test_transcript_needs_the_view_permission(llm: Any, client: Client) -> None:
    session = run_group_chat(llm, "group-perm")
    User.objects.create_user("staff", password="pw", is_staff=True)
    client.login(username="staff", password="pw")
    response = client.get(reverse("admin:ag2_logging_session_transcript", args=[session.pk]))
    assert response.status_code == 403


def test_transcript_in_a_browser(llm: Any, browser: Any, live_server: Any) -> None:  # noqa: F811
    session = run_group_chat(llm, "group-browser")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    try:
        log_in(page, live_server.url)
        page.goto(f"{live_server.url}{reverse('admin:ag2_logging_session_change', args=[session.pk])}")
        page.click("#ag2-transcript-link")
        page.wait_for_selector("#ag2-transcript")
        speakers = page.eval_on_selector_all("article.ag2-msg", "els => els.map(e => e.dataset.speaker)")
        assert speakers == SAID
        first = page.locator("article.ag2-msg pre.ag2-tx-text").first
        assert "\\u202e" in first.inner_text()
        # The 400-character line wraps inside the page instead of widening it.
        box = first.bounding_box()
        assert box is not None
        assert box["x"] + box["width"] <= 1366
        assert page.evaluate("document.documentElement.scrollWidth") <= 1366
        # A call opens in place to its prompt and response.
        page.click(".ag2-tx-llm summary >> nth=2")
        assert "You are the planner." in page.locator(".ag2-tx-llm >> nth=2").inner_text()
        page.screenshot(path=str(SCREENSHOTS / "transcript.png"), full_page=True)
    finally:
        context.close()


def test_without_message_events_the_responses_are_the_messages(admin_client: Client) -> None:
    """The ag2 1.x generation records no ``received_message`` events: each call's response is
    shown as its agent's message, after the call."""
    import datetime as dt
    import uuid

    from ag2_logging.models import LLMCall

    session = Session.objects.create(chat_id="no-events", started_at=dt.datetime.now(dt.UTC))
    for seq, (agent, answer) in enumerate([("analyst", "The price is 19.99."), ("planner", "Refund it.")], 1):
        LLMCall.objects.create(
            id=uuid.uuid4(),
            session=session,
            seq=seq,
            agent_name=agent,
            model="gpt-4o-mini",
            request={"messages": [{"role": "user", "content": "price?"}]},
            response={"choices": [{"message": {"role": "assistant", "content": answer}}]},
        )
    report = transcript(session)
    assert report.derived
    assert [(e.kind, e.speaker, e.content) for e in report.entries] == [
        ("llm", "analyst", ""),
        ("message", "analyst", "The price is 19.99."),
        ("llm", "planner", ""),
        ("message", "planner", "Refund it."),
    ]
    page = admin_client.get(
        reverse("admin:ag2_logging_session_transcript", args=[session.pk])
    ).content.decode()
    assert 'id="ag2-transcript-derived"' in page
    assert _speakers(page) == ["analyst", "planner"]


def test_a_long_session_says_it_is_cut(
    llm: Any, admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ag2_logging.admin import transcript as module

    session = run_group_chat(llm, "group-long")
    monkeypatch.setattr(module, "TRANSCRIPT_LIMIT", 3)
    report = transcript(session)
    assert report.truncated
    assert report.counts["llm"] == 3 and report.counts["message"] <= 3
    page = admin_client.get(
        reverse("admin:ag2_logging_session_transcript", args=[session.pk])
    ).content.decode()
    assert "Showing the first 3 entries of each kind" in page
    monkeypatch.setattr(module, "TRANSCRIPT_LIMIT", 2_000)
    assert not transcript(session).truncated
