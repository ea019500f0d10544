"""Prometheus metrics read from the rollups at scrape time (needs ``prometheus-client``).

Read from the database, not from one process's memory, so every web worker answers the same
figures whatever process ran the pipeline. Families (labels ``model``, ``provider``,
``enterprise``, ``workflow``), cumulative since the first rollup:

* ``ag2_logging_cost_usd_total``: the priced calls' cost in USD (counter);
* ``ag2_logging_llm_calls_total``, ``ag2_logging_llm_errors_total``, ``ag2_logging_unpriced_calls_total``;
* ``ag2_logging_tokens_total`` with ``token_type`` = ``input`` / ``output`` / ``cache_read`` /
  ``reasoning`` (counter);
* ``gen_ai_client_operation_duration_seconds``: the LLM calls' latency histogram (from the
  model-day rollups' buckets, every doubling from 7.8 ms; a bucket counts latencies below it).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

from django.db.models import Sum
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from ag2_logging.models import DailyRollup, ModelDayRollup
from ag2_logging.querysets import LATENCY_BUCKET_BOUNDS_MS

LABELS = ["model", "provider", "enterprise", "workflow"]
KEY = ("model", "provider", "enterprise_id", "workflow_name")
#: Indexes of ``LATENCY_BUCKET_BOUNDS_MS`` exported as ``le`` bounds (every sixth: a doubling).
BOUND_INDEXES = tuple(range(0, len(LATENCY_BUCKET_BOUNDS_MS), 6))
_COUNTS = {
    "call_count": ("ag2_logging_llm_calls", "LLM calls recorded"),
    "error_count": ("ag2_logging_llm_errors", "LLM calls that failed"),
    "unpriced_calls": ("ag2_logging_unpriced_calls", "LLM calls without a price"),
}
_TOKENS = {
    "input": "prompt_tokens",
    "output": "completion_tokens",
    "cache_read": "cached_tokens",
    "reasoning": "reasoning_tokens",
}


def _labels(row: dict[str, Any]) -> list[str]:
    return [str(row[k] or "") for k in KEY]


def _totals() -> list[dict[str, Any]]:
    fields = ["cost", "latency_ms_sum", *_COUNTS, *_TOKENS.values()]
    return list(
        DailyRollup.objects.values(*KEY).annotate(**{f"s_{f}": Sum(f) for f in fields}).order_by(*KEY)
    )


def _histograms() -> dict[tuple[str, ...], list[int]]:
    merged: dict[tuple[str, ...], list[int]] = {}
    for row in ModelDayRollup.objects.values(*KEY, "latency_buckets").iterator():
        buckets = merged.setdefault(tuple(_labels(row)), [0] * (len(LATENCY_BUCKET_BOUNDS_MS) + 1))
        for i, n in enumerate(row["latency_buckets"] or []):
            if i < len(buckets):
                buckets[i] += int(n)
    return merged


def _histogram_family(totals: list[dict[str, Any]]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(
        "gen_ai_client_operation_duration_seconds", "LLM call duration", labels=LABELS, unit="seconds"
    )
    sums = {tuple(_labels(r)): float(r["s_latency_ms_sum"] or 0) / 1000.0 for r in totals}
    for labels, buckets in _histograms().items():
        below = [
            (f"{LATENCY_BUCKET_BOUNDS_MS[i] / 1000.0:.6g}", float(sum(buckets[:i]))) for i in BOUND_INDEXES
        ]
        family.add_metric(list(labels), [*below, ("+Inf", float(sum(buckets)))], sums.get(labels, 0.0))
    return family


class RollupCollector(Collector):
    """A collector that reads the rollups on each scrape."""

    def collect(self) -> Iterable[Metric]:
        return list(self._families())

    def _families(self) -> Iterator[Metric]:
        totals = _totals()
        cost = CounterMetricFamily(
            "ag2_logging_cost_usd", "Cost of the priced LLM calls (USD)", labels=LABELS
        )
        tokens = CounterMetricFamily(
            "ag2_logging_tokens", "Tokens of the LLM calls", labels=[*LABELS, "token_type"]
        )
        counts = {f: CounterMetricFamily(name, text, labels=LABELS) for f, (name, text) in _COUNTS.items()}
        for row in totals:
            labels = _labels(row)
            cost.add_metric(labels, float(row["s_cost"] or Decimal(0)))
            for field, family in counts.items():
                family.add_metric(labels, float(row[f"s_{field}"] or 0))
            for kind, field in _TOKENS.items():
                tokens.add_metric([*labels, kind], float(row[f"s_{field}"] or 0))
        yield cost
        yield tokens
        yield from counts.values()
        yield _histogram_family(totals)


def registry() -> CollectorRegistry:
    """A registry holding only the rollup collector (the process's own metrics stay out)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(RollupCollector())
    return reg
