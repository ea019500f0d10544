"""Each provider's OpenAI-compatible usage object read through ONE table
(``pricing.usage.USAGE_REPORTS``): token counts in the app's convention, never counting the same
tokens twice, and the cost genai-prices itself computes for them.

Generation-neutral (no AG2 import): runs with either virtualenv. The same reports served by the
fake LLM server to real classic agents are in tests/test_messages_kept.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import genai_prices
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openai.types import CompletionUsage

from ag2_logging.pricing import price_call
from ag2_logging.pricing.usage import NormalizedUsage, usage_from_report

#: DeepSeek's prices at this moment are the ones the issue quotes (0.00247 for the report below).
AT = datetime(2025, 6, 1, 12, tzinfo=UTC)

DEEPSEEK = {
    "prompt_tokens": 16000,
    "prompt_cache_hit_tokens": 12000,
    "prompt_cache_miss_tokens": 4000,
    "completion_tokens": 500,
    "total_tokens": 16500,
}

# (provider, model, raw usage, expected (prompt, completion, cached, reasoning, cache_write) by hand)
CASES: list[tuple[str, str, dict[str, Any], tuple[int, int, int, int, int]]] = [
    # the issue's report: 12000 of the 16000 prompt tokens were cache hits
    ("deepseek", "deepseek-chat", DEEPSEEK, (16000, 500, 12000, 0, 0)),
    # DeepSeek sending the same hits under OpenAI's name as well: counted once
    (
        "deepseek",
        "deepseek-chat",
        {**DEEPSEEK, "prompt_tokens_details": {"cached_tokens": 12000}},
        (16000, 500, 12000, 0, 0),
    ),
    # deepseek-reasoner: reasoning inside completion_tokens
    (
        "deepseek",
        "deepseek-reasoner",
        {**DEEPSEEK, "completion_tokens_details": {"reasoning_tokens": 300}},
        (16000, 500, 12000, 300, 0),
    ),
    # OpenAI: cached inside prompt, reasoning inside completion
    (
        "openai",
        "gpt-4o-mini",
        {
            "prompt_tokens": 2006,
            "completion_tokens": 300,
            "prompt_tokens_details": {"cached_tokens": 1920},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
        (2006, 300, 1920, 0, 0),
    ),
    # Azure OpenAI: the same object
    (
        "azure",
        "gpt-4o-mini",
        {"prompt_tokens": 1000, "completion_tokens": 50, "prompt_tokens_details": {"cached_tokens": 300}},
        (1000, 50, 300, 0, 0),
    ),
    # Anthropic-compatible (prompt_tokens the whole prompt, cache reads/writes beside it)
    (
        "anthropic",
        "claude-3-5-haiku-20241022",
        {
            "prompt_tokens": 3000,
            "completion_tokens": 200,
            "cache_read_input_tokens": 2000,
            "cache_creation_input_tokens": 500,
        },
        (3000, 200, 2000, 0, 500),
    ),
    # Anthropic's native shape (input_tokens excludes both): 500 + 2000 + 500 = 3000
    (
        "anthropic",
        "claude-3-5-haiku-20241022",
        {
            "input_tokens": 500,
            "output_tokens": 200,
            "cache_read_input_tokens": 2000,
            "cache_creation_input_tokens": 500,
        },
        (3000, 200, 2000, 0, 500),
    ),
    # Gemini-compatible: thinking only in total_tokens (1725 - 758 - 102 = 865)
    (
        "google",
        "gemini-2.5-flash",
        {"prompt_tokens": 758, "completion_tokens": 102, "total_tokens": 1725},
        (758, 967, 0, 865, 0),
    ),
    # xAI: reasoning reported beside completion_tokens (48 + 300)
    (
        "x-ai",
        "grok-3-mini",
        {
            "prompt_tokens": 125,
            "completion_tokens": 48,
            "total_tokens": 473,
            "prompt_tokens_details": {"text_tokens": 125, "cached_tokens": 98},
            "completion_tokens_details": {"reasoning_tokens": 300},
        },
        (125, 348, 98, 300, 0),
    ),
    # OpenRouter: cache writes inside prompt_tokens_details, its own cost ignored
    (
        "openrouter",
        "anthropic/claude-3.5-haiku",
        {
            "prompt_tokens": 3000,
            "completion_tokens": 100,
            "cost": 0.95,
            "prompt_tokens_details": {"cached_tokens": 1000, "cache_write_tokens": 500, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
        (3000, 100, 1000, 0, 500),
    ),
    (
        "groq",
        "llama-3.3-70b-versatile",
        {
            "prompt_tokens": 500,
            "completion_tokens": 50,
            "queue_time": 0.01,
            "prompt_tokens_details": {"cached_tokens": 200},
        },
        (500, 50, 200, 0, 0),
    ),
    (
        "mistral",
        "mistral-small-latest",
        {"prompt_tokens": 1000, "completion_tokens": 50, "prompt_tokens_details": {"cached_tokens": 400}},
        (1000, 50, 400, 0, 0),
    ),
    # Together: a top-level cached_tokens
    (
        "together",
        "meta-llama/Llama-3.3-70B-Instruct-Turbo",
        {"prompt_tokens": 1000, "completion_tokens": 50, "cached_tokens": 250},
        (1000, 50, 250, 0, 0),
    ),
    (
        "fireworks",
        "accounts/fireworks/models/deepseek-v3-0324",
        {"prompt_tokens": 1000, "completion_tokens": 50, "prompt_tokens_details": {"cached_tokens": 300}},
        (1000, 50, 300, 0, 0),
    ),
]


def _ids(case: tuple[str, str, dict[str, Any], tuple[int, ...]]) -> str:
    return f"{case[0]}-{'-'.join(sorted(case[2]))[:40]}"


def genai_cost(provider: str, model: str, expected: tuple[int, int, int, int, int]) -> Decimal:
    """genai-prices' own price of hand-computed counts (input includes cache reads and writes)."""
    prompt, completion, cached, _reasoning, write = expected
    usage = genai_prices.Usage(
        input_tokens=prompt, cache_read_tokens=cached, cache_write_tokens=write, output_tokens=completion
    )
    return genai_prices.calc_price(usage, model, provider_id=provider, genai_request_timestamp=AT).total_price


def counts(usage: NormalizedUsage | None) -> tuple[int, int, int, int, int]:
    assert usage is not None
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    return (
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.cached_tokens,
        usage.reasoning_tokens,
        usage.cache_write_tokens,
    )


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_each_providers_report_is_read_once(case: tuple[str, str, dict[str, Any], tuple[int, ...]]) -> None:
    provider, _model, raw, expected = case
    assert counts(usage_from_report(provider, raw)) == expected


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_the_sdks_usage_object_reads_like_its_dict(
    case: tuple[str, str, dict[str, Any], tuple[int, ...]],
) -> None:
    """What the openai SDK hands AG2: a CompletionUsage (built as the SDK builds a reply's, with no
    validation) whose provider fields are extras."""
    provider, _model, raw, expected = case
    sdk = CompletionUsage.construct(**raw)
    assert counts(usage_from_report(provider, sdk)) == expected


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_cost_is_genai_prices_own(
    case: tuple[str, str, dict[str, Any], tuple[int, int, int, int, int]],
) -> None:
    provider, model, raw, expected = case
    usage = usage_from_report(provider, raw)
    assert usage is not None
    result = price_call(provider, model, usage, at=AT)
    assert result.cost == genai_cost(provider, model, expected), result


def test_the_issues_deepseek_call_costs_what_the_issue_says() -> None:
    usage = usage_from_report("deepseek", DEEPSEEK)
    assert usage is not None and usage.cached_tokens == 12000
    assert price_call("deepseek", "deepseek-chat", usage, at=AT).cost == Decimal("0.00247")


@pytest.mark.parametrize("report", [None, {}, {"total_tokens": 0}, {"queue_time": 0.2}], ids=repr)
def test_no_usage_is_none_never_zero_tokens(report: Any) -> None:
    assert usage_from_report("openai", report) is None
    assert usage_from_report("deepseek", report) is None


@pytest.mark.parametrize(
    ("provider", "raw", "expected"),
    [
        # an unlisted provider (unmapped gateway) still reads DeepSeek's and OpenRouter's names
        ("unknown", DEEPSEEK, (16000, 500, 12000, 0, 0)),
        (
            "some-gateway",
            {
                "prompt_tokens": 100,
                "completion_tokens": 5,
                "prompt_tokens_details": {"cache_write_tokens": 40},
            },
            (100, 5, 0, 0, 40),
        ),
        # malformed counts: read as 0, breakdowns clipped, never an exception
        ("openai", {"prompt_tokens": "12", "completion_tokens": None}, (12, 0, 0, 0, 0)),
        ("openai", {"prompt_tokens": -3, "completion_tokens": 7, "total_tokens": "x"}, (0, 7, 0, 0, 0)),
        (
            "openai",
            {
                "prompt_tokens": 10,
                "completion_tokens": 5,
                "completion_tokens_details": {"reasoning_tokens": 9},
            },
            (10, 5, 0, 5, 0),
        ),
        # cache larger than a prompt said to include it: the prompt did not include it
        (
            "anthropic",
            {"prompt_tokens": 100, "completion_tokens": 1, "cache_read_input_tokens": 900},
            (1000, 1, 900, 0, 0),
        ),
        # aliases of the table's ids
        (
            "xai",
            {
                "prompt_tokens": 1,
                "completion_tokens": 2,
                "completion_tokens_details": {"reasoning_tokens": 3},
            },
            (1, 5, 0, 3, 0),
        ),
        ("gemini", {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 10}, (1, 9, 0, 7, 0)),
    ],
)
def test_unlisted_and_malformed_reports(
    provider: str, raw: dict[str, Any], expected: tuple[int, ...]
) -> None:
    assert counts(usage_from_report(provider, raw)) == expected


_counts = st.integers(min_value=0, max_value=2_000_000)


@given(miss=_counts, hit=_counts, completion=_counts, reasoning=_counts, twice=st.booleans())
def test_deepseek_property_hits_are_counted_once(
    miss: int, hit: int, completion: int, reasoning: int, twice: bool
) -> None:
    reasoning = min(reasoning, completion)
    raw: dict[str, Any] = {
        "prompt_tokens": hit + miss,
        "prompt_cache_hit_tokens": hit,
        "prompt_cache_miss_tokens": miss,
        "completion_tokens": completion,
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }
    if twice:
        raw["prompt_tokens_details"] = {"cached_tokens": hit}
    assert counts(usage_from_report("deepseek", raw)) == (hit + miss, completion, hit, reasoning, 0)


@given(
    fresh=_counts,
    read=_counts,
    write=_counts,
    output=_counts,
    native=st.booleans(),
)
def test_anthropic_property_one_convention_whatever_the_shape(
    fresh: int, read: int, write: int, output: int, native: bool
) -> None:
    """The native report (input excludes the cache) and the OpenAI-compatible one (prompt includes
    it) of the same call give the same counts."""
    raw: dict[str, Any] = {"cache_read_input_tokens": read, "cache_creation_input_tokens": write}
    if native:
        raw |= {"input_tokens": fresh, "output_tokens": output}
    else:
        raw |= {"prompt_tokens": fresh + read + write, "completion_tokens": output}
    assert counts(usage_from_report("anthropic", raw)) == (fresh + read + write, output, read, 0, write)
