"""What the session's timeline and conversation pages show of a real ag2 1.x conversation.

ag2 1.x keeps the conversation as its own events (``ModelRequest``, ``ModelResponse``, tool
calls and results), and records no ``received_message``: the pages read those shapes, so a
prompt shows who said what (a new user saw ``[?]`` for every message) and the conversation
starts with the user's question.
"""

from __future__ import annotations

import pytest
from ag2.config import OpenAIConfig
from django.test import Client
from django.urls import reverse

from ag2_logging import ag2_logging_session
from ag2_logging.admin.transcript import transcript
from ag2_logging.models import LLMCall, Session
from ag2_logging.reports.folding import call_text
from ag2_logging.testing import FakeLLMServer
from tests.ag2.conftest import run
from tests.ag2.test_ag2 import make_agent

pytestmark = [pytest.mark.ag2, pytest.mark.django_db(transaction=True)]

QUESTION = 'Where is order A-1029? [[tool:add {"a": 2, "b": 3}]]'


def _conversation(model_config: OpenAIConfig) -> Session:
    agent = make_agent(model_config)

    async def conversation() -> None:
        async with ag2_logging_session("chat-pages", "triage", "acme"):
            await agent.ask(QUESTION)

    run(conversation())
    return Session.objects.get()


def test_each_prompt_reads_as_who_said_what(llm: FakeLLMServer, model_config: OpenAIConfig) -> None:
    session = _conversation(model_config)
    first, second = LLMCall.objects.filter(session=session).order_by("seq")
    assert call_text(first.request, first.response) == (f"[user] {QUESTION}", '→ add({"a": 2, "b": 3})')
    # The second call's history: the question, the response that asked for the tool (its call
    # shown once, though AG2 keeps it in three events), the tool's result (kept in two).
    assert call_text(second.request, second.response) == (
        f'[user] {QUESTION}\n\n[assistant] → add({{"a": 2, "b": 3}})\n\n[tool add] 5',
        "tool result: 5",
    )


def test_the_conversation_starts_with_the_question(
    llm: FakeLLMServer, model_config: OpenAIConfig, admin_client: Client
) -> None:
    session = _conversation(model_config)
    report = transcript(session)
    assert report.derived
    assert [(e.kind, e.speaker, e.content or e.name) for e in report.entries] == [
        ("message", "user", QUESTION),  # sent by the first call, shown once before it
        ("llm", "assistant", "gpt-4o-mini"),
        ("message", "assistant", '→ add({"a": 2, "b": 3})'),
        ("tool", "assistant", "5"),
        ("llm", "assistant", "gpt-4o-mini"),
        ("message", "assistant", "tool result: 5"),
    ]
    for name in ("transcript", "timeline"):
        page = admin_client.get(
            reverse(f"admin:ag2_logging_session_{name}", args=[session.pk])
        ).content.decode()
        assert "[?]" not in page and "Where is order A-1029?" in page
