"""End to end, ag2 1.x: secrets of every supported kind planted into a real ``ag2.Agent`` run never
reach a file under the logs directory, a row of any app table, the SQLite database file, an admin
page, a report page, a session timeline or a CSV export.

The ``ag2`` half of tests/test_secrets_e2e.py (classic AG2), with the same corpus and scanner
(tests/secrets_scan.py). Planted into: the model config (``api_key``, ``default_headers``,
``default_query``, ``extra_body``), the agent's init arguments (its instructions and its
``dependencies``), the user prompt, the tool's arguments (called by the fake LLM server's
``[[tool:NAME {json}]]`` directive) and the tool's result, which the fake server echoes back in
its next reply (so the model's response carries secrets too). The agent carries
``logging_middleware()`` and runs inside ``async with ag2_logging_session(...)``; the session-end
pipeline (Celery eager: sanitize, ingest, summarize) runs before the scan.
"""

from __future__ import annotations

import html
import json
import random
from pathlib import Path

import pytest
from ag2 import Agent
from ag2.config import OpenAIConfig
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from ag2_logging import ag2_logging_session, flush, tasks
from ag2_logging.integrations.ag2 import logging_middleware
from ag2_logging.models import AgentEvent, DailyRollup, LLMCall, Session, ToolCall
from ag2_logging.testing import FakeLLMServer
from ag2_logging.testing.fake_llm import TOOL_RESULT_MAX_CHARS
from tests.ag2.conftest import run
from tests.secrets_scan import (
    bare_secret,
    planted_corpus,
    sample,
    scan_admin,
    scan_database,
    scan_everything,
    scan_exports,
    scan_files,
    scan_reports,
)

pytestmark = [pytest.mark.ag2, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def admin_client() -> Client:
    user = get_user_model().objects.create_superuser("admin", "admin@example.com", "pw-for-tests-only")
    client = Client()
    client.force_login(user)
    return client


def test_planted_secrets_reach_no_file_row_page_or_export(
    llm: FakeLLMServer, logs_dir: Path, admin_client: Client
) -> None:
    corpus = planted_corpus(seed=1771)
    keyed = corpus.keyed
    rng = random.Random(1772)
    api_key = sample("openai_key", rng)
    header_token = sample("github_token", rng)
    query_token = sample("slack_token", rng)
    body_secret = sample("stripe_key", rng)
    tool_url = sample("url_password", rng)
    tool_jwt = sample("jwt", rng)
    tool_key = sample("aws_access_key_id", rng)
    planted = (api_key, header_token, query_token, body_secret, tool_url, tool_jwt, tool_key)
    secrets = [*corpus.secrets, *(s.secret for s in planted)]

    # The fake server echoes the first TOOL_RESULT_MAX_CHARS characters of the tool result in its
    # next reply: whole secrets first, then filler so that the cut never halves a secret, then
    # every kind of the corpus (recorded as the tool's result, never echoed).
    head = f"connected to {tool_url.text} as {tool_key.text}; "
    assert len(head) < TOOL_RESULT_MAX_CHARS - 20
    result_text = f"{head}{'.' * TOOL_RESULT_MAX_CHARS}\nsession token {tool_jwt.text}\n{corpus.text()}"

    def lookup(query: str, password: str, client_secret: str, dsn: str) -> str:
        """Look something up in the vault."""
        assert (password, client_secret, dsn) == (keyed["password"], keyed["client_secret"], keyed["dsn"])
        return result_text

    config = OpenAIConfig(
        model="gpt-4o-mini",
        api_key=api_key.secret,
        base_url=llm.base_url,
        max_retries=0,
        default_headers={
            "X-Api-Key": keyed["X-Api-Key"],
            "Authorization": keyed["Authorization"],
            # a token in a header nobody names as secret
            "X-Trace": header_token.text,
        },
        default_query={"trace": query_token.text},
        extra_body={"metadata_note": body_secret.text},
    )
    agent = Agent(
        "assistant",
        "You help. Never reveal " + corpus.text(" "),
        config=config,
        tools=[lookup],
        middleware=[logging_middleware()],
        dependencies={"aws_secret_access_key": keyed["aws_secret_access_key"], "vault": api_key.text},
    )
    tool_args = {
        "query": corpus.text(" | "),
        "password": keyed["password"],
        "client_secret": keyed["client_secret"],
        "dsn": keyed["dsn"],
    }
    prompt = f"[[tool:lookup {json.dumps(tool_args)}]] Use these: {corpus.text()}"

    async def chat() -> str:
        async with ag2_logging_session("chat-secrets-ag2", "secrets", "acme") as recorder:
            assert recorder is not None
            reply = await agent.ask(prompt)
            return str(reply.body)

    body = run(chat())
    flush()

    # the planted values really went through AG2 to the server, and back in its reply
    assert [r.tool_call for r in llm.successful()] == ["lookup", None]
    sent = json.dumps([r.messages for r in llm.served])
    for value in (corpus.samples[0].secret, tool_args["password"], tool_jwt.secret, tool_url.secret):
        assert json.dumps(value)[1:-1] in sent
    assert body.startswith("tool result: ") and tool_url.secret in body and tool_key.secret in body

    session = Session.objects.get()
    assert (session.status, session.call_count) == ("completed", 2)
    assert session.ingested_at is not None and session.sanitized_at is not None
    assert session.summarized_at is not None and DailyRollup.objects.exists()  # reports have data
    tool = ToolCall.objects.get()
    assert tool.name == "lookup" and tool.arguments["password"] == "[REDACTED:password]"
    assert "[REDACTED:url_password]" in tool.result_summary
    assert "[REDACTED:jwt]" in tool.result_summary
    calls = list(LLMCall.objects.order_by("seq"))
    assert len(calls) == 2 and all(c.request for c in calls) and calls[1].response is not None
    assert "[REDACTED:url_password]" in calls[1].response["message"]["content"]
    assert AgentEvent.objects.filter(name="new_agent").count() == 1
    for kind in ("pem_private_key", "jwt", "url_password", "key:password", "key:client_secret"):
        assert kind in session.redactions, kind

    # sanitize ran at session end; another pass finds nothing and rewrites nothing
    again = tasks.sanitize_log.delay(str(session.pk)).get()
    assert again["removed"] == {} and not again["journal_rewritten"]

    findings = scan_everything(secrets, logs_dir=logs_dir, client=admin_client)
    assert [str(f) for f in findings] == []

    # the scanner finds what it looks for: a planted value written to a file...
    probe = logs_dir / "probe.txt"
    probe.write_text(f"leak {tool_jwt.secret}")
    assert [f.secret for f in scan_files(logs_dir, secrets)] == [tool_jwt.secret]
    probe.unlink()
    assert scan_database(secrets) == [] and scan_admin(admin_client, secrets) == []
    # ...and one that reaches the admin's pages and CSV exports: found in the CSV as written, and
    # in the pages although they show it HTML-escaped (last: SQLite keeps the old row's bytes)
    leak = f"{bare_secret(rng, 12)}&<{bare_secret(rng, 12)}"
    Session.objects.filter(pk=session.pk).update(error=f"failed with {leak}")
    timeline = reverse("admin:ag2_logging_session_timeline", args=[session.pk])
    page = admin_client.get(timeline).content
    assert leak.encode() not in page and html.escape(leak).encode() in page
    assert {f.where for f in scan_exports(admin_client, [leak])} == {
        reverse("admin:ag2_logging_session_export")
    }
    assert {f.where for f in scan_reports(admin_client, [leak])} == {timeline}
    assert {f.where for f in scan_admin(admin_client, [leak])} == {
        reverse("admin:ag2_logging_session_change", args=[session.pk])
    }
