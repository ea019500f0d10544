"""ag2_logging.pricing: provider detection, usage normalization and prices.

Every genai-prices price is checked against genai-prices' own public API
(``genai_prices.calc_price(genai_prices.Usage(...), model_ref, provider_id=...)``), never against
a second call of our code. Plain pytest: no database.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import FrozenInstanceError
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, NamedTuple

import genai_prices
import pytest
from genai_prices import data_snapshot as gp_snapshot
from genai_prices.types import ModelPrice, TieredPrices

from ag2_logging import pricing
from ag2_logging.pricing import (
    NormalizedUsage,
    PriceOverride,
    PriceResult,
    canonical_model,
    detect_provider,
    normalize_usage,
    price_call,
    select_override,
    warn_unknown_once,
)
from tests.conftest import genai_calc

AT = datetime(2025, 9, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    pricing.clear_caches()
    yield
    pricing.clear_caches()


def reference(model_ref: str, provider_id: str, usage: NormalizedUsage, at: datetime = AT) -> Any:
    """genai-prices' own price for ``usage``, through its public API.

    genai-prices' units nest: ``input_tokens`` is the parent of ``cache_read_tokens`` and
    ``cache_write_tokens``, ``output_tokens`` the parent of ``output_reasoning_tokens``; that is
    the app's convention, so each count maps to one key.
    """
    return genai_calc(model_ref, provider_id, usage, at)


def U(prompt: int, completion: int, cached: int = 0, reasoning: int = 0, write: int = 0) -> NormalizedUsage:
    return NormalizedUsage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=cached,
        reasoning_tokens=reasoning,
        cache_write_tokens=write,
    )


class Case(NamedTuple):
    provider: str  # our provider id
    model: str  # as logged
    ref_model: str  # the name handed to genai-prices in the reference calculation
    ref_provider: str  # genai-prices provider id
    usage: NormalizedUsage
    at: datetime = AT


PRICED_CASES = [
    # OpenAI: plain, cached, reasoning, dated snapshots (dashed and compact), old MMDD snapshots.
    Case("openai", "gpt-4o", "gpt-4o", "openai", U(1_000, 500)),
    Case("openai", "gpt-4o", "gpt-4o", "openai", U(12_345, 678, cached=10_000)),
    Case("openai", "gpt-4o-2024-08-06", "gpt-4o-2024-08-06", "openai", U(5_000, 1_000, cached=1_024)),
    Case("openai", "gpt-4o-20240806", "gpt-4o-20240806", "openai", U(5_000, 1_000, cached=1_024)),
    Case("openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini", "openai", U(80_000, 4_000, cached=64_000)),
    Case("openai", "gpt-4-0613", "gpt-4-0613", "openai", U(3_000, 200)),
    Case("openai", "o3-mini", "o3-mini", "openai", U(2_000, 3_000, cached=1_536, reasoning=2_500)),
    Case("openai", "o4-mini-2025-04-16", "o4-mini", "openai", U(9_999, 8_888, cached=1_280, reasoning=7_777)),
    Case("openai", "o1", "o1", "openai", U(1, 1, reasoning=1)),
    Case("openai", "gpt-5", "gpt-5", "openai", U(987_654, 123_456, cached=500_000, reasoning=100_000)),
    # o3's price changed on 2025-06-10: both sides of the change.
    Case("openai", "o3", "o3", "openai", U(10_000, 5_000, cached=2_000, reasoning=4_000), AT),
    Case(
        "openai",
        "o3",
        "o3",
        "openai",
        U(10_000, 5_000, cached=2_000, reasoning=4_000),
        datetime(2025, 6, 1, tzinfo=UTC),
    ),
    # Azure: model names, AG2's dotless deployment names, dated snapshots.
    Case("azure", "gpt-4o", "gpt-4o", "azure", U(4_000, 800, cached=2_048)),
    Case("azure", "gpt-35-turbo", "gpt-35-turbo", "azure", U(1_500, 300)),
    Case("azure", "gpt-4o-2024-08-06", "gpt-4o-2024-08-06", "azure", U(4_000, 800)),
    Case("azure", "gpt-41-mini", "gpt-4.1-mini", "azure", U(4_000, 800, cached=1_024)),
    Case("azure", "gpt-4", "gpt-4", "azure", U(100, 100)),
    # Anthropic: cache reads and writes, tiers on either side of 200K (the start is exclusive).
    Case(
        "anthropic",
        "claude-3-5-sonnet-20241022",
        "claude-3-5-sonnet-20241022",
        "anthropic",
        U(30_000, 1_200, cached=20_000, write=5_000),
    ),
    Case(
        "anthropic", "claude-3-haiku-20240307", "claude-3-haiku-20240307", "anthropic", U(900, 90, write=800)
    ),
    Case(
        "anthropic",
        "claude-sonnet-4-20250514",
        "claude-sonnet-4-20250514",
        "anthropic",
        U(50_000, 4_000, cached=30_000, reasoning=1_500, write=10_000),
    ),
    Case(
        "anthropic",
        "claude-sonnet-4-5",
        "claude-sonnet-4-5",
        "anthropic",
        U(200_000, 2_000, cached=150_000, write=10_000),
    ),
    Case(
        "anthropic",
        "claude-sonnet-4-5",
        "claude-sonnet-4-5",
        "anthropic",
        U(200_001, 2_000, cached=150_000, write=10_000),
    ),
    Case("anthropic", "claude-opus-4-1", "claude-opus-4-1", "anthropic", U(7_000, 3_000, cached=6_000)),
    # Gemini API: cached content, thoughts, tiers, SDK resource names.
    Case(
        "google",
        "gemini-2.5-flash",
        "gemini-2.5-flash",
        "google",
        U(20_000, 5_000, cached=8_000, reasoning=3_000),
    ),
    Case(
        "google",
        "gemini-2.5-pro",
        "gemini-2.5-pro",
        "google",
        U(150_000, 9_000, cached=100_000, reasoning=4_000),
    ),
    Case(
        "google",
        "gemini-2.5-pro",
        "gemini-2.5-pro",
        "google",
        U(250_000, 9_000, cached=100_000, reasoning=4_000),
    ),
    Case("google", "gemini-2.0-flash-001", "gemini-2.0-flash-001", "google", U(1_000, 1_000)),
    Case("google", "models/gemini-2.5-flash", "gemini-2.5-flash", "google", U(1_000, 1_000, cached=500)),
    Case("google", "gemini-1.5-pro", "gemini-1.5-pro", "google", U(300_000, 1_000)),
    # Vertex AI: Gemini versions and Claude with an @version.
    Case("google-vertex", "gemini-1.5-pro@002", "gemini-1.5-pro@002", "google", U(10_000, 1_000)),
    Case(
        "google-vertex",
        "claude-3-5-sonnet-v2@20241022",
        "claude-3-5-sonnet-v2@20241022",
        "google",
        U(10_000, 1_000, cached=4_000, write=2_000),
    ),
    # Mistral.
    Case("mistral", "mistral-large-latest", "mistral-large-latest", "mistral", U(3_000, 1_000)),
    Case("mistral", "mistral-large-2411", "mistral-large-2411", "mistral", U(3_000, 1_000)),
    Case("mistral", "codestral-latest", "codestral-latest", "mistral", U(3_000, 1_000)),
    Case("mistral", "open-mixtral-8x7b", "open-mixtral-8x7b", "mistral", U(3_000, 1_000)),
    # Groq.
    Case("groq", "llama-3.3-70b-versatile", "llama-3.3-70b-versatile", "groq", U(6_000, 2_000)),
    Case("groq", "mixtral-8x7b-32768", "mixtral-8x7b-32768", "groq", U(6_000, 2_000)),
    # DeepSeek: cache hits, reasoner, off-peak (16:30-00:30 UTC) and standard hours.
    Case("deepseek", "deepseek-chat", "deepseek-chat", "deepseek", U(10_000, 2_000, cached=6_000), AT),
    Case(
        "deepseek",
        "deepseek-chat",
        "deepseek-chat",
        "deepseek",
        U(10_000, 2_000, cached=6_000),
        datetime(2025, 9, 1, 20, 0, tzinfo=UTC),
    ),
    Case(
        "deepseek",
        "deepseek-reasoner",
        "deepseek-reasoner",
        "deepseek",
        U(10_000, 8_000, cached=6_000, reasoning=6_500),
        datetime(2025, 9, 1, 8, 0, tzinfo=timezone(timedelta(hours=-5))),
    ),
    # Bedrock: on-demand and cross-region inference ids, Anthropic cache, Nova, Llama.
    Case(
        "aws-bedrock",
        "anthropic.claude-3-5-sonnet-20240620-v1:0",
        "anthropic.claude-3-5-sonnet-20240620-v1:0",
        "aws",
        U(40_000, 2_000, cached=30_000, write=5_000),
    ),
    Case(
        "aws-bedrock",
        "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
        "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
        "aws",
        U(40_000, 2_000, cached=30_000, reasoning=900, write=5_000),
    ),
    Case("aws-bedrock", "amazon.nova-pro-v1:0", "amazon.nova-pro-v1:0", "aws", U(5_000, 700, cached=1_000)),
    Case(
        "aws-bedrock", "meta.llama3-70b-instruct-v1:0", "meta.llama3-70b-instruct-v1:0", "aws", U(5_000, 700)
    ),
    # Together, Cohere, Cerebras.
    Case(
        "together",
        "meta-llama/Llama-3.3-70B-Instruct-Turbo",
        "meta-llama/Llama-3.3-70B-Instruct-Turbo",
        "together",
        U(2_000, 500),
    ),
    Case("cohere", "command-r-plus", "command-r-plus", "cohere", U(2_000, 500)),
    Case("cerebras", "llama3.1-8b", "llama3.1-8b", "cerebras", U(2_000, 500)),
    # A genai-prices provider id passed through unchanged: a per-request price, and reasoning
    # priced apart from other output.
    Case("perplexity", "sonar", "sonar", "perplexity", U(2_000, 500)),
    Case(
        "perplexity",
        "sonar-deep-research",
        "sonar-deep-research",
        "perplexity",
        U(2_000, 5_000, reasoning=3_000),
    ),
    # Nothing used.
    Case("openai", "gpt-4o", "gpt-4o", "openai", U(0, 0)),
]


@pytest.mark.parametrize(
    "case", PRICED_CASES, ids=lambda c: f"{c.provider}:{c.model}:{c.usage.prompt_tokens}"
)
def test_price_matches_genai_prices(case: Case) -> None:
    expected = reference(case.ref_model, case.ref_provider, case.usage, case.at)

    first = price_call(case.provider, case.model, case.usage, at=case.at)
    again = price_call(case.provider, case.model, case.usage, at=case.at)  # from the cache

    for result in (first, again):
        assert result.status == "priced"
        assert result.cost == expected.total_price
        assert result.input_cost == expected.input_price
        assert result.output_cost == expected.output_price
        assert result.model_ref == expected.model.id
        assert result.provider == case.provider
        assert result.override is None
        assert isinstance(result.cost, Decimal)


def test_time_dependent_prices_differ() -> None:
    usage = U(10_000, 2_000, cached=6_000)
    standard = price_call("deepseek", "deepseek-chat", usage, at=datetime(2025, 9, 1, 12, 0, tzinfo=UTC))
    off_peak = price_call("deepseek", "deepseek-chat", usage, at=datetime(2025, 9, 1, 20, 0, tzinfo=UTC))
    assert off_peak.cost is not None
    assert standard.cost is not None
    assert off_peak.cost < standard.cost


def test_tier_applies_to_whole_count_above_threshold() -> None:
    below = price_call("google", "gemini-2.5-pro", U(200_000, 1_000), at=AT)
    above = price_call("google", "gemini-2.5-pro", U(200_001, 1_000), at=AT)
    assert below.cost is not None
    assert above.cost is not None
    assert above.cost > below.cost * Decimal("1.5")


def test_default_time_is_now() -> None:
    usage = U(10_000, 2_000, cached=6_000)
    before = datetime.now(UTC)
    result = price_call("deepseek", "deepseek-chat", usage)
    after = datetime.now(UTC)
    candidates = {
        reference("deepseek-chat", "deepseek", usage, moment).total_price for moment in (before, after)
    }
    assert result.cost in candidates


# --- the token convention: nothing counted twice ------------------------------------------------


def _rates(provider_id: str, model_ref: str) -> ModelPrice:
    calc = genai_prices.calc_price(genai_prices.Usage(input_tokens=0), model_ref, provider_id=provider_id)
    return calc.model_price


@pytest.mark.parametrize(
    ("provider", "model", "provider_id"),
    [
        ("openai", "gpt-4o", "openai"),
        ("anthropic", "claude-3-5-sonnet-20241022", "anthropic"),
        ("aws-bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0", "aws"),
        ("google", "gemini-2.5-flash", "google"),
        ("deepseek", "deepseek-chat", "deepseek"),
    ],
)
def test_each_token_is_priced_once(provider: str, model: str, provider_id: str) -> None:
    usage = U(100_000, 20_000, cached=60_000, reasoning=15_000, write=10_000)
    at = datetime(2025, 9, 1, 12, 0, tzinfo=UTC)
    rates = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=0), model, provider_id=provider_id, genai_request_timestamp=at
    ).model_price
    input_rate = rates.input_mtok
    output_rate = rates.output_mtok
    assert isinstance(input_rate, Decimal)
    assert isinstance(output_rate, Decimal)
    read_rate = rates.cache_read_mtok if rates.cache_read_mtok is not None else input_rate
    write_rate = rates.cache_write_mtok if rates.cache_write_mtok is not None else input_rate
    assert isinstance(read_rate, Decimal)
    assert isinstance(write_rate, Decimal)
    # 100,000 prompt = 30,000 uncached + 60,000 cache reads + 10,000 cache writes.
    expected_input = (30_000 * input_rate + 60_000 * read_rate + 10_000 * write_rate) / 1_000_000
    expected_output = 20_000 * output_rate / 1_000_000  # reasoning is output, inside the 20,000

    result = price_call(provider, model, usage, at=at)

    assert result.input_cost == expected_input
    assert result.output_cost == expected_output
    assert result.cost == expected_input + expected_output


def test_normalized_anthropic_report_prices_like_genai_prices_extractor() -> None:
    # A raw Anthropic response, priced by genai-prices' own extractor, and by us after normalizing.
    response = {
        "model": "claude-3-5-sonnet-20241022",
        "usage": {
            "input_tokens": 1_000,
            "cache_read_input_tokens": 20_000,
            "cache_creation_input_tokens": 5_000,
            "output_tokens": 700,
        },
    }
    extracted = genai_prices.extract_usage(response, provider_id="anthropic")
    expected = extracted.calc_price(genai_request_timestamp=AT)

    usage = normalize_usage("anthropic", 1_000, 700, cached_tokens=20_000, cache_write_tokens=5_000)
    result = price_call("anthropic", "claude-3-5-sonnet-20241022", usage, at=AT)

    assert usage.prompt_tokens == 26_000
    assert result.cost == expected.total_price


def test_normalized_openai_report_prices_like_genai_prices_extractor() -> None:
    response = {
        "model": "o3-mini",
        "usage": {
            "prompt_tokens": 5_000,
            "completion_tokens": 3_000,
            "prompt_tokens_details": {"cached_tokens": 4_096},
            "completion_tokens_details": {"reasoning_tokens": 2_500},
        },
    }
    extracted = genai_prices.extract_usage(response, provider_id="openai", api_flavor="chat")
    expected = extracted.calc_price(genai_request_timestamp=AT)

    usage = normalize_usage("openai", 5_000, 3_000, cached_tokens=4_096, reasoning_tokens=2_500)
    result = price_call("openai", "o3-mini", usage, at=AT)

    assert result.cost == expected.total_price


# --- every model of the main providers -----------------------------------------------------------

SWEEP_USAGES = [
    U(1, 1),
    U(12_345, 6_789, cached=4_321, reasoning=1_234, write=1_000),
    U(250_000, 40_000, cached=100_000, reasoning=30_000, write=50_000),
]


@pytest.mark.parametrize(
    "provider",
    [
        "openai",
        "azure",
        "anthropic",
        "google",
        "aws-bedrock",
        "mistral",
        "groq",
        "deepseek",
        "together",
        "cohere",
    ],
)
def test_every_bundled_model_matches_genai_prices(provider: str) -> None:
    gp_id = pricing.GENAI_PRICES_PROVIDER_IDS[provider]
    gp_provider = next(p for p in gp_snapshot.get_snapshot().providers if p.id == gp_id)
    checked = 0
    for model in gp_provider.models:
        for at in (AT, datetime(2027, 6, 1, 3, 0, tzinfo=UTC)):
            for usage in SWEEP_USAGES:
                try:
                    expected = reference(model.id, gp_id, usage, at)
                except (LookupError, ValueError):
                    continue
                result = price_call(provider, model.id, usage, at=at)
                assert (result.status, result.cost, result.input_cost, result.output_cost) == (
                    "priced",
                    expected.total_price,
                    expected.input_price,
                    expected.output_price,
                ), (model.id, usage, at)
                checked += 1
    assert checked > 0


def test_model_whose_plan_is_not_compiled_is_priced_by_genai_prices(monkeypatch: pytest.MonkeyPatch) -> None:
    from ag2_logging.pricing import lookup as pricing  # where the plans are compiled

    monkeypatch.setattr(pricing, "_compile_plan", lambda model_price: None)
    pricing.clear_caches()
    usage = U(250_000, 9_000, cached=100_000, reasoning=4_000)
    expected = reference("gemini-2.5-pro", "google", usage)
    result = price_call("google", "gemini-2.5-pro", usage, at=AT)
    assert result.status == "priced"
    assert result.cost == expected.total_price


def test_prices_come_from_bundled_data_only() -> None:
    # Someone else in the process installs a custom snapshot (as UpdatePrices does): our prices
    # must not move.
    usage = U(1_000_000, 1_000_000)
    bundled = price_call("openai", "gpt-4o", usage, at=AT)
    fake_provider = genai_prices.types.Provider(
        id="openai",
        name="OpenAI",
        api_pattern="https://api\\.openai\\.com",
        models=[
            genai_prices.types.ModelInfo(
                id="gpt-4o",
                match=genai_prices.types.ClauseEquals(equals="gpt-4o"),
                prices=ModelPrice(input_mtok=Decimal(999), output_mtok=Decimal(999)),
            )
        ],
    )
    gp_snapshot.set_custom_snapshot(
        gp_snapshot.DataSnapshot(providers=[fake_provider], from_auto_update=True)
    )
    try:
        assert genai_prices.calc_price(
            genai_prices.Usage(input_tokens=1), "gpt-4o", provider_id="openai"
        ).model.id
        pricing.clear_caches()
        assert price_call("openai", "gpt-4o", usage, at=AT).cost == bundled.cost
        assert genai_prices.calc_price(
            genai_prices.Usage(input_tokens=1_000_000, output_tokens=1_000_000),
            "gpt-4o",
            provider_id="openai",
        ).total_price == Decimal(1998)  # the custom snapshot is what genai-prices now uses
    finally:
        gp_snapshot.set_custom_snapshot(None)


# --- unknown -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "definitely-not-a-model"),
        ("azure", "my-company-deployment"),
        ("mistral", "mistral-small-2409"),
        ("unknown", "gpt-4o"),  # no provider, no price: the model alone is not enough
        ("some-gateway", "gpt-4o"),  # neither ours nor genai-prices'
        ("openai", ""),
        ("openai", "   "),
        ("", "gpt-4o"),
    ],
)
def test_unknown_model_or_provider(provider: str, model: str) -> None:
    result = price_call(provider, model, U(1_000, 1_000), at=AT)
    assert result == PriceResult(
        cost=None, status="unknown", input_cost=None, output_cost=None, model_ref=None, provider=provider
    )
    assert result.cost is None  # never 0


def test_unknown_is_cached_and_stays_unknown() -> None:
    for _ in range(3):
        assert price_call("openai", "nope", U(1, 1)).status == "unknown"


def test_warn_unknown_once(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tests.pricing")
    with caplog.at_level(logging.WARNING, logger="tests.pricing"):
        assert warn_unknown_once("openai", "nope", logger) is True
        assert warn_unknown_once("openai", "nope", logger) is False
        assert warn_unknown_once("azure", "nope", logger) is True
        assert warn_unknown_once("openai", "nope-2", logger) is True
    messages = [record.getMessage() for record in caplog.records if record.name == "tests.pricing"]
    assert len(messages) == 3
    assert "'nope'" in messages[0]
    assert "'openai'" in messages[0]
    pricing.clear_caches()
    with caplog.at_level(logging.WARNING, logger="tests.pricing"):
        assert warn_unknown_once("openai", "nope", logger) is True


# --- local models --------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["local", "ollama", "Ollama"])
def test_local_model_defaults_to_free(provider: str) -> None:
    result = price_call(provider, "llama3.1:8b", U(5_000, 1_000, cached=1_000, reasoning=300), at=AT)
    assert result.status == "local"
    assert result.cost == Decimal(0)
    assert result.cost is not None  # free, not unknown
    assert result.input_cost == Decimal(0)
    assert result.output_cost == Decimal(0)
    assert result.model_ref is None


def test_local_model_at_configured_rate() -> None:
    result = price_call("ollama", "qwen2.5:7b", U(5_000, 1_000, cached=1_000), local_rate=Decimal("0.25"))
    assert result.status == "local"
    assert result.cost == Decimal("0.0015")  # 6,000 tokens at $0.25 per million
    assert result.input_cost == Decimal("0.00125")
    assert result.output_cost == Decimal("0.00025")


def test_local_rate_does_not_apply_to_priced_providers() -> None:
    usage = U(1_000, 1_000)
    result = price_call("openai", "gpt-4o", usage, at=AT, local_rate=Decimal(100))
    assert result.cost == reference("gpt-4o", "openai", usage).total_price


# --- overrides -----------------------------------------------------------------------------------


def test_override_beats_genai_prices_and_is_exact() -> None:
    override = PriceOverride(
        provider="openai",
        model_pattern="gpt-4o",
        input=Decimal("2"),
        cached_input=Decimal("0.5"),
        output=Decimal("8"),
        reasoning=Decimal("12"),
    )
    usage = U(10_000, 3_000, cached=4_000, reasoning=1_000, write=1_000)
    result = price_call("openai", "gpt-4o", usage, at=AT, overrides=[override])
    # input: 5,000 uncached at 2, 4,000 cached at 0.5, 1,000 cache writes at input (2)
    # output: 2,000 at 8, 1,000 reasoning at 12
    assert result.input_cost == Decimal("0.014")
    assert result.output_cost == Decimal("0.028")
    assert result.cost == Decimal("0.042")
    assert result.status == "override"
    assert result.override is override
    assert result.model_ref is None
    assert result.cost != reference("gpt-4o", "openai", usage).total_price


def test_override_defaults_follow_input_and_output() -> None:
    override = PriceOverride(model_pattern="my-model", input=Decimal("3"), output=Decimal("15"))
    usage = U(1_000_000, 1_000_000, cached=250_000, reasoning=500_000, write=250_000)
    result = price_call("openai", "my-model", usage, at=AT, overrides=[override])
    assert result.cost == Decimal(18)
    assert result.input_cost == Decimal(3)
    assert result.output_cost == Decimal(15)


def test_override_prices_an_unknown_model_and_a_local_one() -> None:
    override = PriceOverride(provider="*", model_pattern="llama*", input=Decimal("1"), output=Decimal("1"))
    assert price_call(
        "unknown", "llama-3-70b", U(500_000, 500_000), at=AT, overrides=[override]
    ).cost == Decimal(1)
    local = price_call("ollama", "llama3.1:8b", U(500_000, 500_000), at=AT, overrides=[override])
    assert local.status == "override"
    assert local.cost == Decimal(1)


def test_override_with_fractional_prices_is_exact() -> None:
    override = PriceOverride(
        model_pattern="m",
        input=Decimal("0.0000001"),
        output=Decimal("123.456789"),
        cache_write=Decimal("3.3333333"),
    )
    result = price_call("openai", "m", U(3, 7, write=1), at=AT, overrides=[override])
    expected_input = (2 * Decimal("0.0000001") + Decimal("3.3333333")) / 1_000_000
    expected_output = 7 * Decimal("123.456789") / 1_000_000
    assert result.input_cost == expected_input
    assert result.output_cost == expected_output
    assert result.cost == Decimal("0.0000033333335") + Decimal("0.000864197523")


def test_override_period_boundaries() -> None:
    override = PriceOverride(
        model_pattern="gpt-4o",
        input=Decimal(1),
        output=Decimal(1),
        effective_from=date(2025, 1, 1),
        effective_to=date(2025, 2, 1),
    )
    assert not override.matches("openai", "gpt-4o", datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC))
    assert override.matches("openai", "gpt-4o", datetime(2025, 1, 1, 0, 0, tzinfo=UTC))  # from: inclusive
    assert override.matches("openai", "gpt-4o", datetime(2025, 1, 31, 23, 59, 59, tzinfo=UTC))
    assert not override.matches("openai", "gpt-4o", datetime(2025, 2, 1, 0, 0, tzinfo=UTC))  # to: exclusive
    # Compared on the UTC date: 2025-01-31 20:00 at UTC-5 is 2025-02-01 in UTC.
    assert not override.matches(
        "openai", "gpt-4o", datetime(2025, 1, 31, 20, 0, tzinfo=timezone(timedelta(hours=-5)))
    )
    # Naive datetimes are UTC.
    assert override.matches("openai", "gpt-4o", datetime(2025, 1, 15))

    usage = U(1_000_000, 0)
    outside = price_call("openai", "gpt-4o", usage, at=datetime(2025, 2, 1, tzinfo=UTC), overrides=[override])
    inside = price_call("openai", "gpt-4o", usage, at=datetime(2025, 1, 15, tzinfo=UTC), overrides=[override])
    assert outside.status == "priced"
    assert inside.status == "override"
    assert inside.cost == Decimal(1)


def test_open_ended_periods() -> None:
    since = PriceOverride(
        model_pattern="x", input=Decimal(1), output=Decimal(1), effective_from=date(2025, 1, 1)
    )
    until = PriceOverride(
        model_pattern="x", input=Decimal(1), output=Decimal(1), effective_to=date(2025, 1, 1)
    )
    assert since.matches("openai", "x", datetime(2099, 1, 1, tzinfo=UTC))
    assert not since.matches("openai", "x", datetime(2024, 12, 31, tzinfo=UTC))
    assert until.matches("openai", "x", datetime(1999, 1, 1, tzinfo=UTC))
    assert not until.matches("openai", "x", datetime(2025, 1, 1, tzinfo=UTC))


def test_override_provider_and_pattern_matching() -> None:
    exact = PriceOverride(provider="azure", model_pattern="GPT-4o", input=Decimal(1), output=Decimal(1))
    pattern = PriceOverride(provider="", model_pattern="gpt-4o-*", input=Decimal(1), output=Decimal(1))
    classes = PriceOverride(
        provider="*", model_pattern="claude-3-[57]-*", input=Decimal(1), output=Decimal(1)
    )
    assert exact.matches("azure", "gpt-4o", AT)  # case-insensitive
    assert not exact.matches("openai", "gpt-4o", AT)
    assert not exact.matches("azure", "gpt-4o-mini", AT)
    assert pattern.matches("openai", "gpt-4o-mini", AT)
    assert pattern.matches("anything", "GPT-4o-2024-08-06", AT)
    assert not pattern.matches("openai", "gpt-4o", AT)
    assert classes.matches("anthropic", "claude-3-7-sonnet-20250219", AT)
    assert not classes.matches("anthropic", "claude-3-haiku-20240307", AT)
    # Provider aliases are the same provider.
    assert PriceOverride(provider="bedrock", model_pattern="m", input=Decimal(1), output=Decimal(1)).matches(
        "aws-bedrock", "m", AT
    )


def test_most_specific_override_wins() -> None:
    broad = PriceOverride(model_pattern="gpt-4o*", input=Decimal(1), output=Decimal(1))
    broad_recent = PriceOverride(
        model_pattern="gpt-4o*", input=Decimal(2), output=Decimal(2), effective_from=date(2025, 6, 1)
    )
    exact_old = PriceOverride(
        model_pattern="gpt-4o-mini", input=Decimal(3), output=Decimal(3), effective_from=date(2024, 1, 1)
    )
    exact_new = PriceOverride(
        model_pattern="gpt-4o-mini", input=Decimal(4), output=Decimal(4), effective_from=date(2025, 1, 1)
    )
    exact_new_openai = PriceOverride(
        provider="openai",
        model_pattern="gpt-4o-mini",
        input=Decimal(5),
        output=Decimal(5),
        effective_from=date(2025, 1, 1),
    )
    overrides = [broad, broad_recent, exact_old, exact_new]
    # Exact model beats pattern, however recent the pattern.
    assert select_override(overrides, "openai", "gpt-4o-mini", AT) is exact_new
    # Among exact matches, the latest effective_from; before it starts, the older one.
    assert select_override(overrides, "openai", "gpt-4o-mini", datetime(2024, 6, 1, tzinfo=UTC)) is exact_old
    # Among patterns, the latest effective_from.
    assert select_override(overrides, "openai", "gpt-4o", AT) is broad_recent
    assert select_override(overrides, "openai", "gpt-4o", datetime(2025, 5, 31, tzinfo=UTC)) is broad
    # Then a named provider beats "any provider".
    assert select_override([exact_new, exact_new_openai], "openai", "gpt-4o-mini", AT) is exact_new_openai
    assert select_override([exact_new_openai, exact_new], "azure", "gpt-4o-mini", AT) is exact_new
    # A tie goes to the first one given.
    twin = PriceOverride(
        model_pattern="gpt-4o-mini", input=Decimal(9), output=Decimal(9), effective_from=date(2025, 1, 1)
    )
    assert select_override([exact_new, twin], "openai", "gpt-4o-mini", AT) is exact_new
    assert select_override(overrides, "openai", "o3", AT) is None

    result = price_call("openai", "gpt-4o-mini", U(1_000_000, 0), at=AT, overrides=overrides)
    assert result.cost == Decimal(4)


def test_price_override_is_frozen() -> None:
    override = PriceOverride(model_pattern="m", input=Decimal(1), output=Decimal(1))
    with pytest.raises(FrozenInstanceError):
        override.input = Decimal(2)  # type: ignore[misc]


# --- normalize_usage -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "raw", "expected"),
    [
        # OpenAI-style: prompt includes cached, completion includes reasoning -> unchanged.
        ("openai", (1_000, 500, 300, 200, 0), (1_000, 500, 300, 200, 0)),
        ("azure", (1_000, 500, 300, 200, 0), (1_000, 500, 300, 200, 0)),
        ("groq", (1_000, 500, 0, 0, 0), (1_000, 500, 0, 0, 0)),
        ("deepseek", (1_000, 500, 800, 400, 0), (1_000, 500, 800, 400, 0)),
        ("mistral", (1_000, 500, 0, 0, 0), (1_000, 500, 0, 0, 0)),
        ("together", (1_000, 500, 0, 0, 0), (1_000, 500, 0, 0, 0)),
        ("local", (1_000, 500, 100, 0, 0), (1_000, 500, 100, 0, 0)),
        ("ollama", (1_000, 500, 0, 0, 0), (1_000, 500, 0, 0, 0)),
        ("unknown", (1_000, 500, 300, 200, 0), (1_000, 500, 300, 200, 0)),
        # Anthropic: input_tokens excludes cache reads and writes -> added.
        ("anthropic", (1_000, 500, 20_000, 0, 5_000), (26_000, 500, 20_000, 0, 5_000)),
        ("anthropic", (1_000, 500, 0, 100, 0), (1_000, 500, 0, 100, 0)),  # thinking is in output_tokens
        # Bedrock Converse: same shape as Anthropic.
        ("aws-bedrock", (1_000, 500, 2_000, 0, 300), (3_300, 500, 2_000, 0, 300)),
        # Gemini: prompt includes cached; candidates exclude thoughts -> thoughts added.
        ("google", (10_000, 800, 6_000, 1_200, 0), (10_000, 2_000, 6_000, 1_200, 0)),
        ("google-vertex", (10_000, 800, 6_000, 1_200, 0), (10_000, 2_000, 6_000, 1_200, 0)),
        # Aliases.
        ("Anthropic", (1, 1, 1, 0, 0), (2, 1, 1, 0, 0)),
        ("bedrock", (1, 1, 1, 0, 0), (2, 1, 1, 0, 0)),
        ("gemini", (1, 1, 0, 1, 0), (1, 2, 0, 1, 0)),
    ],
)
def test_normalize_usage_by_provider(
    provider: str, raw: tuple[int, int, int, int, int], expected: tuple[int, int, int, int, int]
) -> None:
    usage = normalize_usage(provider, *raw)
    prompt, completion, cached, reasoning, write = expected
    assert usage == U(prompt, completion, cached=cached, reasoning=reasoning, write=write)
    assert usage.total_tokens == prompt + completion


def test_normalize_usage_explicit_flags_win() -> None:
    assert normalize_usage("openai", 100, 50, 30, 20, prompt_includes_cached=False) == U(
        130, 50, cached=30, reasoning=20
    )
    assert normalize_usage("openai", 100, 50, 30, 20, completion_includes_reasoning=False) == U(
        100, 70, cached=30, reasoning=20
    )
    assert normalize_usage(
        "anthropic", 100, 50, 30, 0, 10, prompt_includes_cached=True, completion_includes_reasoning=True
    ) == U(100, 50, cached=30, write=10)
    assert normalize_usage("google", 100, 50, 0, 20, completion_includes_reasoning=True) == U(
        100, 50, reasoning=20
    )


def test_normalize_usage_never_raises_on_bad_reports() -> None:
    assert normalize_usage("openai", None, None, None, None, None) == U(0, 0)
    assert normalize_usage("openai", -5, 10, -1, -1, -1) == U(0, 10)
    # A breakdown larger than its total is clipped to the total, cache reads first.
    assert normalize_usage("openai", 100, 50, 150, 80, 0) == U(100, 50, cached=100, reasoning=50)
    assert normalize_usage("openai", 100, 50, 70, 0, 70) == U(100, 50, cached=70, write=30)


def test_normalized_usage_validates() -> None:
    assert U(10, 5, cached=4, reasoning=5, write=6).total_tokens == 15
    with pytest.raises(ValueError, match="negative"):
        U(-1, 0)
    with pytest.raises(ValueError, match="exceed prompt_tokens"):
        U(10, 5, cached=6, write=5)
    with pytest.raises(ValueError, match="exceed completion_tokens"):
        U(10, 5, reasoning=6)
    with pytest.raises(FrozenInstanceError):
        U(1, 1).prompt_tokens = 2  # type: ignore[misc]


# --- detect_provider ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        # AG2 classic api_type values (prefix match, as AG2 does).
        ({"api_type": "openai"}, "openai"),
        ({"api_type": "openai", "model": "llama3"}, "openai"),
        ({"api_type": "responses"}, "openai"),
        ({"api_type": "openai_v2"}, "openai"),
        ({"api_type": "azure", "model": "my-deployment"}, "azure"),
        ({"api_type": "anthropic"}, "anthropic"),
        ({"api_type": "anthropic_v2"}, "anthropic"),
        ({"api_type": "google", "model": "gemini-2.5-flash"}, "google"),
        ({"api_type": "google_vertex", "model": "gemini-2.5-flash"}, "google-vertex"),
        ({"api_type": "bedrock", "model": "anthropic.claude-3-haiku-20240307-v1:0"}, "aws-bedrock"),
        ({"api_type": "bedrock_v2"}, "aws-bedrock"),
        ({"api_type": "mistral"}, "mistral"),
        ({"api_type": "groq", "model": "llama-3.3-70b-versatile"}, "groq"),
        ({"api_type": "deepseek"}, "deepseek"),
        ({"api_type": "together", "model": "deepseek-ai/DeepSeek-V3"}, "together"),
        ({"api_type": "cohere"}, "cohere"),
        ({"api_type": "ollama", "base_url": "http://localhost:11434"}, "ollama"),
        ({"api_type": "cerebras"}, "cerebras"),
        ({"api_type": "  Azure "}, "azure"),
        # The OpenAI client pointed elsewhere defers to the host, then the model.
        ({"api_type": "openai", "base_url": "https://api.openai.com/v1"}, "openai"),
        ({"api_type": "openai", "base_url": "https://api.groq.com/openai/v1"}, "groq"),
        ({"api_type": "openai", "base_url": "http://localhost:1234/v1", "model": "qwen2.5"}, "local"),
        ({"api_type": "openai", "base_url": "https://gateway.example.com/v1", "model": "gpt-4o"}, "openai"),
        ({"api_type": "openai", "base_url": "https://gateway.example.com/v1", "model": "llama3"}, "unknown"),
        # A specific api_type wins over the host.
        ({"api_type": "azure", "base_url": "https://gateway.example.com"}, "azure"),
        # Base URL hosts.
        ({"base_url": "https://api.openai.com/v1"}, "openai"),
        ({"base_url": "https://my-res.openai.azure.com/"}, "azure"),
        ({"base_url": "https://my-res.cognitiveservices.azure.com"}, "azure"),
        ({"base_url": "https://api.anthropic.com"}, "anthropic"),
        ({"base_url": "https://generativelanguage.googleapis.com/v1beta/openai/"}, "google"),
        ({"base_url": "https://us-central1-aiplatform.googleapis.com/v1/projects/p"}, "google-vertex"),
        ({"base_url": "https://aiplatform.googleapis.com"}, "google-vertex"),
        ({"base_url": "https://bedrock-runtime.us-east-1.amazonaws.com"}, "aws-bedrock"),
        ({"base_url": "https://api.mistral.ai/v1"}, "mistral"),
        ({"base_url": "https://api.groq.com/openai/v1"}, "groq"),
        ({"base_url": "https://api.deepseek.com"}, "deepseek"),
        ({"base_url": "https://api.deepseek.com/v1"}, "deepseek"),
        ({"base_url": "https://api.together.xyz/v1"}, "together"),
        ({"base_url": "https://api.cohere.com/compatibility/v1"}, "cohere"),
        ({"base_url": "https://api.cohere.ai"}, "cohere"),
        ({"base_url": "http://localhost:11434/v1"}, "local"),
        ({"base_url": "http://127.0.0.1:8000/v1"}, "local"),
        ({"base_url": "http://127.1.2.3"}, "local"),
        ({"base_url": "http://[::1]:8080/v1"}, "local"),
        ({"base_url": "localhost:8000"}, "local"),
        ({"base_url": "HTTPS://API.OPENAI.COM/V1"}, "openai"),
        ({"base_url": "https://api.openai.com.evil.example/v1"}, "unknown"),
        ({"base_url": "http://10.0.0.5:8000/v1", "model": "mistral-large-latest"}, "mistral"),
        # Model names.
        ({"model": "gpt-4o-mini"}, "openai"),
        ({"model": "o1"}, "openai"),
        ({"model": "o3-mini"}, "openai"),
        ({"model": "o4-mini-2025-04-16"}, "openai"),
        ({"model": "chatgpt-4o-latest"}, "openai"),
        ({"model": "claude-3-5-sonnet-20241022"}, "anthropic"),
        ({"model": "gemini-2.5-pro"}, "google"),
        ({"model": "models/gemini-2.5-pro"}, "google"),
        ({"model": "mistral-large-latest"}, "mistral"),
        ({"model": "open-mixtral-8x7b"}, "mistral"),
        ({"model": "mixtral-8x7b"}, "mistral"),
        ({"model": "codestral-latest"}, "mistral"),
        ({"model": "deepseek-chat"}, "deepseek"),
        ({"model": "command-r-plus"}, "cohere"),
        ({"model": "us.anthropic.claude-3-7-sonnet-20250219-v1:0"}, "aws-bedrock"),
        ({"model": "amazon.nova-pro-v1:0"}, "aws-bedrock"),
        ({"model": "llama3.1:8b"}, "unknown"),
        ({"model": "o10-pro"}, "unknown"),
        ({"model": "ollama-thing"}, "unknown"),
        ({}, "unknown"),
        ({"api_type": "", "base_url": "", "model": ""}, "unknown"),
        ({"api_type": "something-new", "model": "claude-3-haiku"}, "anthropic"),
    ],
)
def test_detect_provider(kwargs: dict[str, Any], expected: str) -> None:
    assert detect_provider(**kwargs) == expected


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("https://gateway.corp.example/openai/v1", "azure"),  # longest prefix wins
        ("https://gateway.corp.example/anthropic", "anthropic"),
        ("https://gateway.corp.example/other", "openai"),
        ("http://gateway.corp.example/other", "openai"),  # scheme ignored
        ("https://gateway.corp.example.evil/other", "unknown"),  # prefix ends at a boundary
        ("http://127.0.0.1:54321/v1", "groq"),  # "http://127.0.0.1" covers every port
        ("http://localhost:11434/v1/", "local"),
        ("https://api.openai.com/v1", "openai"),  # map has no entry: host rules
        ("https://openrouter.ai/api/v1", "openrouter"),  # any genai-prices provider id
        ("https://vertex-proxy.example", "google-vertex"),  # aliases
    ],
)
def test_detect_provider_base_url_map(base_url: str, expected: str) -> None:
    base_url_map = {
        "https://gateway.corp.example": "openai",
        "https://gateway.corp.example/openai/": "azure",
        "gateway.corp.example/anthropic": "anthropic",
        "http://127.0.0.1": "groq",
        "https://openrouter.ai": "openrouter",
        "https://vertex-proxy.example": "vertex",
    }
    assert detect_provider(base_url=base_url, base_url_map=base_url_map, model="llama3") == expected


def test_base_url_map_beats_api_type() -> None:
    assert (
        detect_provider(
            api_type="anthropic",
            base_url="https://proxy.local/x",
            base_url_map={"https://proxy.local": "local"},
        )
        == "local"
    )


def test_detected_providers_are_known() -> None:
    for api_type in ["openai", "azure", "anthropic", "google", "google_vertex", "bedrock", "mistral", "groq",
                     "deepseek", "together", "cohere", "ollama", "cerebras"]:  # fmt: skip
        assert detect_provider(api_type=api_type) in pricing.PROVIDER_IDS
    for provider in pricing.PROVIDER_IDS:
        assert provider in pricing.GENAI_PRICES_PROVIDER_IDS or provider in {"ollama", "local", "unknown"}


def test_genai_prices_provider_ids() -> None:
    assert pricing.genai_prices_provider_id("aws-bedrock") == "aws"
    assert pricing.genai_prices_provider_id("google-vertex") == "google"
    assert pricing.genai_prices_provider_id("google") == "google"
    assert pricing.genai_prices_provider_id("azure") == "azure"
    assert pricing.genai_prices_provider_id("together") == "together"
    assert pricing.genai_prices_provider_id("openrouter") == "openrouter"
    assert pricing.genai_prices_provider_id("ollama") is None
    assert pricing.genai_prices_provider_id("local") is None
    assert pricing.genai_prices_provider_id("unknown") is None
    known = {provider.id for provider in gp_snapshot.get_snapshot().providers}
    assert set(pricing.GENAI_PRICES_PROVIDER_IDS.values()) <= known


# --- canonical_model ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "model", "expected"),
    [
        # Known as given (genai-prices matches snapshots itself): unchanged.
        ("openai", "gpt-4o", "gpt-4o"),
        ("openai", "gpt-4o-2024-08-06", "gpt-4o-2024-08-06"),
        ("openai", "gpt-4o-20240806", "gpt-4o-20240806"),
        ("azure", "gpt-35-turbo", "gpt-35-turbo"),
        ("anthropic", "claude-3-5-sonnet-20241022", "claude-3-5-sonnet-20241022"),
        # Fallbacks.
        ("google", "models/gemini-2.5-flash", "gemini-2.5-flash"),
        ("azure", "gpt-41-mini", "gpt-4.1-mini"),
        ("azure", "gpt-41", "gpt-4.1"),
        ("azure", "models/gpt-41-mini", "gpt-4.1-mini"),
        # Unknown: the name, stripped.
        ("openai", " made-up-2024-01-01 ", "made-up-2024-01-01"),
        ("local", "llama3.1:8b", "llama3.1:8b"),
        ("unknown", "gpt-4o", "gpt-4o"),
    ],
)
def test_canonical_model(provider: str, model: str, expected: str) -> None:
    assert canonical_model(provider, model) == expected


@pytest.mark.parametrize(
    ("provider", "model", "candidates"),
    [
        ("openai", "gpt-4o-2024-08-06", ("gpt-4o-2024-08-06", "gpt-4o")),
        ("openai", "gpt-4o-20240806", ("gpt-4o-20240806", "gpt-4o")),
        ("openai", "gpt-4-0613", ("gpt-4-0613", "gpt-4")),
        ("mistral", "mistral-small-2409", ("mistral-small-2409", "mistral-small")),
        ("groq", "llama3-70b-8192", ("llama3-70b-8192",)),  # a context size, not a date
        ("groq", "mixtral-8x7b-32768", ("mixtral-8x7b-32768",)),
        ("google-vertex", "gemini-1.5-pro@002", ("gemini-1.5-pro@002", "gemini-1.5-pro")),
        ("google", "models/gemini-1.5-pro-002", ("models/gemini-1.5-pro-002", "gemini-1.5-pro-002")),
        (  # the dated snapshot, dotless then dotted, before the undated alias (issue 15, item 1)
            "azure",
            "gpt-35-turbo-0125",
            ("gpt-35-turbo-0125", "gpt-3.5-turbo-0125", "gpt-35-turbo", "gpt-3.5-turbo"),
        ),
        ("openai", "gpt-35-turbo", ("gpt-35-turbo",)),  # dotless names are an Azure thing
    ],
)
def test_model_candidates(provider: str, model: str, candidates: tuple[str, ...]) -> None:
    from ag2_logging.pricing import lookup as pricing  # where model names are resolved

    assert pricing._model_candidates(provider, model) == candidates


def test_price_call_uses_fallback_names() -> None:
    usage = U(1_000, 1_000, cached=500)
    result = price_call("azure", "gpt-41-mini", usage, at=AT)
    assert result.model_ref == "gpt-4.1-mini"
    assert result.cost == reference("gpt-4.1-mini", "azure", usage).total_price


def test_tiered_prices_exist_in_bundled_data() -> None:
    # The tier cases above only test something while genai-prices has tiers for these models.
    for provider_id, model in [("anthropic", "claude-sonnet-4-5"), ("google", "gemini-2.5-pro")]:
        rates = _rates(provider_id, model)
        assert isinstance(rates.input_mtok, TieredPrices)
