"""With logging on, AG2 is attached when the project imports it, not at start-up.

``django.setup()`` with logging on used to import the installed generation's package to attach
to it (``autogen`` imports the OpenAI SDK and its clients: about 3 s per process on a 2-core VM),
so every ``manage.py migrate`` or ``check`` paid for AG2 without using it. Now a finder on
``sys.meta_path`` attaches right after the package's ``__init__`` has run, before the project can
build an agent. Each case runs in a fresh interpreter: in this one AG2 is imported already.
"""

from __future__ import annotations

import json
import textwrap
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ag2_logging.integrations import ag2_available, classic_available
from ag2_logging.models import LLMCall, Session
from ag2_logging.testing import FakeLLMServer
from tests.support import child_env, run_child

#: An API key no pattern knows: only a value remembered from an agent's config is scrubbed, and
#: the config is read when AG2 reports the agent, so attaching after it is built would miss it.
KEY = "qzvmwpxkrtlnbhydqzvmwpxk"

PRELUDE = """
    import json, os, sys
    import django
    django.setup()
    at_setup = sorted(name for name in ("autogen", "ag2") if name in sys.modules)
"""

CLASSIC = """
    import autogen  # the project imports AG2: attached here
    from ag2_logging import ag2_logging_session, flush
    from ag2_logging.integrations import classic
    from ag2_logging.redaction import redact_text
    cfg = {"config_list": [{"model": "gpt-4o-mini", "api_key": KEY, "base_url": os.environ["LLM_URL"]}],
           "cache_seed": None}
    assistant = autogen.AssistantAgent("assistant", llm_config=cfg)  # before any session
    user = autogen.UserProxyAgent("user", human_input_mode="NEVER", code_execution_config=False,
                                  max_consecutive_auto_reply=1)
    attached = classic.is_installed()
    with ag2_logging_session("attach-classic", "wf", "acme") as recorder:
        user.initiate_chat(assistant, message="hi [[terminate]]", max_turns=1, silent=True)
    flush()
"""

AG2 = """
    import asyncio
    import ag2  # the project imports AG2: attached here
    from ag2.config import OpenAIConfig
    from ag2_logging import ag2_logging_session, flush
    from ag2_logging.integrations import ag2 as integration
    from ag2_logging.redaction import redact_text
    config = OpenAIConfig(model="gpt-4o-mini", api_key=KEY, base_url=os.environ["LLM_URL"], max_retries=0)
    agent = ag2.Agent("assistant", config=config)  # before any session, no logging_middleware()
    attached = integration.is_installed()
    async def main():
        with ag2_logging_session("attach-ag2", "wf", "acme") as recorder:
            await agent.ask("hi")
        return recorder
    recorder = asyncio.run(main())
    flush()
"""

REPORT = """
    print(json.dumps({"at_setup": at_setup, "attached": attached, "scrubbed": KEY not in redact_text("key " + KEY),
                      "session": str(recorder.session_id)}))
"""

#: Each generation's test runs in its own virtualenv and is skipped, by name, in the other.
ONLY_WITH = {
    "classic": pytest.mark.skipif(not classic_available(), reason="classic AG2 (autogen)"),
    "ag2": pytest.mark.skipif(not ag2_available(), reason="ag2 1.x"),
}


def each_generation(values: dict[str, str]) -> list[Any]:
    """``values`` (generation -> parameter) as parameters, each skipped where it is not installed."""
    return [pytest.param(value, marks=ONLY_WITH[name], id=name) for name, value in values.items()]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("chat", each_generation({"classic": CLASSIC, "ag2": AG2}))
def test_setup_imports_no_ag2_and_the_import_attaches_before_the_first_agent(
    chat: str, llm: FakeLLMServer, tmp_path: Path
) -> None:
    script = f"KEY = {KEY!r}\n" + textwrap.dedent(PRELUDE) + textwrap.dedent(chat) + textwrap.dedent(REPORT)
    proc = run_child(script, child_env(tmp_path, LLM_URL=llm.base_url, AG2_LOGGING_PIPELINE="inline"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["at_setup"] == []  # django.setup() with logging on imported neither generation
    assert got["attached"] is True
    assert got["scrubbed"] is True  # the agent's config was seen: the key is remembered
    session = Session.objects.get(pk=uuid.UUID(got["session"]))
    assert session.call_count == 1 and session.ingested_at is not None
    (call,) = LLMCall.objects.filter(session=session)
    assert call.provider == "openai" and call.cost is not None and call.cost > Decimal(0)
    assert len(llm.successful()) == 1


@pytest.mark.django_db(transaction=True)
def test_a_prefork_workers_children_inherit_ag2_from_its_main_process(tmp_path: Path) -> None:
    """A Celery worker is the exception: its main process imports and attaches AG2 when it starts
    (``worker_init``), so the pool's children share it instead of each importing it."""
    from celery import Celery

    from tests.support import BROKER_URL, celery_worker, wait_for

    out = tmp_path / "inherited.json"
    with celery_worker(tmp_path, concurrency=1) as (queue, _log):
        Celery(broker=BROKER_URL, set_as_current=False).send_task(
            "tests.ag2_inherited", args=(str(out),), queue=queue
        )
        wait_for(out.exists, what="the task's report")
    got = json.loads(out.read_text())
    installed = {"autogen": classic_available(), "ag2": ag2_available()}
    assert got["loaded"] == installed
    assert got["classic_attached"] is classic_available()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("generation", each_generation({"classic": "classic", "ag2": "ag2"}))
def test_importing_the_integration_module_first_attaches_once_it_has_loaded(
    generation: str, tmp_path: Path
) -> None:
    """The integration module imports the package at its top: the attach that import triggers
    waits for the module (it once ran on the half-loaded module and failed with a traceback)."""
    script = textwrap.dedent(
        f"""
        import importlib, json
        import django
        django.setup()
        module = importlib.import_module("ag2_logging.integrations.{generation}")
        print(json.dumps({{"attached": module.is_installed()}}))
        """
    )
    proc = run_child(script, child_env(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "could not attach" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"attached": True}
