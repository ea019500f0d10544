"""The README's Quick start, followed to the letter in a project ``django-admin startproject`` just made.

The last release passed its whole suite and still recorded no calls in such a project: the
post-session chain went to Celery, which a fresh project does not have. Here nothing is set up
beyond what the Quick start says: the settings lines of its first code block are appended to the
generated ``settings.py`` as written (so the test follows the README when it changes), plus one
documented setting, ``PROVIDER_BASE_URLS``, so that the fake LLM server on 127.0.0.1 is priced as
OpenAI instead of as a local model. The package is the one installed (editable) in this virtualenv:
the child processes run in the new project with no ``PYTHONPATH``. The chat script exits without
calling ``ag2_logging.flush()``, as a new user's script would: the process exit must drain the
pipeline. Everything is then read back from another process.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ag2_logging.integrations import classic_available
from ag2_logging.testing import FakeLLMServer
from tests.conftest import TEST_API_KEY, expected_cost

pytestmark = [
    pytest.mark.classic,
    pytest.mark.skipif(not classic_available(), reason="the Quick start's chat is classic AG2 (autogen)"),
]

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DJANGO_ADMIN = Path(sys.executable).parent / "django-admin"
TIMEOUT = 120
#: The one setting added beyond the Quick start (README, Settings): price the fake server as OpenAI.
PRICED_AS_OPENAI = 'AG2_LOGGING = {"PROVIDER_BASE_URLS": {"http://127.0.0.1": "openai"}}\n'
#: Variables of the calling environment that would change what the project does.
_SCRUBBED_PREFIXES = ("AG2_", "AUTOGEN_", "CELERY_", "OPENAI_")
_SCRUBBED = {"PYTHONPATH", "DJANGO_SETTINGS_MODULE", "DATABASE_URL", "LOGS_BASE_DIR"}
RESULT = "QUICKSTART-RESULT:"


def quick_start() -> tuple[str, dict[str, str]]:
    """The settings lines of the Quick start's first code block, and the environment it names."""
    section = README.read_text(encoding="utf-8").split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    settings_lines = next((block for block in blocks if "INSTALLED_APPS" in block), "")
    assert settings_lines, "the Quick start has no python block with the settings"
    environment = dict(re.findall(r"^export ([A-Z0-9_]+)=(\S+)", section, re.M))
    assert environment, "the Quick start names no environment variable to export"
    return settings_lines, environment


def run(project: Path, env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    if ok:
        assert proc.returncode == 0, f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


def shell_json(project: Path, env: dict[str, str], code: str) -> Any:
    """Run ``code`` in ``manage.py shell``; it prints one line ``RESULT`` + JSON."""
    proc = run(project, env, "manage.py", "shell", "-v", "0", "-c", textwrap.dedent(code))
    (line,) = [line for line in proc.stdout.splitlines() if line.startswith(RESULT)]
    return json.loads(line.removeprefix(RESULT))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A fresh ``startproject`` with the Quick start applied and migrated: (its directory, its env)."""
    base = tmp_path_factory.mktemp("quickstart")
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in _SCRUBBED and not key.startswith(_SCRUBBED_PREFIXES)
    }
    subprocess.run(
        [str(DJANGO_ADMIN), "startproject", "mysite", str(base)],
        cwd=base,
        env=env,
        check=True,
        timeout=TIMEOUT,
    )
    settings_lines, environment = quick_start()
    settings = base / "mysite" / "settings.py"
    settings.write_text(settings.read_text(encoding="utf-8") + "\n" + settings_lines + PRICED_AS_OPENAI)
    env.update(environment)

    # The package comes from the installed distribution (editable, from this checkout), not from
    # the working directory or PYTHONPATH.
    where = run(
        base,
        env,
        "-c",
        "import importlib.metadata, ag2_logging, sys; "
        "print(ag2_logging.__file__); print(importlib.metadata.version('django-ag2-logging'))",
    ).stdout.split()
    assert Path(where[0]) == ROOT / "ag2_logging" / "__init__.py"
    assert base != ROOT and not (base / "ag2_logging").exists()

    run(base, env, "manage.py", "migrate", "--no-input")
    return base, env


CHAT = """\
from autogen import AssistantAgent, UserProxyAgent, register_function

from ag2_logging import ag2_logging_session

llm_config = {{
    "config_list": [{{"model": "gpt-4o-mini", "api_key": {api_key!r}, "base_url": {base_url!r}}}],
    "cache_seed": None,
}}


def lookup_order(order_id: str) -> str:
    return f"order {{order_id}}: shipped"


assistant = AssistantAgent("assistant", llm_config=llm_config)
user_proxy = UserProxyAgent(
    "user_proxy", human_input_mode="NEVER", code_execution_config=False, max_consecutive_auto_reply=2
)
register_function(lookup_order, caller=assistant, executor=user_proxy, description="Look up an order.")

with ag2_logging_session("c1", "quickstart", "acme"):
    user_proxy.initiate_chat(
        assistant, message='Where is order 42? [[tool:lookup_order {{"order_id": "42"}}]]', max_turns=2
    )
# No ag2_logging.flush(): a new user's script just ends, and the exit drains the pipeline.
"""

READ_BACK = f"""\
import json
from django.db.models import Sum
from ag2_logging.models import AgentEvent, DailyRollup, LLMCall, Session, ToolCall

session = Session.objects.get()
calls = list(LLMCall.objects.order_by("started_at"))
rollups = DailyRollup.objects.aggregate(calls=Sum("call_count"), cost=Sum("cost"))
print({RESULT!r} + json.dumps({{
    "session": {{
        "chat_id": session.chat_id,
        "workflow_name": session.workflow_name,
        "enterprise_id": session.enterprise_id,
        "status": session.status,
        "call_count": session.call_count,
        "total_cost": str(session.total_cost),
        "sanitized_at": bool(session.sanitized_at),
        "ingested_at": bool(session.ingested_at),
        "summarized_at": bool(session.summarized_at),
        "pipeline_error": session.pipeline_error,
    }},
    "calls": [
        {{
            "session": str(c.session_id),
            "provider": c.provider,
            "model": c.model,
            "price_status": c.price_status,
            "cost": str(c.cost),
            "tokens": [c.prompt_tokens, c.completion_tokens, c.cached_tokens, c.reasoning_tokens],
        }}
        for c in calls
    ],
    "session_id": str(session.pk),
    "tool_calls": list(ToolCall.objects.values_list("name", flat=True)),
    "agent_events": AgentEvent.objects.filter(session=session).count(),
    "rollup_calls": rollups["calls"],
    "rollup_cost": str(rollups["cost"]),
}}))
"""


def test_quick_start_records_a_classic_chat_without_celery(
    project: tuple[Path, dict[str, str]], llm: FakeLLMServer
) -> None:
    base, env = project
    (base / "quickstart_chat.py").write_text(CHAT.format(api_key=TEST_API_KEY, base_url=llm.base_url))
    chat = run(base, env, "manage.py", "shell", "-v", "0", "-c", "import quickstart_chat")
    assert "Traceback" not in chat.stderr, chat.stderr

    served = llm.successful()
    assert len(served) == 2 and served[0].tool_call == "lookup_order", served
    usage = llm.total_usage()

    got = shell_json(base, env, READ_BACK)
    session = got["session"]
    assert session == {
        "chat_id": "c1",
        "workflow_name": "quickstart",
        "enterprise_id": "acme",
        "status": "completed",
        "call_count": len(served),
        "total_cost": session["total_cost"],
        "sanitized_at": True,
        "ingested_at": True,
        "summarized_at": True,
        "pipeline_error": "",
    }

    calls = got["calls"]
    assert len(calls) == len(served)
    assert {c["session"] for c in calls} == {got["session_id"]}
    assert [sum(c["tokens"][i] for c in calls) for i in range(4)] == [
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.cached_tokens,
        usage.reasoning_tokens,
    ]
    for call, request in zip(calls, served, strict=True):
        assert (call["provider"], call["model"], call["price_status"]) == ("openai", "gpt-4o-mini", "priced")
        assert request.usage is not None
        assert Decimal(call["cost"]) == expected_cost(
            "gpt-4o-mini",
            request.usage.prompt_tokens,
            request.usage.completion_tokens,
            request.usage.cached_tokens,
            request.usage.reasoning_tokens,
        )
    cost = sum((Decimal(c["cost"]) for c in calls), Decimal(0))
    assert cost > 0
    assert Decimal(session["total_cost"]) == cost

    assert got["tool_calls"] == ["lookup_order"]
    assert got["agent_events"] > 0
    assert got["rollup_calls"] == len(served)
    assert Decimal(got["rollup_cost"]) == cost

    report = json.loads(
        run(base, env, "manage.py", "ag2_logging_report", "overview", "--format", "json").stdout
    )
    (total,) = [row for row in report["rows"] if row["dimension"] == "total"]
    assert total["calls"] == len(served)
    assert total["sessions"] == 1
    assert total["cost_complete"] == "yes"
    assert Decimal(total["cost"]) == cost


def test_check_and_doctor_say_the_pipeline_runs_inline(project: tuple[Path, dict[str, str]]) -> None:
    base, env = project
    plain = run(base, env, "manage.py", "check")
    assert "System check identified no issues" in plain.stdout, plain.stdout + plain.stderr
    # startproject's own settings fail some deploy checks (Django 6.1: the console MAILERS
    # backend is mail.E001): only this app's messages are asserted; it raises no error of its own.
    check = run(base, env, "manage.py", "check", "--deploy", ok=False)
    output = check.stdout + check.stderr
    (line,) = [line for line in output.splitlines() if "ag2_logging.I001" in line]
    assert "inline" in line, output
    assert "(ag2_logging.E" not in output and "(ag2_logging.W" not in output, output

    doctor = run(base, env, "manage.py", "ag2_logging_doctor")
    assert "pipeline mode: inline" in doctor.stdout, doctor.stdout
    checks = json.loads(run(base, env, "manage.py", "ag2_logging_doctor", "--json").stdout)
    assert [c["check"] for c in checks if c["ok"] is False] == []
