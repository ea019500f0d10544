"""Pricing resolution end to end: real classic AG2 agents against the fake LLM server, and the
recorder's own entry point, through the journal, ingest and the session totals (issue 15,
items 1, 3 and 21).

Expected prices come from genai-prices' own ``calc_price``; token sums are the fake server's.
"""

from __future__ import annotations

import logging
import threading
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import autogen
import pytest

from ag2_logging import ag2_logging_session, pricing
from ag2_logging.conf import conf
from ag2_logging.events import LLMCallInput
from ag2_logging.models import LLMCall, Session
from ag2_logging.testing import FakeLLMServer
from tests.conftest import TEST_API_KEY, expected_cost

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_pricing() -> Iterator[None]:
    pricing.clear_caches()  # the warn-once memory included
    yield
    pricing.clear_caches()


@pytest.fixture
def unmapped_loopback(settings: Any) -> Iterator[None]:
    """The tests' settings map http://127.0.0.1 to openai; a real project often does not."""
    settings.AG2_LOGGING = {**settings.AG2_LOGGING, "PROVIDER_BASE_URLS": {}}
    conf.reload()
    yield
    conf.reload()


def price(model: str, provider_id: str, prompt: int, completion: int, cached: int = 0) -> Decimal:
    return expected_cost(model, prompt, completion, cached, 0, provider_id=provider_id)


def add(a: int, b: int) -> int:
    return a + b


def chat(config: dict[str, Any], message: str, *, max_turns: int = 2, cache: Any = None) -> None:
    assistant = autogen.AssistantAgent("assistant", llm_config={"config_list": [config], "cache_seed": None})
    user = autogen.UserProxyAgent(
        "user", human_input_mode="NEVER", code_execution_config=False, max_consecutive_auto_reply=2
    )
    autogen.register_function(add, caller=assistant, executor=user, description="Add two integers.")
    user.initiate_chat(assistant, message=message, max_turns=max_turns, cache=cache)


# --- item 3: a loopback base URL PROVIDER_BASE_URLS does not map --------------------------------


@pytest.mark.usefixtures("unmapped_loopback")
def test_loopback_openai_compatible_server_is_priced_as_the_model_inferred(
    llm: FakeLLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    config = {"model": "gpt-4o-mini", "api_key": TEST_API_KEY, "base_url": llm.base_url}
    with caplog.at_level(logging.WARNING, logger="ag2_logging.pricing"):
        with ag2_logging_session("chat-loopback", "pricing", "acme"):
            chat(config, '[[tool:add {"a": 2, "b": 3}]] [[usage:prompt=1200,completion=300,cached=200]]')

    served = llm.successful()
    assert len(served) == 2
    session = Session.objects.get()
    calls = list(session.llm_calls.order_by("seq"))
    assert len(calls) == 2
    for call, request in zip(calls, served, strict=True):
        usage = request.usage
        assert usage is not None
        assert (call.provider, call.model, call.price_status) == ("openai@local", "gpt-4o-mini", "inferred")
        assert call.price_status == LLMCall.PriceStatus.INFERRED
        assert call.cost == price("gpt-4o-mini", "openai", usage.prompt_tokens, usage.completion_tokens,
                                  usage.cached_tokens)  # fmt: skip
        assert call.cost > 0
    total = llm.total_usage()
    assert session.total_cost == price("gpt-4o-mini", "openai", total.prompt_tokens, total.completion_tokens,
                                       total.cached_tokens)  # fmt: skip
    assert session.unpriced_calls == 0
    warnings = [r.getMessage() for r in caplog.records if "PROVIDER_BASE_URLS" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert llm.base_url.rstrip("/") in warnings[0] and "gpt-4o-mini" in warnings[0]


@pytest.mark.parametrize(
    ("api_type", "model", "base_url_map", "provider", "status"),
    [
        (None, "llama3.1:8b", {}, "local", "local"),  # no provider knows the name
        ("ollama", "gpt-4o-mini", {}, "ollama", "local"),  # api_type ollama
        (None, "gpt-4o-mini", {"http://127.0.0.1": "local"}, "local", "local"),  # mapped to local
    ],
)
def test_loopback_local_rate_cases(
    llm: FakeLLMServer,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
    api_type: str | None,
    model: str,
    base_url_map: dict[str, str],
    provider: str,
    status: str,
) -> None:
    settings.AG2_LOGGING = {
        **settings.AG2_LOGGING,
        "PROVIDER_BASE_URLS": base_url_map,
        "LOCAL_MODEL_RATE": "0.5",
    }
    conf.reload()
    config = {"model": model, "api_key": TEST_API_KEY, "base_url": llm.base_url}
    if api_type:
        config["api_type"] = api_type
    with caplog.at_level(logging.WARNING, logger="ag2_logging.pricing"):
        with ag2_logging_session("chat-local", "pricing", "acme"):
            if api_type == "ollama":
                # AG2's ollama client speaks Ollama's own API: record what it would hand over.
                _record_call(provider=pricing.detect_provider(api_type="ollama", base_url=llm.base_url, model=model),
                             model=model, prompt=1000, completion=500)  # fmt: skip
            else:
                chat(config, "hello [[terminate]] [[usage:prompt=1000,completion=500]]", max_turns=1)
    call = LLMCall.objects.get()
    assert (call.provider, call.price_status) == (provider, status)
    assert call.cost == Decimal(1500) * Decimal("0.5") / 1_000_000
    assert not [r for r in caplog.records if "PROVIDER_BASE_URLS" in r.getMessage()]


def _record_call(**kwargs: Any) -> None:
    from ag2_logging.capture.context import current_session

    recorder = current_session.get()
    assert recorder is not None
    recorder.record(
        LLMCallInput(
            agent_name="assistant",
            provider=kwargs["provider"],
            model=kwargs["model"],
            prompt_tokens=kwargs["prompt"],
            completion_tokens=kwargs["completion"],
            cached_tokens=kwargs.get("cached", 0),
            is_cached=kwargs.get("is_cached", False),
            error=kwargs.get("error", ""),
        )
    )


# --- item 1: a dated Azure deployment through a real classic Azure client -----------------------


class _AzureRoute(BaseHTTPRequestHandler):
    """Azure OpenAI's route (``/openai/deployments/<name>/chat/completions?api-version=``)
    forwarded to the fake server's ``/chat/completions``; the paths seen are kept."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        server: Any = self.server
        server.paths.append(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if "/openai/deployments/" not in self.path:
            self.send_error(404)
            return
        request = urllib.request.Request(
            server.target + "/chat/completions", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as reply:
            payload = reply.read()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def azure_route(llm: FakeLLMServer) -> Iterator[Any]:
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _AzureRoute)
    server.target, server.paths = llm.base_url.rstrip("/"), []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("deployment", "snapshot"),
    [("gpt-35-turbo-1106", "gpt-3.5-turbo-1106"), ("gpt-35-turbo-0613", "gpt-3.5-turbo-0613")],
)
@pytest.mark.usefixtures("unmapped_loopback")
def test_dated_azure_deployment_is_priced_at_its_snapshot(
    llm: FakeLLMServer, azure_route: Any, deployment: str, snapshot: str
) -> None:
    config = {
        "model": deployment,
        "api_type": "azure",
        "api_version": "2024-02-01",
        "api_key": TEST_API_KEY,
        "base_url": f"http://127.0.0.1:{azure_route.server_address[1]}",
    }
    with ag2_logging_session("chat-azure", "pricing", "acme"):
        chat(config, "hi [[terminate]] [[usage:prompt=1000000,completion=1000000]]", max_turns=1)
    assert azure_route.paths and all(f"/openai/deployments/{deployment}/" in p for p in azure_route.paths)
    call = LLMCall.objects.get()
    assert (call.provider, call.model, call.price_status) == ("azure", deployment, "priced")
    assert call.cost == price(snapshot, "azure", 1_000_000, 1_000_000)
    undated = price("gpt-3.5-turbo", "azure", 1_000_000, 1_000_000)
    assert call.cost != undated  # the reported fault stored the undated alias' price
    if deployment == "gpt-35-turbo-1106":
        assert call.cost == Decimal(3)
    assert Session.objects.get().total_cost == call.cost


# --- item 21: cache hits and failed calls through the recorder and ingest ------------------------

GPT4O = price("gpt-4o", "openai", 10_000, 2_000)


@pytest.mark.parametrize(
    ("call", "cost", "status"),
    [
        ({"provider": "openai", "model": "gpt-4o", "is_cached": True}, Decimal(0), "priced"),
        ({"provider": "openai", "model": "made-up-model", "is_cached": True}, Decimal(0), "priced"),
        ({"provider": "ollama", "model": "llama3", "is_cached": True}, Decimal(0), "priced"),
        ({"provider": "openai@local", "model": "gpt-4o", "is_cached": True}, Decimal(0), "priced"),
        ({"provider": "openai", "model": "gpt-4o", "error": "APIError: boom"}, Decimal(0), "priced"),
        ({"provider": "openai", "model": "gpt-4o"}, GPT4O, "priced"),
        ({"provider": "openai@local", "model": "gpt-4o"}, GPT4O, "inferred"),
        ({"provider": "azure", "model": "gpt-35-turbo-1106"}, price("gpt-3.5-turbo-1106", "azure", 10_000, 2_000),
         "priced"),
        ({"provider": "openai", "model": "gpt-4o-mini-2030-12-31"}, price("gpt-4o-mini", "openai", 10_000, 2_000),
         "priced"),
        ({"provider": "openai", "model": "made-up-model"}, None, "unknown"),
    ],
)  # fmt: skip
def test_recorded_call_is_priced_through_ingest(
    call: dict[str, Any], cost: Decimal | None, status: str, settings: Any
) -> None:
    settings.AG2_LOGGING = {**settings.AG2_LOGGING, "LOCAL_MODEL_RATE": "3"}  # cache hits still cost 0
    conf.reload()
    with ag2_logging_session("chat-recorded", "pricing", "acme"):
        _record_call(prompt=10_000, completion=2_000, **call)
        _record_call(provider="openai", model="gpt-4o", prompt=10_000, completion=2_000)  # a priced neighbour
    session = Session.objects.get()
    first, second = session.llm_calls.order_by("seq")
    assert (first.cost, first.price_status, first.is_cached) == (cost, status, call.get("is_cached", False))
    assert (second.cost, second.price_status) == (GPT4O, "priced")
    assert session.total_cost == GPT4O + (cost or 0)
    assert session.unpriced_calls == (cost is None)
    assert (session.prompt_tokens, session.completion_tokens) == (20_000, 4_000)


def test_ag2_cache_hit_of_a_real_chat_costs_nothing(llm: FakeLLMServer, tmp_path: Path) -> None:
    """The same chat twice with one AG2 cache: the second is answered from the cache, is
    recorded with is_cached and costs 0 (AG2 does not ask the server again)."""
    from autogen import Cache

    config = {"model": "gpt-4o-mini", "api_key": TEST_API_KEY, "base_url": llm.base_url}
    message = "hello again [[terminate]] [[usage:prompt=5000,completion=700]]"
    with Cache.disk(cache_seed=41, cache_path_root=str(tmp_path / "ag2-cache")) as cache:
        with ag2_logging_session("chat-first", "pricing", "acme"):
            chat(config, message, max_turns=1, cache=cache)
        with ag2_logging_session("chat-cached", "pricing", "acme"):
            chat(config, message, max_turns=1, cache=cache)
    served = llm.successful()
    assert len(served) == 1  # the second chat never reached the server
    usage = served[0].usage
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (5000, 700)
    first = LLMCall.objects.get(session__chat_id="chat-first")
    cached = LLMCall.objects.get(session__chat_id="chat-cached")
    paid = price("gpt-4o-mini", "openai", 5000, 700, usage.cached_tokens)
    assert (first.is_cached, first.cost, first.price_status) == (False, paid, "priced")
    assert (cached.is_cached, cached.cost, cached.price_status) == (True, Decimal(0), "priced")
    assert (cached.prompt_tokens, cached.completion_tokens, cached.cached_tokens) == (
        5000,
        700,
        usage.cached_tokens,
    )
    assert Session.objects.get(chat_id="chat-cached").total_cost == 0
    assert Session.objects.get(chat_id="chat-cached").unpriced_calls == 0
