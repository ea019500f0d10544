"""Metrics of an exported session: token usage and duration histograms by the GenAI
conventions' names (see :mod:`ag2_logging.export.semconv`), and a cost counter.

Recorded once per session, right after its spans were delivered (a session whose spans failed is
recorded when it is exported later, so a retry never counts twice). Instruments:

* tokens, per LLM call with usage: ``latest``: one histogram per kind
  (``gen_ai.client.inference.usage.input_tokens`` ...), ``core``: ``gen_ai.client.token.usage``
  with ``gen_ai.token.type`` = ``input`` / ``output``; unit ``{token}``;
* duration, per LLM call, in seconds: ``gen_ai.client.inference.duration`` (``latest``) or
  ``gen_ai.client.operation.duration`` (``core``); per tool execution
  ``gen_ai.execute_tool.duration`` (``latest`` only);
* ``ag2_logging.cost`` (counter, unit ``USD``): the priced calls' cost by
  ``gen_ai.request.model``, ``gen_ai.provider.name``, ``ag2_logging.enterprise.id`` and
  ``ag2_logging.workflow.name``.
"""

from __future__ import annotations

from typing import Any

from ag2_logging.export import semconv as sc
from ag2_logging.export.plan import error_type
from ag2_logging.models import LLMCall, Session, ToolCall

#: Buckets the conventions recommend for token histograms and for durations (seconds).
TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864]
DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]


class Instruments:
    """The instruments of one meter provider and convention version (made once)."""

    def __init__(self, provider: Any, names: sc.Names) -> None:
        meter = provider.get_meter("ag2_logging")
        self.names = names

        def tokens(name: str) -> Any:
            return meter.create_histogram(
                name,
                unit="{token}",
                description="GenAI tokens",
                explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
            )

        self.tokens = {kind: tokens(name) for kind, name in names.token_metrics.items()}
        self.token_usage = tokens(names.token_metric) if names.token_metric else None
        self.duration = meter.create_histogram(
            names.duration_metric, unit="s", description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )  # fmt: skip
        self.tool_duration = (
            meter.create_histogram(
                names.tool_duration_metric, unit="s", description="Tool execution duration"
            )
            if names.tool_duration_metric
            else None
        )
        self.cost = meter.create_counter(
            sc.COST_METRIC, unit="USD", description="Cost of the priced LLM calls"
        )


_made: dict[tuple[int, str], Instruments] = {}


def instruments(provider: Any, names: sc.Names) -> Instruments:
    key = (id(provider), names.version)
    if key not in _made:
        _made[key] = Instruments(provider, names)
    return _made[key]


def _token_counts(call: LLMCall) -> dict[str, int]:
    return {
        "input": call.prompt_tokens,
        "output": call.completion_tokens,
        "cache_read": call.cached_tokens,
        "cache_write": call.cache_write_tokens,
        "reasoning": call.reasoning_tokens,
    }


def _record_call(inst: Instruments, call: LLMCall, attrs: dict[str, Any]) -> None:
    if call.price_status != LLMCall.PriceStatus.NO_USAGE and call.status == LLMCall.Status.SUCCESS:
        counts = _token_counts(call)
        for kind, histogram in inst.tokens.items():
            if kind in {"input", "output"} or counts[kind]:
                histogram.record(counts[kind], attrs)
        if inst.token_usage is not None:
            inst.token_usage.record(counts["input"], {**attrs, sc.TOKEN_TYPE: "input"})
            inst.token_usage.record(counts["output"], {**attrs, sc.TOKEN_TYPE: "output"})
    if call.started_at and call.ended_at:
        extra = {sc.ERROR_TYPE: error_type(call.error)} if call.status == LLMCall.Status.ERROR else {}
        inst.duration.record((call.ended_at - call.started_at).total_seconds(), {**attrs, **extra})


def record_session(provider: Any, names: sc.Names, session: Session) -> None:
    """Record the session's calls and tool executions on ``provider``'s instruments."""
    inst = instruments(provider, names)
    for call in session.llm_calls.all():
        attrs = {
            sc.OPERATION: "chat",
            sc.PROVIDER: sc.provider_name(call.provider),
            sc.REQUEST_MODEL: call.model,
        }
        _record_call(inst, call, attrs)
        if call.cost is not None and call.cost > 0:
            inst.cost.add(
                float(call.cost),
                {**attrs, sc.ENTERPRISE_ID: session.enterprise_id, sc.WORKFLOW_NAME: session.workflow_name},
            )
    if inst.tool_duration is not None:
        tool: ToolCall
        for tool in session.tool_calls.all():
            seconds = _tool_seconds(tool)
            if seconds is not None:
                attrs = {sc.OPERATION: "execute_tool", sc.TOOL_NAME: tool.name}
                inst.tool_duration.record(seconds, attrs)


def _tool_seconds(tool: ToolCall) -> float | None:
    if tool.duration_ms is not None:
        return tool.duration_ms / 1000.0
    if tool.started_at and tool.ended_at:
        return (tool.ended_at - tool.started_at).total_seconds()
    return None
