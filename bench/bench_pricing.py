"""Pricing cost per call after the first look-up of a model, against genai-prices' own calc_price.

Target (issue "Cost for every provider"): under 5 µs per call for a priced model.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from decimal import Decimal
from typing import Any

from bench._common import interleaved, row, us

TARGET_SECONDS = 5e-6
MODELS = [("openai", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4-5"), ("google", "gemini-2.5-pro")]


def run(quick: bool = False) -> list[dict[str, Any]]:
    import genai_prices

    from ag2_logging import pricing

    at = dt.datetime.now(dt.UTC)
    usage = pricing.NormalizedUsage(
        prompt_tokens=1200, completion_tokens=300, cached_tokens=400, reasoning_tokens=100
    )
    reference_usage = genai_prices.Usage(
        input_tokens=1200, cache_read_tokens=400, output_tokens=300, output_reasoning_tokens=100
    )
    rows = []
    for provider, model in MODELS:
        first = pricing.price_call(provider, model, usage, at=at)  # the first look-up, not timed
        assert first.cost is not None and first.cost > Decimal(0), (provider, model)

        def ours(n: int, provider: str = provider, model: str = model) -> None:
            for _ in range(n):
                pricing.price_call(provider, model, usage, at=at)

        def reference(n: int, provider: str = provider, model: str = model) -> None:
            for _ in range(n):
                genai_prices.calc_price(
                    reference_usage, model, provider_id=provider, genai_request_timestamp=at
                )

        medians = interleaved({"ours": ours, "reference": reference}, rounds=5 if quick else 15)
        rows.append(
            row(
                f"pricing per call, {provider}/{model} (cached look-up)",
                us(medians["ours"]),
                us(medians["reference"]) + " genai_prices.calc_price",
                medians["ours"] / medians["reference"],
                "< 5 µs",
                medians["ours"] < TARGET_SECONDS,
            )
        )
    return rows


if __name__ == "__main__":
    json.dump(run(quick="--quick" in sys.argv), sys.stdout, indent=2, default=str)
    print()
