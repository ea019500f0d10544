"""Daily rollups: exactly once per session, equal to a rebuild from scratch."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ag2_logging import ag2_logging_session
from ag2_logging.models import DailyRollup, LLMCall, Session
from ag2_logging.pipeline.rollups import rebuild_rollups, summarize_session
from ag2_logging.testing import FakeLLMServer
from tests.test_classic import make_agents

pytestmark = pytest.mark.django_db(transaction=True)


def table() -> list[tuple[object, ...]]:
    return sorted(
        DailyRollup.objects.values_list(
            "day",
            "enterprise_id",
            "workflow_name",
            "model",
            "agent_name",
            "provider",
            "call_count",
            "prompt_tokens",
            "completion_tokens",
            "cached_tokens",
            "reasoning_tokens",
            "total_tokens",
            "cost",
            "unpriced_calls",
            "error_count",
        )
    )


def test_sessions_are_rolled_up_once_and_match_a_rebuild(llm: FakeLLMServer) -> None:
    assistant, user = make_agents(llm)
    for enterprise, workflow, turns in (
        ("acme", "triage", 1),
        ("acme", "triage", 2),
        ("globex", "digest", 1),
    ):
        with ag2_logging_session(f"{enterprise}-{turns}", workflow, enterprise):
            user.initiate_chat(assistant, message='[[tool:add {"a": 1, "b": 2}]]', max_turns=turns)
    assert Session.objects.filter(summarized_at__isnull=False).count() == 3
    rows = {(r.enterprise_id, r.workflow_name): r for r in DailyRollup.objects.all()}
    assert set(rows) == {("acme", "triage"), ("globex", "digest")}
    acme = LLMCall.objects.filter(session__enterprise_id="acme")
    assert rows["acme", "triage"].call_count == acme.count() == 3
    assert rows["acme", "triage"].total_tokens == sum(c.total_tokens for c in acme)
    assert rows["acme", "triage"].cost == sum((c.cost for c in acme), Decimal(0))

    before = table()
    for session in Session.objects.all():
        assert summarize_session(session.id) is False  # never twice
    assert table() == before
    assert rebuild_rollups() == 2
    assert table() == before
