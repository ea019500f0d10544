"""The README's ag2 1.x quick start runs as written, against the fake LLM server."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from ag2_logging.models import LLMCall, Session, ToolCall
from ag2_logging.testing import FakeLLMServer
from tests.ag2.conftest import run

pytestmark = [pytest.mark.ag2, pytest.mark.django_db(transaction=True)]

README = Path(__file__).resolve().parents[2] / "README.md"


def quick_start_snippet() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    (snippet,) = [block for block in blocks if "logging_middleware()" in block and "async def" in block]
    return snippet


def test_the_quick_start_snippet_records_a_session(
    llm: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The snippet's OpenAIConfig reads its key and URL from the environment, as the OpenAI SDK does.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-readme-not-a-key")
    monkeypatch.setenv("OPENAI_BASE_URL", llm.base_url)
    namespace: dict[str, Any] = {}
    exec(compile(quick_start_snippet(), str(README), "exec"), namespace)

    body = run(namespace["triage"]("chat-readme", "What does SKU-1 cost? [[marker:readme]]"))
    assert body == "fake reply 1 [[marker:readme]]"
    session = Session.objects.get()
    assert (session.chat_id, session.workflow_name, session.enterprise_id, session.status) == (
        "chat-readme",
        "support_triage",
        "acme",
        "completed",
    )
    call = LLMCall.objects.get()
    assert (call.agent_name, call.provider, call.model, call.status) == (
        "assistant",
        "openai",
        "gpt-4o-mini",
        "success",
    )
    assert session.call_count == 1 and session.total_tokens == 150

    # The snippet's tool, called by the model: recorded as a tool call of its own.
    body = run(
        namespace["triage"]("chat-readme-tool", 'Where is it? [[tool:lookup_order {"order_id": "A-1029"}]]')
    )
    assert body == "tool result: Order A-1029 shipped yesterday."
    tool = ToolCall.objects.get(session__chat_id="chat-readme-tool")
    assert (tool.name, tool.arguments, tool.result_summary, tool.error) == (
        "lookup_order",
        {"order_id": "A-1029"},
        "Order A-1029 shipped yesterday.",
        "",
    )
