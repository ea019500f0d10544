"""Real classic AG2 agents against the fake LLM server: the reply is kept as AG2 received it
(legacy ``function_call`` included), each provider's own usage object is read through the one
usage table, a reply without usage is ``no_usage`` (cost NULL), and the provider comes from the
URL the SDK client really calls.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Annotated, Any

import autogen
import genai_prices
import pytest
from openai.types.chat import ChatCompletion

from ag2_logging import ag2_logging_session
from ag2_logging.conf import conf
from ag2_logging.integrations.classic import _response_body
from ag2_logging.models import LLMCall, Session
from ag2_logging.testing import FakeLLMServer
from tests.conftest import TEST_API_KEY, llm_config
from tests.test_usage_shapes import CASES

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def provider_at(llm: FakeLLMServer, settings: Any) -> Any:
    """Map the fake server's exact URL to a provider (the longest PROVIDER_BASE_URLS prefix wins)."""

    def use(provider: str) -> None:
        urls = {**settings.AG2_LOGGING.get("PROVIDER_BASE_URLS", {}), llm.base_url: provider}
        settings.AG2_LOGGING = {**settings.AG2_LOGGING, "PROVIDER_BASE_URLS": urls}
        conf.reload()

    return use


def one_call(server: FakeLLMServer, model: str, message: str, **config: Any) -> LLMCall:
    assistant = autogen.AssistantAgent("assistant", llm_config=llm_config(server, model, **config))
    user = autogen.UserProxyAgent(
        "user", human_input_mode="NEVER", code_execution_config=False, max_consecutive_auto_reply=0
    )
    with ag2_logging_session("chat-kept", "usage", "acme"):
        user.initiate_chat(assistant, message=message, max_turns=1)
    return LLMCall.objects.get()


def genai_cost(provider: str, model: str, expected: tuple[int, int, int, int, int], at: Any) -> Decimal:
    prompt, completion, cached, _reasoning, write = expected
    usage = genai_prices.Usage(
        input_tokens=prompt, cache_read_tokens=cached, cache_write_tokens=write, output_tokens=completion
    )
    return genai_prices.calc_price(usage, model, provider_id=provider, genai_request_timestamp=at).total_price


# --- item 2: each provider's usage object, served by the fake server to a real agent ----------


#: The chat-completions rows (a native Messages usage, input_tokens, is no chat-completions reply).
#: Every real provider sends total_tokens, which AG2 itself adds up.
SERVED = [
    (provider, model, {"total_tokens": raw["prompt_tokens"] + raw["completion_tokens"], **raw}, expected)
    for provider, model, raw, expected in CASES
    if "prompt_tokens" in raw
]


@pytest.mark.parametrize("case", SERVED, ids=[f"{c[0]}-{i}" for i, c in enumerate(SERVED)])
def test_a_providers_usage_object_is_recorded_once_and_priced(
    llm: FakeLLMServer,
    provider_at: Any,
    case: tuple[str, str, dict[str, Any], tuple[int, int, int, int, int]],
) -> None:
    provider, model, raw, expected = case
    provider_at(provider)
    call = one_call(llm, model, f"[[usage_raw:{json.dumps(raw)}]] hello [[terminate]]")

    assert call.provider == provider
    assert call.status == "success"
    assert (
        call.prompt_tokens,
        call.completion_tokens,
        call.cached_tokens,
        call.reasoning_tokens,
        call.cache_write_tokens,
    ) == expected
    assert call.total_tokens == expected[0] + expected[1]
    assert call.price_status == "priced"
    assert call.cost == genai_cost(provider, model, expected, call.ended_at)
    assert call.response["usage"] == raw  # the provider's own object, as it came
    session = Session.objects.get()
    assert (session.prompt_tokens, session.cached_tokens) == (expected[0], expected[2])


def test_a_reply_without_usage_has_no_price_never_zero(llm: FakeLLMServer) -> None:
    call = one_call(llm, "gpt-4o-mini", "[[usage_raw:null]] hello [[terminate]]")
    assert call.status == "success"
    assert call.price_status == "no_usage"
    assert call.cost is None
    assert call.total_tokens == 0
    session = Session.objects.get()
    assert session.unpriced_calls == 1
    assert session.total_cost is None


# --- item 14, classic side: the URL the SDK client really calls ---------------------------------


def test_provider_comes_from_the_clients_url_not_only_the_config(
    llm: FakeLLMServer, provider_at: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The config has no base_url; the OpenAI SDK takes it from OPENAI_BASE_URL."""
    provider_at("groq")
    monkeypatch.setenv("OPENAI_BASE_URL", llm.base_url)
    assistant = autogen.AssistantAgent(
        "assistant",
        llm_config={
            "config_list": [{"model": "llama-3.3-70b-versatile", "api_key": TEST_API_KEY}],
            "cache_seed": None,
        },
    )
    user = autogen.UserProxyAgent(
        "user", human_input_mode="NEVER", code_execution_config=False, max_consecutive_auto_reply=0
    )
    with ag2_logging_session("chat-env-url", "usage", "acme"):
        user.initiate_chat(
            assistant, message="[[usage:prompt=500,completion=50]] hi [[terminate]]", max_turns=1
        )
    call = LLMCall.objects.get()
    assert len(llm.successful()) == 1
    assert call.provider == "groq"
    expected = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=500, output_tokens=50),
        "llama-3.3-70b-versatile",
        provider_id="groq",
        genai_request_timestamp=call.ended_at,
    ).total_price
    assert call.cost == expected == Decimal("0.0003345")


# --- item 6: the message as AG2 received it -----------------------------------------------------


def lookup_order(order_id: Annotated[str, "The order id"]) -> str:
    return f"order {order_id}: shipped"


def test_a_function_call_reply_keeps_its_function(llm: FakeLLMServer) -> None:
    """register_for_llm(api_style="function"): the legacy functions API."""
    assistant = autogen.AssistantAgent("assistant", llm_config=llm_config(llm, "gpt-4o-mini"))
    user = autogen.UserProxyAgent(
        "user", human_input_mode="NEVER", code_execution_config=False, max_consecutive_auto_reply=1
    )
    assistant.register_for_llm(description="Look an order up.", api_style="function")(lookup_order)
    user.register_for_execution()(lookup_order)
    with ag2_logging_session("chat-function", "usage", "acme"):
        user.initiate_chat(
            assistant, message='[[function:lookup_order {"order_id": "A-1029"}]] where is it?', max_turns=2
        )

    first = LLMCall.objects.order_by("seq").first()
    assert first is not None
    assert "functions" in first.request
    choice = first.response["choices"][0]
    assert choice["finish_reason"] == "function_call"
    message = choice["message"]
    assert message["role"] == "assistant"
    assert message["content"] is None
    assert message["function_call"] == {"name": "lookup_order", "arguments": '{"order_id": "A-1029"}'}
    assert "tool_calls" not in message or not message["tool_calls"]  # never an invented empty list
    assert first.response["id"] == llm.successful()[0].response_id


def test_a_tool_call_reply_keeps_the_openai_shape(llm: FakeLLMServer) -> None:
    assistant = autogen.AssistantAgent("assistant", llm_config=llm_config(llm, "gpt-4o-mini"))
    user = autogen.UserProxyAgent(
        "user", human_input_mode="NEVER", code_execution_config=False, max_consecutive_auto_reply=1
    )
    autogen.register_function(lookup_order, caller=assistant, executor=user, description="Look an order up.")
    with ag2_logging_session("chat-tool", "usage", "acme"):
        user.initiate_chat(assistant, message='[[tool:lookup_order {"order_id": "B-7"}]] where?', max_turns=2)
    first = LLMCall.objects.order_by("seq").first()
    assert first is not None
    call = first.response["choices"][0]["message"]["tool_calls"][0]
    assert call["type"] == "function"
    assert call["function"] == {"name": "lookup_order", "arguments": '{"order_id": "B-7"}'}
    assert call["id"].startswith("call_fake_")


# Parts of a message the fake server never sends: a reply as the openai SDK builds it from a
# provider's JSON (no validation, extras kept), through the function the logger calls.
MESSAGES: list[dict[str, Any]] = [
    {"role": "assistant", "content": None, "refusal": "I can't help with that."},
    {
        "role": "assistant",
        "content": "See the docs.",
        "annotations": [
            {
                "type": "url_citation",
                "url_citation": {
                    "url": "https://example.com/a",
                    "title": "A",
                    "start_index": 0,
                    "end_index": 3,
                },
            }
        ],
    },
    {
        "role": "assistant",
        "content": None,
        "audio": {"id": "audio_1", "data": "UklGRg==", "expires_at": 1, "transcript": "hello"},
    },
    {"role": "assistant", "content": "42", "reasoning_content": "6 times 7"},  # DeepSeek's extra
    {
        "role": "assistant",
        "content": None,
        "function_call": {"name": "lookup_order", "arguments": '{"order_id": "A-1029"}'},
    },
]


@pytest.mark.parametrize(
    "message", MESSAGES, ids=lambda m: next(k for k in m if k not in {"role", "content"})
)
def test_every_part_of_the_message_is_kept(message: dict[str, Any]) -> None:
    reply = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None, "message": message}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
    body = _response_body(ChatCompletion.model_validate(reply))
    assert body["choices"][0]["message"] == message
    assert body["usage"] == reply["usage"]
    assert (body["id"], body["model"]) == ("chatcmpl-1", "gpt-4o-mini")
