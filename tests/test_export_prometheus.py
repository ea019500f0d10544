"""The Prometheus scrape view: real classic chats summarized into the rollups, scraped and parsed
with prometheus-client's own parser; who may scrape (staff with the report permission, or the
bearer token)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import autogen
import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import path
from prometheus_client.parser import text_string_to_metric_families

from ag2_logging import ag2_logging_session
from ag2_logging.export.views import prometheus_metrics
from ag2_logging.testing import FakeLLMServer
from tests.conftest import expected_cost, llm_config

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls("tests.test_export_prometheus")]

urlpatterns = [path("metrics", prometheus_metrics)]
TOKEN = "scrape-Xq7PzL2mV9kR4tB8"


def add(a: int, b: int) -> int:
    return a + b


def run_chats(server: FakeLLMServer, workflows: list[str]) -> None:
    for workflow in workflows:
        assistant = autogen.AssistantAgent("assistant", llm_config=llm_config(server))
        user = autogen.UserProxyAgent(
            "user", human_input_mode="NEVER", code_execution_config=False, max_consecutive_auto_reply=2
        )
        autogen.register_function(add, caller=assistant, executor=user, description="Add two integers.")
        with ag2_logging_session(f"chat-{workflow}", workflow, "acme"):
            user.initiate_chat(assistant, message='[[tool:add {"a": 1, "b": 2}]]', max_turns=2)


def scrape(client: Client, **headers: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.content
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _labels(workflow: str, **extra: str) -> tuple[tuple[str, str], ...]:
    base = {"model": "gpt-4o-mini", "provider": "openai", "enterprise": "acme", "workflow": workflow, **extra}
    return tuple(sorted(base.items()))


@pytest.mark.parametrize("workflows", [["triage"], ["triage", "digest"]])
def test_scrape_shows_cost_tokens_and_durations(llm, settings, workflows):
    settings.AG2_LOGGING = {**settings.AG2_LOGGING, "PROMETHEUS_TOKEN": TOKEN}
    run_chats(llm, workflows)
    samples = scrape(Client(), Authorization=f"Bearer {TOKEN}")
    served = llm.successful()
    per_chat = len(served) // len(workflows)
    for i, workflow in enumerate(workflows):
        mine = served[i * per_chat : (i + 1) * per_chat]
        usage = [r.usage for r in mine]
        cost = sum(
            (
                expected_cost("gpt-4o-mini", u.prompt_tokens, u.completion_tokens, u.cached_tokens, 0)
                for u in usage
            ),
            Decimal(0),
        )
        assert samples[("ag2_logging_cost_usd_total", _labels(workflow))] == pytest.approx(
            float(cost), rel=1e-12
        )
        assert samples[("ag2_logging_llm_calls_total", _labels(workflow))] == len(mine)
        assert samples[("ag2_logging_llm_errors_total", _labels(workflow))] == 0
        for kind, attr in [
            ("input", "prompt_tokens"),
            ("output", "completion_tokens"),
            ("cache_read", "cached_tokens"),
        ]:
            key = ("ag2_logging_tokens_total", _labels(workflow, token_type=kind))
            assert samples[key] == sum(getattr(u, attr) for u in usage)
        count = ("gen_ai_client_operation_duration_seconds_count", _labels(workflow))
        inf = ("gen_ai_client_operation_duration_seconds_bucket", _labels(workflow, le="+Inf"))
        assert samples[count] == samples[inf] == len(mine)


@pytest.mark.parametrize(
    ("who", "header", "status"),
    [
        ("anonymous", None, 401),
        ("anonymous", "Bearer wrong-token", 403),
        ("anonymous", f"Bearer {TOKEN}", 200),
        ("staff without permission", None, 403),
        ("staff with permission", None, 200),
        ("superuser", None, 200),
        ("inactive superuser", None, 401),
    ],
)
def test_scrape_is_protected_like_the_reports(settings, who, header, status):
    settings.AG2_LOGGING = {**settings.AG2_LOGGING, "PROMETHEUS_TOKEN": TOKEN}
    client = Client()
    if who != "anonymous":
        user = User.objects.create_user(
            "u",
            password="pw",
            is_staff=True,
            is_superuser="superuser" in who,
            is_active=who != "inactive superuser",
        )
        if who == "staff with permission":
            user.user_permissions.add(Permission.objects.get(codename="view_dailyrollup"))
        client.force_login(user)
    headers = {"Authorization": header} if header else {}
    assert client.get("/metrics", headers=headers).status_code == status


def test_no_token_setting_means_no_token_access(settings):
    settings.AG2_LOGGING = {**settings.AG2_LOGGING, "PROMETHEUS_TOKEN": None}
    assert Client().get("/metrics", headers={"Authorization": "Bearer "}).status_code == 403
