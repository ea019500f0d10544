from __future__ import annotations

import os
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import tests.celery_app  # binds shared tasks to the test Celery app (eager)
from ag2_logging import flush
from ag2_logging.capture import unattributed
from ag2_logging.capture.context import bindings, current_session
from ag2_logging.conf import conf
from ag2_logging.integrations import ag2_available, classic_available
from ag2_logging.pipeline import db as db_habits
from ag2_logging.testing import FakeLLMServer

TEST_API_KEY = "sk-test-Zq8c1x9VbN3mK2pL7wR4tY6uI0oPaSdF"

# The two AG2 generations cannot share a virtualenv (their openai majors conflict), so `make test`
# runs the suite once per generation: `.venv` (classic `autogen`) and `.venv-ag2` (`ag2` 1.x,
# `make test-ag2`). A module that imports a generation at its top (or imports tests.test_classic)
# is collected only where that generation is installed; tests/ag2/ holds the ag2 1.x tests; every
# other module is the shared suite and runs in both. The header of each run names what it leaves
# out, and tests/test_generations.py checks the split.
TESTS_DIR = Path(__file__).resolve().parent

# No test talks TLS to anyone (the fake LLM server, the S3 server and every service are plain TCP
# on loopback), yet each OpenAI client that AG2 makes builds an SSL context from certifi's bundle:
# 100-300 ms per client with OpenSSL 3.0 on a slow machine, minutes over the suite. The suite
# trusts one certificate instead, whose key was thrown away when it was made: a context then
# costs about a millisecond, and a test that reached a real HTTPS server would fail to verify it
# rather than pass. Subprocesses (workers, other hosts, the Quick-start project) inherit it.
os.environ["SSL_CERT_FILE"] = str(TESTS_DIR / "no_tls_ca.pem")
_CLASSIC_IMPORT = re.compile(r"^(?:import autogen\b|from autogen\b|from tests\.test_classic import)", re.M)
_AG2_IMPORT = re.compile(r"^(?:import ag2\b|from ag2\b)(?!_)", re.M)


def _modules_importing(pattern: re.Pattern[str]) -> list[str]:
    return sorted(
        p.name for p in TESTS_DIR.glob("test_*.py") if pattern.search(p.read_text(encoding="utf-8"))
    )


def _closure(found: list[str]) -> list[str]:
    """Add the modules that import a module of ``found`` (``from tests.test_x import ...``)."""
    found = list(found)
    while True:
        stems = "|".join(name.removesuffix(".py") for name in found)
        more = [name for name in _modules_importing(re.compile(rf"^\s*from tests\.(?:{stems}) import", re.M))]
        new = sorted(set(more) - set(found))
        if not new:
            return sorted(found)
        found += new


CLASSIC_ONLY = _closure(_modules_importing(_CLASSIC_IMPORT))
AG2_ONLY = ["ag2", *_modules_importing(_AG2_IMPORT)]  # the directory (its conftest imports ag2)
collect_ignore_glob = [
    *(CLASSIC_ONLY if not classic_available() else []),
    *(AG2_ONLY if not ag2_available() else []),
]


def pytest_collection_finish(session: pytest.Session) -> None:
    """The suite's Celery app is the current and default one for every test.

    Collecting a test that imports the demo project (``example_project.demo...``) runs
    ``example_project/__init__``, which creates the demo's Celery app, and a new Celery app makes
    itself current: the eager tasks and the pipeline's mode then read the demo's app (no
    ``task_always_eager``, no broker), and tests of Celery mode failed only in the full run."""
    tests.celery_app.app.set_current()
    tests.celery_app.app.set_default()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    installed = [name for name, ok in (("classic", classic_available()), ("ag2", ag2_available())) if ok]
    left_out = ", ".join(collect_ignore_glob) or "nothing"
    terminalreporter.write_line(
        f"AG2 generations installed: {', '.join(installed) or 'none'}; not collected here: {left_out} "
        "(the other virtualenv runs them: make test runs both)"
    )


@pytest.fixture(scope="session")
def fake_llm_server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(error_sleep_seconds=1.5) as server:
        yield server


@pytest.fixture(scope="session", autouse=True)
def app_threads_let_go_of_the_test_database(django_db_setup: Any, django_db_blocker: Any) -> Iterator[None]:
    """The app's own threads (the database thread, the pipeline's, the budgets') each keep a
    connection, which PostgreSQL will not drop the test database under ("is being accessed by
    other users": the database was left behind). Torn down before the test database is."""
    yield
    flush()
    from django.db import connections

    with django_db_blocker.unblock():
        for connection in connections.all():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )


@pytest.fixture
def llm(fake_llm_server: FakeLLMServer) -> FakeLLMServer:
    # A request an earlier test's client gave up on ([[fail:timeout]]) may still be answered
    # (the server sleeps, then records a 499): it must land before the reset, not in this test.
    assert fake_llm_server.wait_idle(30), "the fake LLM server is still answering an earlier test"
    fake_llm_server.reset()
    return fake_llm_server


@pytest.fixture(autouse=True)
def logs_dir(tmp_path: Path, settings: Any) -> Iterator[Path]:
    """Each test writes its runtime log and journals under its own tmp_path."""
    settings.AG2_LOGGING = {**settings.AG2_LOGGING, "LOG_FILE": str(tmp_path / "logs" / "ag2_runtime.log")}
    conf.reload()
    unattributed.reset()
    yield tmp_path / "logs"
    flush()
    # Every database-thread job queued in the test has run or was withdrawn: one left counted
    # would make the pipeline wait before each of its queries for the rest of the process.
    assert db_habits._callers == 0, "a database-thread job is still counted after flush()"
    conf.reload()


@pytest.fixture(autouse=True)
def fresh_price_overrides() -> Iterator[None]:
    """Each test prices with its own database's overrides: the process-wide cache is not
    invalidated when a test's rows are flushed (no delete signal is sent)."""
    from ag2_logging.pricing import cache

    cache.invalidate()
    yield
    cache.invalidate()


@pytest.fixture(autouse=True)
def no_session_leaks() -> Iterator[None]:
    yield
    assert current_session.get() is None, "a test left a session bound in the context"
    assert len(bindings) == 0, "a test left AG2 objects bound to a session"


def llm_config(server: FakeLLMServer, model: str = "gpt-4o-mini", **extra: Any) -> dict[str, Any]:
    entry = {"model": model, "api_key": TEST_API_KEY, "base_url": server.base_url, **extra}
    return {"config_list": [entry], "cache_seed": None}


def expected_cost(
    model: str, prompt: int, completion: int, cached: int, reasoning: int, *, provider_id: str = "openai"
) -> Decimal:
    """OpenAI-convention usage priced through genai-prices' own API (independent of our code)."""
    import genai_prices

    usage = genai_prices.Usage(input_tokens=prompt, cache_read_tokens=cached, output_tokens=completion)
    return genai_prices.calc_price(usage, model, provider_id=provider_id).total_price


def genai_calc(model: str, provider_id: str, usage: Any, at: Any = None) -> Any:
    """genai-prices' own ``PriceCalculation`` for a ``NormalizedUsage`` (the app's convention maps
    one to one onto genai-prices' nested units), at ``at`` (None: now); the tests' oracle."""
    import genai_prices

    return genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=usage.prompt_tokens,
            cache_read_tokens=usage.cached_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            output_tokens=usage.completion_tokens,
            output_reasoning_tokens=usage.reasoning_tokens,
        ),
        model,
        provider_id=provider_id,
        genai_request_timestamp=at,
    )
