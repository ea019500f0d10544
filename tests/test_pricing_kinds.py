"""Pricing resolution, one table per kind of fault (issue 15, items 1, 3 and 21).

* a dated snapshot resolves to that snapshot's price before any undated alias, spelled with or
  without dots (over every dated model genai-prices knows);
* an unknown dated snapshot falls back to its undated model, whatever the month or day;
* a local endpoint that ``PROVIDER_BASE_URLS`` does not map prices a model name genai-prices
  knows at its own provider's price (``inferred``); ``local`` is for ``ollama``, a base URL
  mapped to ``local`` and names no provider knows; an unknown price is never 0;
* the order of the cost rules (failed / cached calls, missing usage, overrides, local rate).

Expected prices come from genai-prices' own ``calc_price``; no database.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import genai_prices
import pytest
from genai_prices.data import providers as gp_providers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ag2_logging import pricing
from ag2_logging.pricing import NormalizedUsage, PriceOverride, detect_provider, price_call
from tests.conftest import genai_calc

AT = datetime(2025, 9, 1, 12, 0, tzinfo=UTC)
MILLION = NormalizedUsage(prompt_tokens=1_000_000, completion_tokens=1_000_000)
USAGE = NormalizedUsage(
    prompt_tokens=12_000, completion_tokens=3_000, cached_tokens=4_000, reasoning_tokens=500
)

# Independent of the code under test: a trailing date as genai-prices' snapshot ids spell them.
DATED = re.compile(r"-(?:20\d\d-?\d\d-?\d\d|\d{4})$")
DOTTED_GPT = re.compile(r"^gpt-(\d)\.(\d)(?=-|$)")


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    pricing.clear_caches()
    yield
    pricing.clear_caches()


def reference(model_ref: str, provider_id: str, usage: NormalizedUsage = USAGE) -> Decimal:
    """genai-prices' own price, through its public API (the app's token convention maps 1:1)."""
    return genai_calc(model_ref, provider_id, usage, AT).total_price


def known(model_ref: str, provider_id: str | None) -> bool:
    try:
        genai_prices.calc_price(genai_prices.Usage(), model_ref, provider_id=provider_id)
    except LookupError:
        return False
    return True


# --- item 1: a dated snapshot before its undated alias ------------------------------------------


def _dated_models() -> list[tuple[str, str]]:
    """(genai-prices provider id, model id) for every dated model id it resolves by that id."""
    rows = []
    for provider in gp_providers:
        for model in provider.models:
            if DATED.search(model.id) and known(model.id, provider.id):
                rows.append((provider.id, model.id))
    return rows


DATED_MODELS = _dated_models()


def test_genai_prices_has_dated_models() -> None:
    # The tables below only test something while genai-prices lists dated snapshots.
    assert len(DATED_MODELS) > 50
    assert ("openai", "gpt-3.5-turbo-1106") in DATED_MODELS


@pytest.mark.parametrize(("provider_id", "model"), DATED_MODELS)
def test_every_dated_model_is_priced_at_its_own_snapshot(provider_id: str, model: str) -> None:
    result = price_call(provider_id, model, USAGE, at=AT)
    assert (result.status, result.cost) == ("priced", reference(model, provider_id))


def _azure_dotless_rows() -> list[tuple[str, str]]:
    """(Azure deployment-style name, dotted dated name) for every dated gpt-N.M model
    genai-prices prices on Azure (its own, and OpenAI's through Azure's fallback)."""
    rows = []
    for provider_id, model in DATED_MODELS:
        if provider_id in ("openai", "azure") and DOTTED_GPT.match(model) and known(model, "azure"):
            rows.append((DOTTED_GPT.sub(r"gpt-\1\2", model), model))
    return sorted(set(rows))


AZURE_DOTLESS = _azure_dotless_rows()


def test_azure_dotless_table_is_not_empty() -> None:
    assert ("gpt-35-turbo-1106", "gpt-3.5-turbo-1106") in AZURE_DOTLESS
    assert len(AZURE_DOTLESS) >= 3


@pytest.mark.parametrize(("deployment", "dotted"), AZURE_DOTLESS)
@pytest.mark.parametrize("decoration", ["{}", "models/{}", " {} "])
def test_azure_dotless_dated_deployment_is_its_snapshot(
    deployment: str, dotted: str, decoration: str
) -> None:
    snapshot = reference(dotted, "azure")
    undated_name = DATED.sub("", dotted)
    undated = reference(undated_name, "azure") if known(undated_name, "azure") else None
    assert snapshot != undated  # else this row could not tell the two apart
    result = price_call("azure", decoration.format(deployment), USAGE, at=AT)
    assert (result.status, result.cost) == ("priced", snapshot)
    assert pricing.canonical_model("azure", decoration.format(deployment)) == dotted


def test_reported_azure_row() -> None:
    # Issue 15, item 1: 1M input + 1M output of gpt-35-turbo-1106 on Azure is 3.0, not 2.0.
    result = price_call("azure", "gpt-35-turbo-1106", MILLION, at=AT)
    assert (result.cost, result.status, result.model_ref) == (Decimal(3), "priced", "gpt-3.5-turbo-1106")
    assert result.cost == reference("gpt-3.5-turbo-1106", "azure", MILLION)


# --- item 21: an unknown dated snapshot falls back to its undated model -------------------------

BASES = [
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4o"),
    ("openai", "o3-mini"),
    ("azure", "gpt-4o"),
    ("azure", "gpt-4.1-mini"),
    ("google", "gemini-2.5-flash"),
    ("mistral", "mistral-large"),
]


def _future_dates() -> list[str]:
    """Every month's first and last day, both spellings (dashed and compact), in 2030."""
    rows = []
    for month in range(1, 13):
        last = (date(2030 + month // 12, month % 12 + 1, 1) - date.resolution).day
        for day in (1, last):
            rows += [f"2030-{month:02d}-{day:02d}", f"2030{month:02d}{day:02d}"]
    return rows


@pytest.mark.parametrize("suffix", _future_dates())
def test_unknown_dated_snapshot_falls_back_to_its_model(suffix: str) -> None:
    for provider, base in BASES:
        name = f"{base}-{suffix}"
        assert not known(name, provider)  # a snapshot genai-prices does not list
        result = price_call(provider, name, USAGE, at=AT)
        assert (result.status, result.cost) == ("priced", reference(base, provider)), name


def test_reported_december_row() -> None:
    result = price_call("openai", "gpt-4o-mini-2030-12-31", USAGE, at=AT)
    assert (result.status, result.cost) == ("priced", reference("gpt-4o-mini", "openai"))
    assert pricing.canonical_model("openai", "gpt-4o-mini-2030-12-31") == "gpt-4o-mini"


@pytest.mark.parametrize(
    ("provider", "name", "base"),
    [
        ("openai", "gpt-4-1231", "gpt-4"),  # MMDD: December 31st
        ("openai", "gpt-4-0101", "gpt-4"),
        ("mistral", "mistral-large-2912", "mistral-large"),  # YYMM: December 2029
        ("mistral", "ministral-8b-2901", "ministral-8b"),
        ("azure", "gpt-4o-2030-12-31", "gpt-4o"),
        ("azure", "gpt-41-mini-2030-12-31", "gpt-4.1-mini"),  # dotless and dated
    ],
)
def test_unknown_short_dated_snapshot_falls_back(provider: str, name: str, base: str) -> None:
    assert not known(name, provider)
    result = price_call(provider, name, USAGE, at=AT)
    assert (result.status, result.cost) == ("priced", reference(base, provider))


@pytest.mark.parametrize(
    "name",
    [
        "gpt-4o-mini-2030-13-01",  # no 13th month
        "gpt-4o-mini-2030-00-10",
        "gpt-4o-mini-2030-12-32",  # no 32nd day
        "gpt-4o-mini-2030-12-00",
        "gpt-4o-mini-1999-12-31",  # not a 20xx date
        "gpt-4o-mini-1301",  # neither MMDD nor a YYMM of 2023-2029
        "gpt-4o-mini-8192",  # a context size
    ],
)
def test_what_is_not_a_date_is_not_dropped(name: str) -> None:
    result = price_call("openai", name, USAGE, at=AT)
    assert (result.status, result.cost) == ("unknown", None)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    day=st.dates(min_value=date(2023, 1, 1), max_value=date(2099, 12, 31)),
    compact=st.booleans(),
    base=st.sampled_from(BASES),
)
def test_any_dated_snapshot_is_its_own_price_or_its_models(
    day: date, compact: bool, base: tuple[str, str]
) -> None:
    provider, model = base
    name = f"{model}-{day:%Y%m%d}" if compact else f"{model}-{day:%Y-%m-%d}"
    expected = reference(name, provider) if known(name, provider) else reference(model, provider)
    assert price_call(provider, name, USAGE, at=AT).cost == expected


# --- item 3: a local endpoint PROVIDER_BASE_URLS does not map -----------------------------------

LOOPBACK = "http://127.0.0.1:8765/v1"


@pytest.mark.parametrize(
    ("config", "provider", "status", "priced_as"),
    [
        # Known model names: their provider's price, inferred.
        ({"base_url": LOOPBACK, "model": "gpt-4o-mini"}, "openai@local", "inferred", ("gpt-4o-mini", "openai")),
        ({"api_type": "openai", "base_url": LOOPBACK, "model": "gpt-4o-mini"}, "openai@local", "inferred",
         ("gpt-4o-mini", "openai")),
        ({"api_type": "responses", "base_url": "http://localhost:4000", "model": "gpt-4o"}, "openai@local",
         "inferred", ("gpt-4o", "openai")),
        ({"base_url": "http://[::1]:8080/v1", "model": "claude-3-5-sonnet-20241022"}, "anthropic@local",
         "inferred", ("claude-3-5-sonnet-20241022", "anthropic")),
        ({"base_url": "http://host.docker.internal:4000", "model": "gemini-1.5-pro"}, "google@local",
         "inferred", ("gemini-1.5-pro", "google")),
        ({"base_url": "http://litellm.localhost/v1", "model": "deepseek-chat"}, "deepseek@local", "inferred",
         ("deepseek-chat", "deepseek")),
        ({"base_url": "0.0.0.0:9000", "model": "gpt-4o-mini-2030-12-31"}, "openai@local", "inferred",
         ("gpt-4o-mini", "openai")),
        # Names no provider knows: the local rate.
        ({"base_url": LOOPBACK, "model": "llama3.1:8b"}, "local", "local", None),
        ({"api_type": "openai", "base_url": "http://localhost:1234/v1", "model": "qwen2.5:7b"}, "local", "local",
         None),
        ({"base_url": LOOPBACK, "model": ""}, "local", "local", None),
        # ollama, and a base URL mapped to local: the local rate whatever the name.
        ({"api_type": "ollama", "base_url": LOOPBACK, "model": "gpt-4o-mini"}, "ollama", "local", None),
        ({"base_url": LOOPBACK, "model": "gpt-4o-mini", "base_url_map": {"http://127.0.0.1": "local"}}, "local",
         "local", None),
        # A mapped base URL, or an api_type that names the provider: no inference.
        ({"base_url": LOOPBACK, "model": "gpt-4o-mini", "base_url_map": {"http://127.0.0.1": "openai"}},
         "openai", "priced", ("gpt-4o-mini", "openai")),
        ({"api_type": "azure", "base_url": LOOPBACK, "model": "gpt-4o"}, "azure", "priced", ("gpt-4o", "azure")),
        # Not a local host: the name decides as before (no inference, no local rate).
        ({"base_url": "https://gateway.example.com/v1", "model": "gpt-4o-mini"}, "openai", "priced",
         ("gpt-4o-mini", "openai")),
    ],
)  # fmt: skip
def test_local_endpoint_resolution(
    config: dict[str, Any], provider: str, status: str, priced_as: tuple[str, str] | None
) -> None:
    rate = Decimal("0.5")
    detected = detect_provider(**config)
    assert detected == provider
    result = price_call(detected, config["model"], USAGE, at=AT, local_rate=rate)
    assert result.status == status
    if priced_as is None:
        assert result.cost == Decimal(USAGE.total_tokens) * rate / 1_000_000
    else:
        assert result.cost == reference(*priced_as)
    # Repricing a stored call (same provider id, same name) gives the same answer.
    pricing.clear_caches()
    again = price_call(detected, config["model"], USAGE, at=AT, local_rate=rate)
    assert (again.status, again.cost) == (result.status, result.cost)


def test_reported_loopback_row_is_not_free() -> None:
    provider = detect_provider(api_type="openai", base_url="http://127.0.0.1:51234/v1", model="gpt-4o-mini")
    result = price_call(provider, "gpt-4o-mini", MILLION, at=AT)
    assert (provider, result.status) == ("openai@local", "inferred")
    assert result.cost == reference("gpt-4o-mini", "openai", MILLION) > 0
    assert result.model_ref == "gpt-4o-mini"


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai@local", "my-own-finetune"),  # the name is no longer known: local rate
        ("anthropic@local", "gpt-4o-mini"),  # a name this provider does not list: local rate
    ],
)
def test_inferred_provider_without_the_name_falls_back_to_the_local_rate(provider: str, model: str) -> None:
    result = price_call(provider, model, USAGE, at=AT, local_rate=Decimal(2))
    assert (result.status, result.cost) == ("local", Decimal(USAGE.total_tokens) * 2 / 1_000_000)


def test_inferred_warning_once_per_endpoint_names_the_setting(caplog: pytest.LogCaptureFixture) -> None:
    secret_url = "http://user:s3cr3t-pass@127.0.0.1:8765/v1?key=s3cr3t-key"
    with caplog.at_level(logging.WARNING, logger="ag2_logging.pricing"):
        for _ in range(3):
            assert detect_provider(base_url=secret_url, model="gpt-4o-mini") == "openai@local"
        detect_provider(base_url=LOOPBACK, model="llama3")  # local: no warning
        detect_provider(base_url=LOOPBACK, model="gpt-4o-mini", base_url_map={"http://127.0.0.1": "local"})
        detect_provider(base_url="http://127.0.0.1:9999/v1", model="gpt-4o")  # another endpoint
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2, messages
    assert all("PROVIDER_BASE_URLS" in message for message in messages)
    assert "http://127.0.0.1:8765/v1" in messages[0] and "'openai@local'" in messages[0]
    assert "http://127.0.0.1:9999/v1" in messages[1]
    assert not any("s3cr3t" in message for message in messages)


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("unknown", "gpt-4o-mini"),
        ("openai", "made-up-model"),
        ("azure", "my-deployment"),
        ("no-such-provider", "gpt-4o"),
        ("openai", ""),
    ],
)
def test_unknown_is_never_zero_even_with_a_local_rate(provider: str, model: str) -> None:
    result = price_call(provider, model, USAGE, at=AT, local_rate=Decimal(5))
    assert (result.status, result.cost, result.input_cost, result.output_cost) == (
        "unknown",
        None,
        None,
        None,
    )


# --- the order of the cost rules -----------------------------------------------------------------

OVERRIDE = PriceOverride(model_pattern="*", input=Decimal(7), output=Decimal(11))


@pytest.mark.parametrize(
    ("provider", "model", "kwargs", "status", "cost"),
    [
        # Failed calls and AG2 cache hits cost 0 whatever else applies, missing usage included.
        ("openai", "gpt-4o", {"error": "boom"}, "priced", Decimal(0)),
        ("openai", "gpt-4o", {"is_cached": True}, "priced", Decimal(0)),
        ("openai", "made-up", {"is_cached": True}, "priced", Decimal(0)),
        ("ollama", "llama3", {"is_cached": True}, "priced", Decimal(0)),
        ("openai", "gpt-4o", {"is_cached": True, "overrides": [OVERRIDE]}, "priced", Decimal(0)),
        ("openai", "gpt-4o", {"error": "boom", "usage_missing": True}, "priced", Decimal(0)),
        ("openai", "gpt-4o", {"is_cached": True, "usage_missing": True}, "priced", Decimal(0)),
        # No usage reported: unknown, whatever could have priced it.
        ("openai", "gpt-4o", {"usage_missing": True}, "no_usage", None),
        ("openai", "gpt-4o", {"usage_missing": True, "overrides": [OVERRIDE]}, "no_usage", None),
        ("local", "llama3", {"usage_missing": True}, "no_usage", None),
        ("openai@local", "gpt-4o", {"usage_missing": True}, "no_usage", None),
        # An override beats genai-prices, the local rate and inference.
        ("openai", "gpt-4o", {"overrides": [OVERRIDE]}, "override", Decimal("0.117")),
        ("ollama", "llama3", {"overrides": [OVERRIDE]}, "override", Decimal("0.117")),
        ("openai@local", "gpt-4o", {"overrides": [OVERRIDE]}, "override", Decimal("0.117")),
        # Falsy flags change nothing.
        ("openai", "gpt-4o", {"error": "", "is_cached": False, "usage_missing": False}, "priced", None),
    ],
)
def test_cost_rule_order(
    provider: str, model: str, kwargs: dict[str, Any], status: str, cost: Decimal | None
) -> None:
    usage = NormalizedUsage(prompt_tokens=12_000, completion_tokens=3_000)
    result = price_call(provider, model, usage, at=AT, local_rate=Decimal(3), **kwargs)
    # 12,000 * 7 / 1e6 + 3,000 * 11 / 1e6 = 0.084 + 0.033 for the override rows
    expected = reference(model, provider, usage) if status == "priced" and cost is None else cost
    assert (result.status, result.cost) == (status, expected)
    if status in ("no_usage", "unknown"):
        assert (result.input_cost, result.output_cost) == (None, None)
    elif result.cost is not None:
        assert result.input_cost is not None and result.output_cost is not None
        assert result.input_cost + result.output_cost == result.cost


def test_override_for_a_provider_covers_its_local_endpoint() -> None:
    # An <provider>@local call is priced at <provider>'s price, so <provider>'s overrides price it
    # too; an override written for "openai@local" wins over "openai"'s at the same specificity,
    # and a named provider's over one for any provider.
    openai_only = PriceOverride(
        provider="openai", model_pattern="gpt-4o", input=Decimal(7), output=Decimal(11)
    )
    for_endpoint = PriceOverride(
        provider="openai@local", model_pattern="gpt-4o", input=Decimal(1), output=Decimal(1)
    )
    any_provider = PriceOverride(provider="", model_pattern="gpt-4o", input=Decimal(2), output=Decimal(2))
    result = price_call("openai@local", "gpt-4o", USAGE, at=AT, overrides=[openai_only])
    assert (result.status, result.override) == ("override", openai_only)
    result = price_call("openai@local", "gpt-4o", USAGE, at=AT, overrides=[openai_only, for_endpoint])
    assert (result.status, result.override) == ("override", for_endpoint)
    result = price_call("openai@local", "gpt-4o", USAGE, at=AT, overrides=[any_provider, openai_only])
    assert (result.status, result.override) == ("override", openai_only)
    # Another provider's endpoint is not covered.
    assert price_call("azure@local", "gpt-4o", USAGE, at=AT, overrides=[openai_only]).status == "inferred"


def test_price_statuses_are_the_models() -> None:
    from typing import get_args

    from ag2_logging.models import LLMCall

    assert set(get_args(pricing.PriceStatus)) == set(LLMCall.PriceStatus.values)


@pytest.mark.parametrize(
    ("provider", "expected"),
    [
        ("openai@local", "openai"),
        ("OpenAI@Local", "openai"),
        ("bedrock@local", "aws"),
        ("vertex@local", "google"),
        ("local@local", None),
        ("ollama@local", None),
        ("@local", None),
        ("openai", "openai"),
        ("local", None),
    ],
)
def test_genai_prices_provider_of_local_endpoint_ids(provider: str, expected: str | None) -> None:
    assert pricing.genai_prices_provider_id(provider) == expected


def test_warnings_stop_remembering_at_ten_thousand_pairs() -> None:
    # A stream of junk names (or endpoints) must not grow memory without bound: 10,000 pairs each.
    quiet = logging.getLogger("tests.pricing.quiet")
    quiet.disabled = True
    try:
        assert all(pricing.warn_unknown_once("openai", f"junk-{i}", quiet) for i in range(10_000))
        assert pricing.warn_unknown_once("openai", "one-more", quiet) is False
        assert pricing.warn_unknown_once("openai", "junk-0", quiet) is False
    finally:
        quiet.disabled = False
    from ag2_logging.pricing import prices

    logger = logging.getLogger("ag2_logging.pricing")
    logger.disabled = True
    try:
        for port in range(10_000):
            assert prices._warn_inferred_once(
                f"http://127.0.0.1:{port + 1}", "openai", "openai@local", "gpt-4o"
            )
        assert not prices._warn_inferred_once("http://127.0.0.1:65000", "openai", "openai@local", "gpt-4o")
        assert (
            detect_provider(base_url="http://127.0.0.1:65001", model="gpt-4o") == "openai@local"
        )  # still priced
    finally:
        logger.disabled = False
