"""Search inside what was said, from the LLM calls list: PostgreSQL full-text search, or the bounded
fallback on the other databases (run this module on both: ``DATABASE_URL=postgres://...``).

The prompts are real classic AG2 chats' (against the fake LLM server), redacted by the recorder
before they reach the rows: a redacted secret is not found, the same word said openly is."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from ag2_logging import ag2_logging_session, flush
from ag2_logging.admin.said import SaidFilter, search_said
from ag2_logging.models import LLMCall
from example_project.demo.teams import build_two_agent_chat, task_message

pytestmark = pytest.mark.django_db(transaction=True)

#: Redacted by the recorder (a connection-string password): never in a row.
SECRET_PROMPT = "Ship it by Tuesday. Our database password=Wombat55zz, keep it safe."
#: The same word, said openly.
OPEN_PROMPT = "The team mascot is called Wombat55zz; the parcel of SKU-2002 arrived."

POSTGRES = connection.vendor == "postgresql"


def run_chat(llm: Any, chat_id: str, prompt: str) -> None:
    with ag2_logging_session(chat_id, "invoice_review", "acme"):
        build_two_agent_chat(model="gpt-4o-mini", base_url=llm.base_url).run(
            task_message(prompt, sku="SKU-2002", marker=chat_id)
        )


@pytest.fixture
def chats(llm: Any) -> None:
    run_chat(llm, "secret", SECRET_PROMPT)
    run_chat(llm, "open", OPEN_PROMPT)
    flush()
    assert LLMCall.objects.filter(session__chat_id="secret").count() >= 2
    stored = str(LLMCall.objects.filter(session__chat_id="secret").values_list("request", flat=True)[0])
    assert "Tuesday" in stored and "Wombat55zz" not in stored  # the recorder redacted it


def _found(client: Client, said: str) -> tuple[set[str], str]:
    response = client.get(reverse("admin:ag2_logging_llmcall_changelist"), {"said": said})
    assert response.status_code == 200
    calls = response.context["cl"].result_list
    return {call.session.chat_id for call in calls}, response.content.decode()


@pytest.mark.usefixtures("chats")
def test_finds_a_word_of_a_captured_prompt(admin_client: Client) -> None:
    found, page = _found(admin_client, "tuesday")
    assert found == {"secret"}
    found, _ = _found(admin_client, "parcel arrived")  # every word, anywhere in the prompt
    assert found == {"open"}
    found, _ = _found(admin_client, "parcel Tuesday")
    assert found == set()
    # A word of a response (the fake server's reply) is found too.
    found, _ = _found(admin_client, "open")
    assert "open" in found
    if POSTGRES:
        assert "PostgreSQL full-text search" in page
    else:
        assert "Searched all" in page
    queryset, search = search_said(LLMCall.objects.all(), "Tuesday")
    assert search.full_text is POSTGRES
    assert set(queryset.values_list("session__chat_id", flat=True)) == {"secret"}


@pytest.mark.usefixtures("chats")
def test_a_redacted_secret_is_not_found(admin_client: Client) -> None:
    found, _ = _found(admin_client, "Wombat55zz")
    assert found == {"open"}  # only where it was said openly
    found, _ = _found(admin_client, "Wombat55zz Tuesday")
    assert found == set()


@pytest.mark.usefixtures("chats")
def test_search_keeps_the_other_filters(admin_client: Client) -> None:
    url = reverse("admin:ag2_logging_llmcall_changelist")
    response = admin_client.get(url, {"said": "SKU-2002", "agent_name": "analyst"})
    calls = response.context["cl"].result_list
    assert calls
    assert {call.agent_name for call in calls} == {"analyst"}
    assert {call.session.chat_id for call in calls} == {"secret", "open"}
    # The box keeps the other filters as hidden fields.
    assert 'name="agent_name" value="analyst"' in response.content.decode()


@pytest.mark.skipif(POSTGRES, reason="the bound is the fallback's; PostgreSQL searches every call")
@pytest.mark.usefixtures("chats")
def test_the_fallback_states_its_bound(admin_client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SaidFilter, "fallback_limit", 1)
    newest = LLMCall.objects.order_by("-started_at").first()
    assert newest is not None
    found, page = _found(admin_client, "SKU-2002")
    assert found == {newest.session.chat_id}  # only the newest call was read
    assert "Searched the newest 1 calls of this list only" in page
