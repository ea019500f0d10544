"""Endpoints and provider ids, by kind (the tester's faults on issue 15, items 3, 12 and 14):

* ``<provider>@local`` is read as ``<provider>`` by every per-provider table: usage reports and
  shapes, genai-prices look-ups, overrides (every provider of the tables x plain and @local; a
  real classic agent behind an unmapped loopback proxy for Claude, Gemini and Grok);
* ``PROVIDER_BASE_URLS`` keys and base URLs are normalized alike before a whole-segment prefix
  match (a table of spellings, and a property over combined spellings);
* every spelling of a loopback or unspecified address the resolver accepts is local (a table,
  and a property with the C library's ``inet_aton`` as the oracle).

Expected prices come from genai-prices' own ``calc_price``, token sums by hand.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import autogen
import genai_prices
import pytest
from genai_prices.data import providers as gp_providers
from hypothesis import assume, given
from hypothesis import strategies as st

from ag2_logging import ag2_logging_session, pricing
from ag2_logging.conf import conf
from ag2_logging.models import LLMCall
from ag2_logging.pricing import NormalizedUsage, PriceOverride, detect_provider, price_call
from ag2_logging.pricing.providers import (
    GENAI_PRICES_PROVIDER_IDS,
    PROVIDER_IDS,
    canonical_host,
    is_local_host,
    normalize_url,
    split_local,
)
from ag2_logging.pricing.usage import (
    USAGE_REPORTS,
    USAGE_SHAPES,
    normalize_usage,
    usage_from_report,
    usage_report,
)
from ag2_logging.testing import FakeLLMServer
from tests.conftest import TEST_API_KEY, genai_calc

AT = datetime(2025, 6, 1, 12, tzinfo=UTC)
USAGE = NormalizedUsage(
    prompt_tokens=12_000,
    completion_tokens=3_000,
    cached_tokens=4_000,
    cache_write_tokens=1_000,
    reasoning_tokens=500,
)


@pytest.fixture(autouse=True)
def _fresh_pricing() -> Iterator[None]:
    pricing.clear_caches()  # the warn-once memory included
    yield
    pricing.clear_caches()


def calc(model: str, provider_id: str, usage: NormalizedUsage) -> Decimal:
    """genai-prices' own price of ``usage`` (the app's convention is genai-prices')."""
    return genai_calc(model, provider_id, usage, AT).total_price


# --- <provider>@local reads <provider>'s rows -------------------------------------------------------

#: Every provider id any per-provider table names, plus a few aliases.
TABLE_PROVIDERS = sorted(
    set(USAGE_REPORTS) | set(USAGE_SHAPES) | set(GENAI_PRICES_PROVIDER_IDS) | set(PROVIDER_IDS) - {"unknown"}
)
ALIASES = {
    "gemini": "google",
    "bedrock": "aws-bedrock",
    "xai": "x-ai",
    "grok": "x-ai",
    "together_ai": "together",
    "fireworks-ai": "fireworks",
}

#: A raw usage object with every field any provider's row reads.
RAW_EVERYTHING: dict[str, Any] = {
    "prompt_tokens": 20_000,
    "completion_tokens": 900,
    "total_tokens": 21_500,
    "prompt_tokens_details": {"cached_tokens": 3_000, "cache_write_tokens": 500},
    "completion_tokens_details": {"reasoning_tokens": 200},
    "prompt_cache_hit_tokens": 3_000,
    "cached_tokens": 3_000,
    "cache_read_input_tokens": 3_000,
    "cache_creation_input_tokens": 500,
}


@pytest.mark.parametrize("provider", TABLE_PROVIDERS + sorted(ALIASES))
@pytest.mark.parametrize("spelling", ["{p}@local", "{P}@LOCAL", " {p} @local "])
def test_local_endpoint_reads_its_providers_usage_rows(provider: str, spelling: str) -> None:
    local = spelling.format(p=provider, P=provider.upper())
    assert split_local(local) == (ALIASES.get(provider, provider), True)
    assert usage_report(local) is usage_report(provider)
    assert usage_from_report(local, RAW_EVERYTHING) == usage_from_report(provider, RAW_EVERYTHING)
    raw = (1_000, 400, 100, 50, 30)  # prompt, completion, cached, reasoning, cache writes
    assert normalize_usage(local, *raw) == normalize_usage(provider, *raw)


# The tester's rows, summed by hand.
@pytest.mark.parametrize(
    ("provider", "usage", "expected"),
    [
        # Claude behind a LiteLLM proxy: prompt_tokens is the whole prompt, cache reads and
        # writes in Anthropic's names.
        ("anthropic@local",
         {"prompt_tokens": 10_000, "completion_tokens": 100, "cache_read_input_tokens": 8_000,
          "cache_creation_input_tokens": 1_000},
         NormalizedUsage(prompt_tokens=10_000, completion_tokens=100, cached_tokens=8_000, cache_write_tokens=1_000)),
        ("aws-bedrock@local",
         {"prompt_tokens": 10_000, "completion_tokens": 100, "cache_read_input_tokens": 8_000,
          "cache_creation_input_tokens": 1_000},
         NormalizedUsage(prompt_tokens=10_000, completion_tokens=100, cached_tokens=8_000, cache_write_tokens=1_000)),
        # Gemini's OpenAI compatibility: 400 - 100 - 50 = 250 thinking tokens, outside completion.
        ("google@local", {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 400},
         NormalizedUsage(prompt_tokens=100, completion_tokens=300, reasoning_tokens=250)),
        ("gemini@local", {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 400},
         NormalizedUsage(prompt_tokens=100, completion_tokens=300, reasoning_tokens=250)),
        # xAI: reasoning reported apart from completion_tokens: 50 + 300.
        ("x-ai@local",
         {"prompt_tokens": 100, "completion_tokens": 50, "completion_tokens_details": {"reasoning_tokens": 300},
          "total_tokens": 450},
         NormalizedUsage(prompt_tokens=100, completion_tokens=350, reasoning_tokens=300)),
        # DeepSeek: the hit count, once.
        ("deepseek@local",
         {"prompt_tokens": 16_000, "prompt_cache_hit_tokens": 12_000, "prompt_cache_miss_tokens": 4_000,
          "completion_tokens": 500, "prompt_tokens_details": {"cached_tokens": 12_000}},
         NormalizedUsage(prompt_tokens=16_000, completion_tokens=500, cached_tokens=12_000)),
    ],
)  # fmt: skip
def test_local_endpoint_usage_rows_by_hand(
    provider: str, usage: dict[str, Any], expected: NormalizedUsage
) -> None:
    assert usage_from_report(provider, usage) == expected


def _known_model(gp_id: str) -> str:
    """The first model of ``gp_id`` with one fixed price set that ``calc_price`` prices by its id."""
    provider = next(p for p in gp_providers if p.id == gp_id)
    for model in provider.models:
        if isinstance(model.prices, list):
            continue
        try:
            calc(model.id, gp_id, USAGE)
        except LookupError:
            continue
        return model.id
    raise AssertionError(f"no model of {gp_id} to price")


PRICED = [*sorted(p for p in GENAI_PRICES_PROVIDER_IDS if p != "google-vertex"), "x-ai", "openrouter"]


@pytest.mark.parametrize("provider", PRICED)
def test_local_endpoint_is_priced_at_its_providers_price(provider: str) -> None:
    gp_id = GENAI_PRICES_PROVIDER_IDS.get(provider, provider)
    model = _known_model(gp_id)
    expected = calc(model, gp_id, USAGE)
    plain = price_call(provider, model, USAGE, at=AT)
    local = price_call(provider + "@local", model, USAGE, at=AT)
    assert (plain.status, plain.cost) == ("priced", expected)
    assert (local.status, local.cost, local.model_ref) == ("inferred", expected, plain.model_ref)


@pytest.mark.parametrize("provider", TABLE_PROVIDERS)
def test_local_endpoint_takes_its_providers_overrides(provider: str) -> None:
    override = PriceOverride(
        provider=provider, model_pattern="some-model", input=Decimal(7), output=Decimal(11)
    )
    other = PriceOverride(provider="nobody", model_pattern="some-model", input=Decimal(1), output=Decimal(1))
    result = price_call(provider + "@local", "some-model", USAGE, at=AT, overrides=[other, override])
    # 12,000 * 7 / 1e6 + 3,000 * 11 / 1e6
    assert (result.status, result.override, result.cost) == ("override", override, Decimal("0.117"))


def _classic_call(llm: FakeLLMServer, model: str, usage: dict[str, Any]) -> LLMCall:
    config = {"model": model, "api_key": TEST_API_KEY, "base_url": llm.base_url}
    assistant = autogen.AssistantAgent("assistant", llm_config={"config_list": [config], "cache_seed": None})
    user = autogen.UserProxyAgent(
        "user", human_input_mode="NEVER", code_execution_config=False, max_consecutive_auto_reply=0
    )
    with ag2_logging_session("c-" + model, "wf", "ent"):
        user.initiate_chat(assistant, message=f"hi [[usage_raw:{json.dumps(usage)}]]", max_turns=1)
    return LLMCall.objects.get()


@pytest.fixture
def unmapped_loopback(settings: Any) -> Iterator[None]:
    """The tests' settings map http://127.0.0.1 to openai; a real project often does not."""
    settings.AG2_LOGGING = {**settings.AG2_LOGGING, "PROVIDER_BASE_URLS": {}}
    conf.reload()
    yield
    conf.reload()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("unmapped_loopback")
@pytest.mark.parametrize(
    ("model", "usage", "provider", "gp_id", "expected"),
    [
        ("claude-3-5-haiku-20241022",
         {"prompt_tokens": 10_000, "completion_tokens": 100, "total_tokens": 10_100,
          "cache_read_input_tokens": 8_000, "cache_creation_input_tokens": 1_000},
         "anthropic@local", "anthropic",
         NormalizedUsage(prompt_tokens=10_000, completion_tokens=100, cached_tokens=8_000, cache_write_tokens=1_000)),
        ("gemini-2.5-flash", {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 400},
         "google@local", "google", NormalizedUsage(prompt_tokens=100, completion_tokens=300, reasoning_tokens=250)),
        ("grok-3-mini",
         {"prompt_tokens": 100, "completion_tokens": 50, "completion_tokens_details": {"reasoning_tokens": 300},
          "total_tokens": 450},
         "x-ai@local", "x-ai", NormalizedUsage(prompt_tokens=100, completion_tokens=350, reasoning_tokens=300)),
    ],
)  # fmt: skip
def test_real_agent_behind_an_unmapped_loopback_proxy(
    llm: FakeLLMServer,
    model: str,
    usage: dict[str, Any],
    provider: str,
    gp_id: str,
    expected: NormalizedUsage,
) -> None:
    call = _classic_call(llm, model, usage)
    assert (call.provider, call.price_status) == (provider, "inferred")
    got = (call.prompt_tokens, call.completion_tokens, call.cached_tokens, call.cache_write_tokens)
    assert got == (expected.prompt_tokens, expected.completion_tokens, expected.cached_tokens,
                   expected.cache_write_tokens)  # fmt: skip
    assert call.reasoning_tokens == expected.reasoning_tokens
    price = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=expected.prompt_tokens,
            cache_read_tokens=expected.cached_tokens,
            cache_write_tokens=expected.cache_write_tokens,
            output_tokens=expected.completion_tokens,
            output_reasoning_tokens=expected.reasoning_tokens,
        ),
        model,
        provider_id=gp_id,
    ).total_price
    assert call.cost == price
    if model.startswith("claude"):
        assert price == Decimal("0.00284")  # the tester's figure


# --- PROVIDER_BASE_URLS: normalized keys and URLs, whole-segment prefixes ----------------------------

GATEWAY = {"https://gateway.corp/v1": "groq"}


@pytest.mark.parametrize(
    ("base_url_map", "url", "provider"),
    [
        (GATEWAY, "https://gateway.corp/v1", "groq"),
        (GATEWAY, "https://user:pw@gateway.corp/v1", "groq"),  # user info
        (GATEWAY, "https://gateway.corp:443/v1", "groq"),  # default port
        (GATEWAY, "https://gateway.corp./v1", "groq"),  # trailing dot
        (GATEWAY, "https://GATEWAY.corp/v1", "groq"),  # case
        (GATEWAY, "HTTPS://Gateway.Corp/v1", "groq"),
        (GATEWAY, "https://gateway.corp/v1/", "groq"),  # trailing slash
        (GATEWAY, "https://gateway.corp//v1", "groq"),  # empty segment
        (GATEWAY, "https://gateway.corp/./v1", "groq"),
        (GATEWAY, "https://gateway.corp/x/../v1", "groq"),
        (GATEWAY, "https://gateway.corp/%76%31", "groq"),  # escaped unreserved characters
        (GATEWAY, "https://gateway.corp/v1/chat/completions", "groq"),
        (GATEWAY, "https://gateway.corp/v1?api-version=1", "groq"),
        (GATEWAY, "  https://gateway.corp/v1  ", "groq"),
        (GATEWAY, "gateway.corp/v1", "groq"),  # no scheme
        ({"https://gateway.corp:443/v1": "groq"}, "https://gateway.corp/v1", "groq"),  # the key's spellings
        ({"https://gateway.corp/v1/": "groq"}, "https://gateway.corp/v1", "groq"),
        ({"https://u:p@GATEWAY.corp./v1": "groq"}, "https://gateway.corp/v1", "groq"),
        ({"gateway.corp": "groq"}, "https://GATEWAY.corp./v1", "groq"),
        ({"https://gateway.corp/openai/v1": "groq"}, "https://gateway.corp/openai//v1", "groq"),
        ({"https://gateway.corp": "groq"}, "https://gateway.corp?x=1", "groq"),
        ({"http://127.1:8000": "groq"}, "http://127.0.0.1:8000/v1", "groq"),  # one address, two spellings
        ({"http://[::ffff:127.0.0.1]:8000": "groq"}, "http://2130706433:8000/v1", "groq"),
        ({"localhost": "groq"}, "http://localhost:11434/v1", "groq"),  # a key without a port: any port
        # Longest prefix wins, by whole segments.
        ({"https://gateway.corp": "openai", "https://gateway.corp/groq": "groq"}, "https://gateway.corp/groq/v1",
         "groq"),
        ({"https://gateway.corp": "openai", "https://gateway.corp/groq": "groq"}, "https://gateway.corp/groqx",
         "openai"),
        # Not a match: /v1 is not /v10, another host, another explicit port.
        (GATEWAY, "https://gateway.corp/v10", "unknown"),
        (GATEWAY, "https://gateway.corp/", "unknown"),
        (GATEWAY, "https://gateway.corporate/v1", "unknown"),
        (GATEWAY, "https://evil.gateway.corp/v1", "unknown"),
        (GATEWAY, "https://gateway.corp:8443/v1", "groq"),  # the key names no port
        ({"https://gateway.corp:8443/v1": "groq"}, "https://gateway.corp/v1", "unknown"),
        ({"https://gateway.corp:8443/v1": "groq"}, "https://gateway.corp:9443/v1", "unknown"),
        ({"https://gateway.corp/V1": "groq"}, "https://gateway.corp/v1", "unknown"),  # paths keep their case
    ],
)  # fmt: skip
def test_base_url_map_matches_normalized_urls(base_url_map: dict[str, str], url: str, provider: str) -> None:
    detected = detect_provider(base_url=url, model="llama-3.3-70b-versatile", base_url_map=base_url_map)
    assert detected == provider


def test_mapped_gateway_is_priced() -> None:
    # Issue 15 item 14's figure: llama-3.3-70b-versatile on groq, 500 prompt and 50 completion tokens.
    provider = detect_provider(
        base_url="https://user:pw@GATEWAY.corp.:443//v1/",
        model="llama-3.3-70b-versatile",
        base_url_map=GATEWAY,
    )
    usage = NormalizedUsage(prompt_tokens=500, completion_tokens=50)
    result = price_call(provider, "llama-3.3-70b-versatile", usage, at=AT)
    assert (provider, result.status) == ("groq", "priced")
    assert result.cost == calc("llama-3.3-70b-versatile", "groq", usage) == Decimal("0.0003345")


@st.composite
def gateway_spellings(draw: st.DrawFn) -> str:
    """``https://gateway.corp/v1[/<tail>]`` spelled any of the ways that reach the same place."""
    host = "".join(c.upper() if draw(st.booleans()) else c for c in "gateway.corp")
    host += "." if draw(st.booleans()) else ""
    scheme = draw(st.sampled_from(["https://", "HTTPS://", "Https://"]))
    userinfo = draw(st.sampled_from(["", "user@", "user:pw@", "u%40x:p%3Aw@"]))
    port = draw(st.sampled_from(["", ":443"]))
    slash = st.sampled_from(["/", "//", "/./", "///"])
    tail = draw(st.lists(st.sampled_from(["chat", "completions", "models"]), max_size=2))
    path = (
        draw(slash) + "v1" + "".join(draw(slash) + part for part in tail) + draw(st.sampled_from(["", "/"]))
    )
    query = draw(st.sampled_from(["", "?api-version=2024-10-21", "#frag"]))
    return f"{scheme}{userinfo}{host}{port}{path}{query}"


@given(url=gateway_spellings())
def test_every_spelling_of_a_mapped_url_matches(url: str) -> None:
    assert detect_provider(base_url=url, base_url_map=GATEWAY) == "groq"
    assert detect_provider(base_url=url.replace("/v1", "/v10", 1), base_url_map=GATEWAY) == "unknown"


def test_normalized_url_shape() -> None:
    key = normalize_url("https://u:p@GATEWAY.corp.:443//a/./b/../c/%7e%2f?q#f")
    assert key is not None
    assert (key.host, key.port, key.path) == ("gateway.corp", None, ("a", "c", "~%2F"))
    assert str(key) == "gateway.corp/a/c/~%2F"
    assert normalize_url("http://[::ffff:7f00:1]:80/") == ("127.0.0.1", None, ())
    assert normalize_url("https://host:notaport/v1") is None
    assert normalize_url("") is None


# --- loopback spellings the resolver accepts --------------------------------------------------------

LOCAL_SPELLINGS = [
    "http://127.0.0.1:4000/v1",
    "http://127.1:4000/v1",
    "http://127.0.1:4000/v1",
    "http://0x7f.1:4000/v1",
    "http://0177.0.0.1:4000/v1",
    "http://2130706433:4000/v1",
    "http://127.255.255.254:4000/v1",
    "http://localhost:4000/v1",
    "http://localhost.:4000/v1",
    "http://LOCALHOST:4000/v1",
    "http://api.localhost.:4000/v1",
    "http://host.docker.internal.:4000/v1",
    "http://[::1]:4000/v1",
    "http://[0:0:0:0:0:0:0:1]:4000/v1",
    "http://[::ffff:127.0.0.1]:4000/v1",
    "http://[::ffff:7f00:1]:4000/v1",
    "http://0:4000/v1",
    "http://0.0.0.0:4000/v1",
    "http://[::]:4000/v1",
    "http://[::ffff:0.0.0.0]:4000/v1",
    "http://user:pw@127.1:4000/v1",
    "127.1:4000",
]
NOT_LOCAL = [
    "http://10.0.0.5:4000/v1",
    "http://128.0.0.1:4000/v1",
    "http://0x80.1:4000/v1",
    "http://2130706432000:4000/v1",  # too large for inet_aton: a name
    "http://127.0.0.1.nip.io:4000/v1",
    "http://localhost.example.com:4000/v1",
    "http://[::2]:4000/v1",
    "http://[::ffff:10.0.0.1]:4000/v1",
    "http://litellm:4000/v1",
]


@pytest.mark.parametrize("url", LOCAL_SPELLINGS)
def test_every_loopback_spelling_is_a_local_endpoint(url: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ag2_logging.pricing"):
        provider = detect_provider(base_url=url, model="gpt-4o-mini")
    assert provider == "openai@local"
    result = price_call(provider, "gpt-4o-mini", USAGE, at=AT)
    assert (result.status, result.cost) == ("inferred", calc("gpt-4o-mini", "openai", USAGE))
    assert [r for r in caplog.records if "PROVIDER_BASE_URLS" in r.getMessage()], "the warning"
    assert detect_provider(base_url=url, model="llama3.1:8b") == "local"


@pytest.mark.parametrize("url", NOT_LOCAL)
def test_other_hosts_are_not_local(url: str) -> None:
    assert detect_provider(base_url=url, model="gpt-4o-mini") == "openai"
    assert detect_provider(base_url=url, model="llama3.1:8b") == "unknown"


def _inet_aton_oracle(text: str) -> str | None:
    """What the C library's inet_aton makes of ``text`` (None: not an address)."""
    try:
        return str(ipaddress.IPv4Address(socket.inet_aton(text)))
    except OSError:
        return None


@st.composite
def ipv4_spellings(draw: st.DrawFn) -> str:
    """An IPv4 address in one of inet_aton's forms: 1 to 4 parts, each decimal, octal or hex."""
    number = draw(st.one_of(st.integers(0x7F000000, 0x7FFFFFFF), st.integers(0, 2**32 - 1)))
    parts = draw(st.integers(1, 4))
    head = [(number >> (24 - 8 * i)) & 0xFF for i in range(parts - 1)]
    values = [*head, number & (2 ** (8 * (5 - parts)) - 1)]

    def spell(value: int) -> str:
        form = draw(st.sampled_from(["dec", "oct", "hex", "HEX"]))
        return {"dec": str(value), "oct": f"0{value:o}", "hex": f"0x{value:x}", "HEX": f"0X{value:X}"}[form]

    return ".".join(spell(value) for value in values)


@given(text=st.one_of(ipv4_spellings(), st.from_regex(r"\A[0-9xX.a-f]{1,16}\Z")))
def test_ipv4_spellings_read_as_inet_aton_reads_them(text: str) -> None:
    assume(".." not in text and text.strip(".") != "")  # empty labels: no host name at all
    if text.endswith("."):
        # The resolver looks a name ending in a dot up in DNS; here it is read without the dot.
        assert canonical_host(text) == canonical_host(text[:-1])
        return
    expected = _inet_aton_oracle(text)
    if expected is None:
        assert canonical_host(text) == text.lower().removesuffix(".")
        return
    assert canonical_host(text) == expected
    address = ipaddress.IPv4Address(expected)
    assert is_local_host(text) == (address.is_loopback or address.is_unspecified)
