"""OpenTelemetry export of real ag2 1.x chats: an ``ag2.Agent`` with the logging middleware against
the fake LLM server, its session run through the pipeline, then exported through the project's
global tracer provider; spans read back with the SDK's in-memory exporter.

ag2 1.x records each agent turn (its end and duration), so the trace has the session's root, an
``invoke_agent {agent}`` span per turn beneath it, and the turn's ``chat {model}`` and
``execute_tool {name}`` spans beneath the turn.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from ag2 import Agent
from ag2.config import OpenAIConfig
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from ag2_logging import ag2_logging_session, export
from ag2_logging.export import otel
from ag2_logging.integrations.ag2 import logging_middleware
from ag2_logging.models import AgentEvent, LLMCall, Session, ToolCall
from ag2_logging.testing import FakeLLMServer
from tests import scenarios
from tests.ag2.conftest import run
from tests.conftest import TEST_API_KEY, expected_cost
from tests.support import reset_otel_globals

pytestmark = [pytest.mark.ag2, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def spans_out(settings: Any) -> Iterator[InMemorySpanExporter]:
    """The project's own providers, set globally (spans kept in memory), and OTEL on."""
    reset_otel_globals()
    otel.reset_for_tests()
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))
    settings.AG2_LOGGING = {**settings.AG2_LOGGING, "OTEL": True, "OTEL_TIMEOUT": 1}
    yield spans
    reset_otel_globals()
    otel.reset_for_tests()


def ns(moment: Any) -> int:
    """A row's datetime as OpenTelemetry's nanoseconds (microseconds, as the export sends)."""
    return int(moment.timestamp() * 1e6) * 1000


def _cost_text(value: Decimal) -> str:
    return format(value.normalize(), "f")


def chat(config: OpenAIConfig, *messages: str) -> Session:
    """One ag2 1.x agent (tools ``add`` and ``fail_tool``) asked ``messages`` in one session."""
    agent = Agent(
        "writer",
        "You are helpful.",
        config=config,
        tools=[scenarios.add],
        middleware=[logging_middleware()],
    )

    async def conversation() -> Any:
        async with ag2_logging_session("chat-ag2-otel", "drafting", "acme") as recorder:
            for message in messages:
                await agent.ask(message)
        return recorder

    recorder = run(conversation())
    session = Session.objects.get(pk=recorder.session_id)
    assert session.summarized_at is not None  # the pipeline ran inline: summarize is done
    return session


def by_name(spans: Any) -> dict[str, list[ReadableSpan]]:
    found: dict[str, list[ReadableSpan]] = {}
    for span in sorted(spans, key=lambda s: s.start_time):
        found.setdefault(span.name, []).append(span)
    return found


def test_turns_are_spans_between_the_session_and_its_calls(
    llm: FakeLLMServer, model_config: OpenAIConfig, spans_out: InMemorySpanExporter
) -> None:
    session = chat(model_config, '[[tool:add {"a": 2, "b": 3}]]', "thanks [[marker:t2]]")
    export.after_summarize(session.pk)

    spans = spans_out.get_finished_spans()
    named = by_name(spans)
    assert sorted(named) == [
        "chat gpt-4o-mini",
        "execute_tool add",
        "invoke_agent drafting",
        "invoke_agent writer",
    ]
    (root,) = named["invoke_agent drafting"]
    turns, chats, (tool,) = named["invoke_agent writer"], named["chat gpt-4o-mini"], named["execute_tool add"]
    assert (len(turns), len(chats), len(spans)) == (2, 3, 7)
    assert len({s.context.trace_id for s in spans}) == 1
    assert root.parent is None
    assert all(t.parent is not None and t.parent.span_id == root.context.span_id for t in turns)

    # The first turn: a call asking for the tool, the tool, the call answering; the second: one call.
    first, second = turns
    assert [c.parent.span_id for c in chats if c.parent] == [first.context.span_id] * 2 + [
        second.context.span_id
    ]
    assert tool.parent is not None and tool.parent.span_id == first.context.span_id
    for turn, children in ((first, [chats[0], tool, chats[1]]), (second, [chats[2]])):
        assert turn.start_time <= children[0].start_time and children[-1].end_time <= turn.end_time
    assert chats[0].end_time <= tool.start_time <= tool.end_time <= chats[1].start_time

    # Their times are the rows'.
    rows = AgentEvent.objects.filter(session=session, name="turn").order_by("seq")
    for span, row in zip(turns, rows, strict=True):
        assert span.end_time == ns(row.created_at)
        assert abs(span.end_time - span.start_time - row.duration_ms * 1e6) <= 1000  # microseconds
        assert span.kind == SpanKind.INTERNAL and span.status.status_code == StatusCode.UNSET
    calls = list(LLMCall.objects.filter(session=session).order_by("seq"))
    assert [(s.start_time, s.end_time) for s in chats] == [(ns(c.started_at), ns(c.ended_at)) for c in calls]
    assert root.start_time == ns(session.started_at) and root.end_time == ns(session.ended_at)

    # Attributes: the turn's agent and finish reason; each call's usage, cost and finish reason.
    assert [dict(t.attributes) for t in turns] == [
        {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": "writer",
            "gen_ai.conversation.id": "chat-ag2-otel",
            "gen_ai.response.finish_reasons": ("stop",),
        }
    ] * 2
    served = llm.successful()
    assert len(served) == 3
    for span, request, call, reason in zip(chats, served, calls, ["tool_calls", "stop", "stop"], strict=True):
        usage = request.usage
        assert span.kind == SpanKind.CLIENT
        assert dict(span.attributes) == {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini",
            "gen_ai.response.id": request.response_id,
            "gen_ai.agent.name": "writer",
            "gen_ai.response.finish_reasons": (reason,),
            "gen_ai.usage.input_tokens": usage.prompt_tokens,
            "gen_ai.usage.output_tokens": usage.completion_tokens,
            **({"gen_ai.usage.cache_read.input_tokens": usage.cached_tokens} if usage.cached_tokens else {}),
            **(
                {"gen_ai.usage.reasoning.output_tokens": usage.reasoning_tokens}
                if usage.reasoning_tokens
                else {}
            ),
            "ag2_logging.cost.amount": _cost_text(call.cost),
            "ag2_logging.cost.currency": "USD",
            "ag2_logging.price_status": "priced",
        }
        assert call.cost == expected_cost(
            "gpt-4o-mini", usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens, 0
        )
    (tool_row,) = ToolCall.objects.filter(session=session)
    assert dict(tool.attributes) == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "add",
        "gen_ai.tool.type": "function",
        "gen_ai.tool.call.id": f"call_fake_{served[0].index}",
        "gen_ai.agent.name": "writer",
    }
    assert (tool.start_time, tool.end_time) == (ns(tool_row.started_at), ns(tool_row.ended_at))
    assert root.attributes["gen_ai.agent.name"] == "drafting"
    assert root.attributes["ag2_logging.cost.amount"] == _cost_text(sum((c.cost for c in calls), Decimal(0)))
    session.refresh_from_db()
    assert session.exported_at is not None


def test_a_failed_turn_is_an_error_span_with_its_failed_call(
    llm: FakeLLMServer, model_config: OpenAIConfig, spans_out: InMemorySpanExporter
) -> None:
    with pytest.raises(Exception, match="500"):
        chat(model_config, "[[fail:500]] boom")
    session = Session.objects.get(chat_id="chat-ag2-otel")
    export.after_summarize(session.pk)
    named = by_name(spans_out.get_finished_spans())
    (root,), (turn,), (call,) = (
        named["invoke_agent drafting"],
        named["invoke_agent writer"],
        named["chat gpt-4o-mini"],
    )
    assert turn.parent is not None and turn.parent.span_id == root.context.span_id
    assert call.parent is not None and call.parent.span_id == turn.context.span_id
    assert turn.status.status_code == StatusCode.ERROR and call.status.status_code == StatusCode.ERROR
    # "InternalServerError: Error code: 500 - {...}": the HTTP status, as for a classic session.
    assert call.attributes["error.type"] == turn.attributes["error.type"] == "500"


def test_bodies_of_an_ag2_call_only_when_asked_and_redacted(
    llm: FakeLLMServer, model_config: OpenAIConfig, spans_out: InMemorySpanExporter, settings: Any
) -> None:
    settings.AG2_LOGGING = {**settings.AG2_LOGGING, "OTEL_CAPTURE_CONTENT": True}
    secret = "sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z" * 2
    session = chat(model_config, f"my key is {secret} [[marker:b1]]")
    export.after_summarize(session.pk)
    (call,) = by_name(spans_out.get_finished_spans())["chat gpt-4o-mini"]
    flat = repr(dict(call.attributes))
    assert secret not in flat and TEST_API_KEY not in flat
    assert "[REDACTED" in call.attributes["gen_ai.input.messages"]
    # ag2 1.x's reply is recorded as one message with its finish reason: exported as the output.
    output = json.loads(call.attributes["gen_ai.output.messages"])
    assert output == [{"content": "fake reply 1 [[marker:b1]]", "tool_calls": []}]
