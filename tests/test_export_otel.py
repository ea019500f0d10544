"""OpenTelemetry export: real classic AG2 chats against the fake LLM server, their sessions run
through the pipeline, then exported; spans read back with the SDK's in-memory exporter and, on
the wire, by an OTLP/HTTP receiver on loopback that decodes the protobuf."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import autogen
import pytest
from opentelemetry import metrics, trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from ag2_logging import ag2_logging_session, export
from ag2_logging.export import otel
from ag2_logging.models import Session
from ag2_logging.testing import FakeLLMServer
from tests.conftest import TEST_API_KEY, expected_cost, llm_config
from tests.support import reset_otel_globals

pytestmark = pytest.mark.django_db(transaction=True)


def add(a: int, b: int) -> int:
    return a + b


# -- OpenTelemetry globals and settings -------------------------------------------------------


@pytest.fixture
def no_globals() -> Iterator[None]:
    reset_otel_globals()
    otel.reset_for_tests()
    yield
    reset_otel_globals()
    otel.reset_for_tests()


@pytest.fixture
def memory(no_globals: None) -> tuple[InMemorySpanExporter, InMemoryMetricReader]:
    """The project's own providers, set globally: spans in memory, metrics read on demand."""
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    trace.set_tracer_provider(provider)
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    return spans, reader


def otel_settings(settings: Any, **values: Any) -> None:
    settings.AG2_LOGGING = {**settings.AG2_LOGGING, "OTEL": True, "OTEL_TIMEOUT": 1, **values}


# -- chats ------------------------------------------------------------------------------------


def run_chat(
    server: FakeLLMServer, message: str, chat: str = "chat-otel", turns: int = 1, **extra: Any
) -> Session:
    assistant = autogen.AssistantAgent("assistant", llm_config=llm_config(server, **extra))
    user = autogen.UserProxyAgent(
        "user", human_input_mode="NEVER", code_execution_config=False, max_consecutive_auto_reply=2
    )
    autogen.register_function(add, caller=assistant, executor=user, description="Add two integers.")
    try:
        with ag2_logging_session(chat, "triage", "acme") as recorder:
            assert recorder is not None
            user.initiate_chat(assistant, message=message, max_turns=turns)
    except Exception:
        pass  # a failed chat is recorded (and exported) as failed
    session = Session.objects.get(pk=recorder.session_id)
    assert session.summarized_at is not None  # the pipeline ran inline: summarize is done
    return session


TOOL_CHAT = '[[tool:add {"a": 2, "b": 3}]] [[marker:o1]]'


def _by_name(spans: Any) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for span in spans:
        found.setdefault(span.name, []).append(span)
    return found


def _cost_text(value: Decimal) -> str:
    return format(value.normalize(), "f")


@pytest.mark.parametrize(
    ("semconv", "cache_write_name"),
    [
        ("latest", "gen_ai.usage.cache_write.input_tokens"),
        ("core", "gen_ai.usage.cache_creation.input_tokens"),
    ],
)
def test_session_becomes_one_trace_with_exact_spans(llm, settings, memory, semconv, cache_write_name):
    spans_out, _ = memory
    otel_settings(settings, OTEL_SEMCONV=semconv)
    session = run_chat(llm, TOOL_CHAT, turns=2)
    export.after_summarize(session.pk)

    spans = spans_out.get_finished_spans()
    named = _by_name(spans)
    assert sorted(named) == ["chat gpt-4o-mini", "execute_tool add", "invoke_agent triage"]
    (root,) = named["invoke_agent triage"]
    chats = sorted(named["chat gpt-4o-mini"], key=lambda s: s.start_time)
    (tool,) = named["execute_tool add"]
    assert len(spans) == 4 and len({s.context.trace_id for s in spans}) == 1
    assert root.parent is None
    assert all(s.parent.span_id == root.context.span_id for s in [*chats, tool])

    served = llm.successful()
    total = llm.total_usage()
    session.refresh_from_db()
    assert dict(root.attributes) == {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "triage",
        "gen_ai.conversation.id": "chat-otel",
        "ag2_logging.session.id": str(session.pk),
        "ag2_logging.enterprise.id": "acme",
        "ag2_logging.workflow.name": "triage",
        "gen_ai.usage.input_tokens": total.prompt_tokens,
        "gen_ai.usage.output_tokens": total.completion_tokens,
        "ag2_logging.cost.amount": _cost_text(
            sum(
                (
                    expected_cost("gpt-4o-mini", u.prompt_tokens, u.completion_tokens, u.cached_tokens, 0)
                    for u in (r.usage for r in served)
                    if u is not None
                ),
                Decimal(0),
            )
        ),
        "ag2_logging.cost.currency": "USD",
        "ag2_logging.price_status": "known",
    }
    assert root.start_time == int(session.started_at.timestamp() * 1e6) * 1000
    assert root.end_time == int(session.ended_at.timestamp() * 1e6) * 1000
    for span, request, reason in zip(chats, served, ["tool_calls", "stop"], strict=True):
        usage = request.usage
        assert span.kind == SpanKind.CLIENT
        assert dict(span.attributes) == {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini",
            "gen_ai.response.id": request.response_id,
            "gen_ai.agent.name": "assistant",
            "gen_ai.response.finish_reasons": (reason,),
            "gen_ai.usage.input_tokens": usage.prompt_tokens,
            "gen_ai.usage.output_tokens": usage.completion_tokens,
            "gen_ai.usage.cache_read.input_tokens": usage.cached_tokens,
            "gen_ai.usage.reasoning.output_tokens": usage.reasoning_tokens,
            "ag2_logging.cost.amount": _cost_text(
                expected_cost(
                    "gpt-4o-mini", usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens, 0
                )
            ),
            "ag2_logging.cost.currency": "USD",
            "ag2_logging.price_status": "priced",
        }
        assert cache_write_name not in span.attributes  # no cache write reported: left out, not 0
    call_rows = list(session.llm_calls.order_by("seq"))
    assert [s.start_time for s in chats] == [int(c.started_at.timestamp() * 1e6) * 1000 for c in call_rows]
    assert [s.end_time for s in chats] == [int(c.ended_at.timestamp() * 1e6) * 1000 for c in call_rows]
    assert dict(tool.attributes) == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "add",
        "gen_ai.tool.type": "function",
        "gen_ai.tool.call.id": f"call_fake_{served[0].index}",
        "gen_ai.agent.name": "user",
    }
    assert session.exported_at is not None and session.export_claimed_until is None


def test_exported_once_and_never_twice(llm, settings, memory):
    spans_out, _ = memory
    otel_settings(settings)
    session = run_chat(llm, "hello [[terminate]]")
    export.after_summarize(session.pk)
    first = len(spans_out.get_finished_spans())
    assert first == 2  # the session and its one call
    export.after_summarize(session.pk)
    assert export.export_pending().exported == []
    assert len(spans_out.get_finished_spans()) == first


@pytest.mark.parametrize(
    ("message", "call_error", "session_error"),
    [
        ("[[fail:500]] boom", "server_error", "500"),
        ("[[fail:429]] slow down", "rate_limit_exceeded", "429"),
    ],
)
def test_failed_call_has_error_type(llm, settings, memory, message, call_error, session_error):
    spans_out, _ = memory
    otel_settings(settings)
    session = run_chat(llm, message, max_retries=0)
    export.after_summarize(session.pk)
    named = _by_name(spans_out.get_finished_spans())
    (call,) = named["chat gpt-4o-mini"]
    (root,) = named["invoke_agent triage"]
    assert call.status.status_code == StatusCode.ERROR
    assert call.attributes["error.type"] == call_error
    assert "gen_ai.usage.input_tokens" in call.attributes  # a failed call used 0 tokens: known
    assert root.status.status_code == StatusCode.ERROR
    assert root.attributes["error.type"] == session_error


@pytest.mark.parametrize("capture", [False, True])
def test_bodies_only_when_asked_and_redacted(llm, settings, memory, capture):
    spans_out, _ = memory
    otel_settings(settings, OTEL_CAPTURE_CONTENT=capture)
    secret = "sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z" * 2
    session = run_chat(llm, f"my key is {secret} [[terminate]]")
    export.after_summarize(session.pk)
    (call,) = _by_name(spans_out.get_finished_spans())["chat gpt-4o-mini"]
    flat = repr(dict(call.attributes))
    assert secret not in flat and TEST_API_KEY not in flat
    assert ("gen_ai.input.messages" in call.attributes) is capture
    assert ("gen_ai.output.messages" in call.attributes) is capture
    if capture:
        assert "[REDACTED" in call.attributes["gen_ai.input.messages"]
        assert "fake reply" in call.attributes["gen_ai.output.messages"]


def test_off_is_a_no_op(llm, settings, memory):
    spans_out, _ = memory
    session = run_chat(llm, "hello [[terminate]]")
    export.after_summarize(session.pk)
    assert spans_out.get_finished_spans() == ()
    session.refresh_from_db()
    assert session.exported_at is None


def test_no_destination_keeps_the_session_for_later(llm, settings, no_globals):
    otel_settings(settings)  # on, but no global provider and no OTEL_ENDPOINT
    session = run_chat(llm, "hello [[terminate]]")
    export.after_summarize(session.pk)
    assert export.pending() == [session.pk]


# -- metrics ----------------------------------------------------------------------------------


def _points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


@pytest.mark.parametrize("semconv", ["latest", "core"])
def test_metrics_token_histograms_and_cost_counter(llm, settings, memory, semconv):
    _, reader = memory
    otel_settings(settings, OTEL_SEMCONV=semconv)
    session = run_chat(llm, TOOL_CHAT, turns=2)
    export.after_summarize(session.pk)
    points = _points(reader)
    total = llm.total_usage()
    if semconv == "latest":
        assert sum(p.sum for p in points["gen_ai.client.inference.usage.input_tokens"]) == total.prompt_tokens
        assert (
            sum(p.sum for p in points["gen_ai.client.inference.usage.output_tokens"])
            == total.completion_tokens
        )
        assert (
            sum(p.sum for p in points["gen_ai.client.inference.usage.cache_read.input_tokens"])
            == total.cached_tokens
        )
        assert sum(p.count for p in points["gen_ai.client.inference.duration"]) == 2
        # classic AG2 reports a tool's end only: no duration to record (ag2 1.x reports one)
        timed = session.tool_calls.exclude(duration_ms=None, started_at=None).count()
        assert sum(p.count for p in points.get("gen_ai.execute_tool.duration", [])) == timed
    else:
        usage = points["gen_ai.client.token.usage"]
        by_type = {
            t: sum(p.sum for p in usage if p.attributes["gen_ai.token.type"] == t)
            for t in ("input", "output")
        }
        assert by_type == {"input": total.prompt_tokens, "output": total.completion_tokens}
        assert sum(p.count for p in points["gen_ai.client.operation.duration"]) == 2
    (cost,) = points["ag2_logging.cost"]
    expected = sum(
        (
            expected_cost(
                "gpt-4o-mini", r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.cached_tokens, 0
            )
            for r in llm.successful()
        ),
        Decimal(0),
    )
    assert cost.value == pytest.approx(float(expected), rel=1e-12)
    assert dict(cost.attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "ag2_logging.enterprise.id": "acme",
        "ag2_logging.workflow.name": "triage",
    }


# -- OTLP/HTTP on the wire ----------------------------------------------------------------------


class Receiver:
    """A tiny OTLP/HTTP receiver on loopback: decodes each trace export request."""

    def __init__(self, port: int = 0) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.path == "/v1/traces":
                    message = ExportTraceServiceRequest()
                    message.ParseFromString(body)
                    received.append(message)
                    reply = ExportTraceServiceResponse().SerializeToString()
                else:
                    reply = b""
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def spans(self) -> list[Any]:
        return [
            span
            for request in self.requests
            for resource in request.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        ]


def _attrs(span: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in span.attributes:
        which = kv.value.WhichOneof("value")
        value = getattr(kv.value, which)
        out[kv.key] = tuple(v.string_value for v in value.values) if which == "array_value" else value
    return out


@pytest.fixture
def receiver(no_globals: None) -> Iterator[Receiver]:
    server = Receiver()
    yield server
    # The app's providers export what they hold when shut down: while the receiver still listens
    # (stopped first, each export would retry against a closed port until its timeout).
    otel.reset_for_tests()
    server.stop()


def test_otlp_http_wire_carries_the_same_spans(llm, settings, receiver):
    otel_settings(settings, OTEL_ENDPOINT=receiver.url)
    session = run_chat(llm, TOOL_CHAT, turns=2)
    export.after_summarize(session.pk)
    spans = receiver.spans()
    assert sorted(s.name for s in spans) == [
        "chat gpt-4o-mini",
        "chat gpt-4o-mini",
        "execute_tool add",
        "invoke_agent triage",
    ]
    assert {s.trace_id for s in spans} == {session.pk.bytes}  # the trace id is the session's
    root = next(s for s in spans if s.name == "invoke_agent triage")
    assert _attrs(root)["gen_ai.conversation.id"] == "chat-otel"
    served = llm.successful()
    chats = sorted((s for s in spans if s.name.startswith("chat")), key=lambda s: s.start_time_unix_nano)
    for span, request in zip(chats, served, strict=True):
        attrs = _attrs(span)
        assert span.parent_span_id == root.span_id
        assert attrs["gen_ai.response.id"] == request.response_id
        assert attrs["gen_ai.usage.input_tokens"] == request.usage.prompt_tokens
        assert attrs["gen_ai.usage.output_tokens"] == request.usage.completion_tokens
    tool = next(s for s in spans if s.name == "execute_tool add")
    assert _attrs(tool)["gen_ai.tool.call.id"] == f"call_fake_{served[0].index}"
    session.refresh_from_db()
    assert session.exported_at is not None


def test_collector_killed_mid_run_loses_and_duplicates_nothing(llm, settings, receiver):
    otel_settings(settings, OTEL_ENDPOINT=receiver.url, OTEL_BACKLOG_BATCH=10)
    sessions = [run_chat(llm, "one [[terminate]]", chat="c1")]
    export.after_summarize(sessions[0].pk)
    port, before = receiver.port, list(receiver.requests)
    receiver.stop()  # the collector dies
    for chat in ("c2", "c3"):
        sessions.append(run_chat(llm, f"{chat} [[terminate]]", chat=chat))
        export.after_summarize(sessions[-1].pk)  # never raises; the session waits
    assert export.pending() == [s.pk for s in sessions[1:]]
    back = Receiver(port)  # the collector comes back on the same address
    back.requests[:0] = before
    try:
        sessions.append(run_chat(llm, "c4 [[terminate]]", chat="c4"))
        export.after_summarize(sessions[-1].pk)  # exports c4, then the backlog c2, c3
        spans = back.spans()
    finally:
        otel.reset_for_tests()  # the providers' last export, while the collector listens
        back.stop()
    ids = [(s.trace_id, s.span_id) for s in spans]
    assert len(ids) == len(set(ids)) == 8  # 4 sessions x (root + one call): nothing twice
    assert {s.trace_id for s in spans} == {s.pk.bytes for s in sessions}  # nothing lost
    assert export.pending() == []
    assert Session.objects.filter(exported_at__isnull=True).count() == 0


def test_unknown_session_is_skipped() -> None:
    assert export.export_session(uuid.uuid4()) in {"skipped", "no destination"}


@pytest.mark.parametrize(
    ("values", "ids"),
    [
        ({"OTEL": False}, []),
        ({"OTEL": True}, ["ag2_logging.W007"]),
        ({"OTEL": True, "OTEL_ENDPOINT": "http://127.0.0.1:4318"}, []),
        ({"OTEL": True, "OTEL_SEMCONV": "v2"}, ["ag2_logging.E005", "ag2_logging.W007"]),
        ({"OTEL": True, "OTEL_ENDPOINT": "collector:4318"}, ["ag2_logging.E005", "ag2_logging.W007"]),
    ],
)
def test_checks(settings, no_globals, values, ids):
    from ag2_logging.checks import check_otel, check_settings

    settings.AG2_LOGGING = {**settings.AG2_LOGGING, **values}
    found = sorted(m.id for m in [*check_settings(), *check_otel()] if m.id and "0" in m.id)
    assert [i for i in found if i in {"ag2_logging.E005", "ag2_logging.W007", "ag2_logging.E008"}] == ids


def test_check_packages_missing(settings, monkeypatch):
    from ag2_logging import checks

    settings.AG2_LOGGING = {**settings.AG2_LOGGING, "OTEL": True}
    monkeypatch.setattr(checks, "_importable", lambda module: module != "opentelemetry.sdk")
    assert [m.id for m in checks.check_otel()] == ["ag2_logging.E008"]


@pytest.mark.parametrize(
    ("call_offset_ms", "call_agent", "parent"),
    [(100, "writer", "turn"), (100, "critic", "root"), (900, "writer", "root")],
)
def test_calls_inside_an_ag2_turn_are_its_children(call_offset_ms, call_agent, parent):
    """ag2 1.x records a turn (end time and duration); a call of that agent inside it is its child."""
    import datetime as dt

    from ag2_logging.export import plan, semconv
    from ag2_logging.models import AgentEvent, LLMCall

    t0 = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)
    session = Session.objects.create(
        chat_id="c",
        workflow_name="wf",
        started_at=t0,
        ended_at=t0 + dt.timedelta(seconds=2),
        status="completed",
    )
    turn = AgentEvent.objects.create(
        id=uuid.uuid4(), session=session, seq=2, agent_name="writer", name="turn",
        created_at=t0 + dt.timedelta(milliseconds=800), duration_ms=700.0, data={"finish_reason": "stop"},
    )  # fmt: skip
    start = t0 + dt.timedelta(milliseconds=call_offset_ms)
    LLMCall.objects.create(
        id=uuid.uuid4(), session=session, seq=1, agent_name=call_agent, model="m", provider="openai",
        started_at=start, ended_at=start + dt.timedelta(milliseconds=50), price_status="priced",
    )  # fmt: skip
    root, turn_span, call_span = plan.plan_session(session, semconv.LATEST, content=False)
    assert (turn_span.name, turn_span.parent, turn_span.start) == (
        "invoke_agent writer",
        session.pk,
        t0 + dt.timedelta(milliseconds=100),
    )
    assert turn_span.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert call_span.parent == {"turn": turn.id, "root": root.key}[parent]


def test_export_command_sends_the_backlog_and_says_what_waits(llm, settings, receiver):
    from io import StringIO

    from django.core.management import call_command
    from django.core.management.base import CommandError

    settings.AG2_LOGGING = {**settings.AG2_LOGGING, "OTEL": False}
    sessions = [run_chat(llm, f"{chat} [[terminate]]", chat=chat) for chat in ("b1", "b2")]
    with pytest.raises(CommandError, match="OTEL"):
        call_command("ag2_logging_export")
    otel_settings(settings, OTEL_ENDPOINT=receiver.url)
    assert export.pending() == [s.pk for s in sessions]  # recorded while export was off
    out = StringIO()
    call_command("ag2_logging_export", "--limit", "1", stdout=out)
    assert out.getvalue().strip() == "exported 1 session(s), skipped 0; 1 waiting"
    out = StringIO()
    call_command("ag2_logging_export", "--json", stdout=out)
    assert json.loads(out.getvalue()) == {
        "exported": [str(sessions[1].pk)],
        "failed": "",
        "skipped": 0,
        "waiting": 0,
    }
    assert {s.trace_id for s in receiver.spans()} == {s.pk.bytes for s in sessions}


@pytest.mark.parametrize(
    ("provider", "name"),
    [("openai", "openai"), ("openai@local", "openai"), ("anthropic@local", "anthropic"), ("", "_OTHER")],
)
def test_provider_name_of_a_local_endpoint_is_the_provider_it_stands_in_for(provider: str, name: str) -> None:
    from ag2_logging.export.semconv import PROVIDER_NAMES, provider_name

    assert provider_name(provider) == PROVIDER_NAMES.get(name, name)


EXIT_CHILD = """
import django; django.setup()
from ag2_logging import ag2_logging_session
with ag2_logging_session("exit-export", "wf", "acme") as recorder:
    recorder.record_llm_call(agent_name="a", provider="openai", model="gpt-4o-mini",
                             prompt_tokens=100, completion_tokens=10)
print(recorder.session_id)
"""


@pytest.mark.django_db(transaction=True)
def test_a_script_whose_session_is_summarized_at_exit_is_exported_then(tmp_path, receiver):
    """Inline pipeline: the session ends as the script does, so the exit drain runs the chain
    and its export while the interpreter shuts down (no thread pool may start then)."""
    from tests.support import child_env, run_child

    env = child_env(
        tmp_path,
        AG2_LOGGING_PIPELINE="inline",
        AG2_LOGGING_OTEL="true",
        AG2_LOGGING_OTEL_ENDPOINT=receiver.url,
    )
    proc = run_child(EXIT_CHILD, env)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "could not export" not in proc.stderr, proc.stderr
    session = Session.objects.get(pk=uuid.UUID(proc.stdout.split()[-1]))
    assert session.summarized_at is not None and session.exported_at is not None
    assert {s.trace_id for s in receiver.spans()} == {session.pk.bytes}
