"""``pricing.call_cost`` (the recorder's hot path, with a model's cached plan) answers what
``price_call`` answers: the same cost to the last digit and the same status, for every kind of
model (fixed prices, time-dependent ones, inferred local endpoints, local and unknown models),
with overrides, errors, cached and usage-less calls, and usage of every shape; and
``normalize_usage`` clips as it did before its arithmetic was written without max/min calls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from ag2_logging.pricing import (
    NormalizedUsage,
    PriceOverride,
    call_cost,
    fixed_plan_cost,
    normalize_usage,
    price_call,
)

MODELS = [
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4o-mini-2024-07-18"),
    ("openai", "gpt-4o"),
    ("openai", "o3-mini"),
    ("anthropic", "claude-3-5-sonnet-20241022"),
    ("google", "gemini-2.5-pro"),  # tiered by prompt length
    ("deepseek", "deepseek-chat"),  # off-peak hours: time-dependent
    ("openai@local", "gpt-4o-mini"),  # inferred
    ("openai@local", "my-own-model"),  # local rate
    ("ollama", "llama3.1:8b"),
    ("openai", "no-such-model"),
    ("no-such-provider", "gpt-4o"),
]
OVERRIDE = PriceOverride(provider="openai", model_pattern="gpt-4o", input=Decimal("1.5"), output=Decimal("6"))
counts = st.integers(0, 3_000_000)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(MODELS),
    counts,
    counts,
    counts,
    counts,
    counts,
    st.integers(0, 24 * 400),
    st.sampled_from(["", "boom"]),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
def test_call_cost_is_price_calls_cost_and_status(
    model: tuple[str, str],
    prompt: int,
    completion: int,
    cached: int,
    reasoning: int,
    cache_write: int,
    hours: int,
    error: str,
    is_cached: bool,
    usage_missing: bool,
    overridden: bool,
) -> None:
    provider, name = model
    usage: NormalizedUsage = normalize_usage(provider, prompt, completion, cached, reasoning, cache_write)
    at = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(hours=hours)
    kwargs = {
        "at": at,
        "overrides": (OVERRIDE,) if overridden else (),
        "local_rate": Decimal("0.25"),
        "error": error,
        "is_cached": is_cached,
        "usage_missing": usage_missing,
    }
    expected = price_call(provider, name, usage, **kwargs)  # type: ignore[arg-type]
    assert call_cost(provider, name, usage, **kwargs) == (expected.cost, expected.status)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(MODELS), counts, counts, counts, counts, counts)
def test_fixed_plan_cost_is_price_calls_cost_where_it_answers(
    model: tuple[str, str], prompt: int, completion: int, cached: int, reasoning: int, cache_write: int
) -> None:
    """The budgets' shortcut: where a model has a fixed plan, its cost is ``price_call``'s with
    no override (to the last digit); elsewhere it says None and the caller asks ``call_cost``."""
    provider, name = model
    usage = normalize_usage(provider, prompt, completion, cached, reasoning, cache_write)
    cost = fixed_plan_cost(provider, name, usage)
    if cost is not None:
        assert cost == price_call(provider, name, usage).cost


def test_fixed_plan_cost_answers_for_a_fixed_price_model_only() -> None:
    usage = normalize_usage("openai", 1000, 100, 0, 0, 0)
    assert fixed_plan_cost("openai", "gpt-4o-mini", usage) == price_call("openai", "gpt-4o-mini", usage).cost
    for provider, name in [
        ("openai", "no-such-model"),
        ("openai@local", "my-own-model"),
        ("ollama", "llama3.1:8b"),
    ]:
        assert fixed_plan_cost(provider, name, usage) is None


def test_a_fixed_price_model_is_priced_and_not_zero() -> None:
    usage = normalize_usage("openai", 512, 96, 256, 32)
    cost, status = call_cost("openai", "gpt-4o-mini-2024-07-18", usage)
    assert status == "priced" and cost is not None and cost > 0
    assert cost == price_call("openai", "gpt-4o-mini-2024-07-18", usage).cost


def _old_normalize(
    prompt: int | None,
    completion: int | None,
    cached: int | None,
    reasoning: int | None,
    cache_write: int | None,
    includes_cached: bool,
    includes_reasoning: bool,
) -> tuple[int, int, int, int, int, int]:
    """normalize_usage's arithmetic as it stood (max/min calls), the oracle of the one below."""
    p, c = max(prompt or 0, 0), max(completion or 0, 0)
    ca, r, w = max(cached or 0, 0), max(reasoning or 0, 0), max(cache_write or 0, 0)
    if not includes_cached:
        p += ca + w
    if not includes_reasoning:
        c += r
    ca = min(ca, p)
    w = min(w, p - ca)
    r = min(r, c)
    return p, c, ca, r, w, p + c


maybe_counts = st.one_of(st.none(), st.integers(-5, 5), st.integers(-(10**9), 10**9))


@settings(max_examples=500, deadline=None)
@given(maybe_counts, maybe_counts, maybe_counts, maybe_counts, maybe_counts, st.booleans(), st.booleans())
def test_normalize_usage_clips_as_it_did(
    prompt: int | None,
    completion: int | None,
    cached: int | None,
    reasoning: int | None,
    cache_write: int | None,
    includes_cached: bool,
    includes_reasoning: bool,
) -> None:
    usage = normalize_usage(
        "openai",
        prompt,
        completion,
        cached,
        reasoning,
        cache_write,
        prompt_includes_cached=includes_cached,
        completion_includes_reasoning=includes_reasoning,
    )
    got = (
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.cached_tokens,
        usage.reasoning_tokens,
        usage.cache_write_tokens,
        usage.total_tokens,
    )
    assert got == _old_normalize(
        prompt, completion, cached, reasoning, cache_write, includes_cached, includes_reasoning
    )
    # The checked constructor accepts what was built without the checks.
    assert NormalizedUsage(*got[:5]) == usage
