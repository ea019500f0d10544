"""Planned spans to OpenTelemetry: through the project's global providers, or the app's own.

When the project has set a global tracer provider (``trace.set_tracer_provider``, the
``opentelemetry-instrument`` distro, ...), the spans go through it, so the project's exporters,
sampling and resource apply; delivery counts as done when its ``force_flush`` returns True
within ``OTEL_TIMEOUT``. Otherwise the app builds its own pipeline from
``AG2_LOGGING["OTEL_ENDPOINT"]``: a tracer provider whose processor keeps the session's spans,
handed in one batch to an OTLP/HTTP exporter, whose result decides (``SUCCESS`` or not). Its trace
id is the session's UUID and each span id comes from its row's UUID, so a batch sent twice (the
collector took it but the answer was lost) carries the same ids. Metrics likewise use the
global meter provider when set, else a periodic OTLP reader on the same endpoint.

Needs the ``otel`` extra (opentelemetry-api, -sdk, -exporter-otlp-proto-http).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
import threading
import uuid
from collections.abc import Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode

from ag2_logging.export.plan import SpanPlan

logger = logging.getLogger("ag2_logging.export")

SCOPE = "ag2_logging"
_KINDS = {"client": SpanKind.CLIENT, "internal": SpanKind.INTERNAL}
_MASK = (1 << 64) - 1
_trace_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("ag2_export_trace", default=None)
_span_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("ag2_export_span", default=None)
_UNSET = ("ProxyTracerProvider", "NoOpTracerProvider", "_ProxyMeterProvider", "NoOpMeterProvider")


class RowIds(IdGenerator):
    """Ids from the rows (the session's UUID, each row's UUID) while a session is emitted."""

    _random = RandomIdGenerator()

    def generate_trace_id(self) -> int:
        return _trace_id.get() or self._random.generate_trace_id()

    def generate_span_id(self) -> int:
        return _span_id.get() or self._random.generate_span_id()


class SessionBuffer(SpanProcessor):
    """Keeps each thread's ended spans until they are taken as one batch."""

    def __init__(self) -> None:
        self._local = threading.local()

    def _spans(self) -> list[ReadableSpan]:
        spans: list[ReadableSpan] | None = getattr(self._local, "spans", None)
        if spans is None:
            spans = self._local.spans = []
        return spans

    def on_end(self, span: ReadableSpan) -> None:
        self._spans().append(span)

    def take(self) -> list[ReadableSpan]:
        spans = self._spans()
        self._local.spans = []
        return spans


class Pipeline:
    """Where spans go: the global provider (``exporter`` None) or the app's own."""

    def __init__(self, provider: Any, exporter: SpanExporter | None, buffer: SessionBuffer | None) -> None:
        self.provider = provider
        self.exporter = exporter
        self.buffer = buffer

    @property
    def own(self) -> bool:
        return self.exporter is not None

    def deliver(self, timeout: float) -> bool:
        """Hand the emitted spans over; True only when the exporter (or the global provider's
        ``force_flush``) reports success."""
        if self.exporter is None:
            flush = getattr(self.provider, "force_flush", None)
            return bool(flush(int(timeout * 1000))) if flush is not None else True
        assert self.buffer is not None
        batch = self.buffer.take()
        return not batch or self.exporter.export(batch) == SpanExportResult.SUCCESS


_own: dict[str, Pipeline] = {}
_own_meters: dict[str, Any] = {}
_lock = threading.Lock()


def global_tracer_set() -> bool:
    return type(trace.get_tracer_provider()).__name__ not in _UNSET


def global_meter_set() -> bool:
    return type(metrics.get_meter_provider()).__name__ not in _UNSET


def _resource() -> Any:
    """``service.name`` ag2-logging, then what ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``
    say. Read with the environment detector alone: ``Resource.create`` runs its detectors in a
    thread pool, which fails when the pipeline is first built while the interpreter exits (a
    script whose session is summarized by the exit drain)."""
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource

    return Resource({"service.name": "ag2-logging"}).merge(OTELResourceDetector().detect())


def own_pipeline(endpoint: str, timeout: float) -> Pipeline:
    """The app's own tracer provider and OTLP/HTTP exporter for ``endpoint`` (built once)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    with _lock:
        if endpoint not in _own:
            buffer = SessionBuffer()
            provider = TracerProvider(resource=_resource(), id_generator=RowIds())
            provider.add_span_processor(buffer)
            exporter = OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", timeout=timeout)
            _own[endpoint] = Pipeline(provider, exporter, buffer)
        return _own[endpoint]


def pipeline(endpoint: str | None, timeout: float) -> Pipeline | None:
    """The global provider when the project set one, else the app's own for ``endpoint``
    (None when there is neither: nothing can be exported yet)."""
    if global_tracer_set():
        return Pipeline(trace.get_tracer_provider(), None, None)
    return own_pipeline(endpoint, timeout) if endpoint else None


def meter_provider(endpoint: str | None) -> Any:
    """The global meter provider when set, else the app's own periodic OTLP one (or None)."""
    if global_meter_set():
        return metrics.get_meter_provider()
    if not endpoint:
        return None
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    with _lock:
        if endpoint not in _own_meters:
            reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics"))
            _own_meters[endpoint] = MeterProvider(resource=_resource(), metric_readers=[reader])
        return _own_meters[endpoint]


def _ns(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1_000_000) * 1000


def _span_id_of(key: uuid.UUID) -> int:
    return (key.int & _MASK) or 1


def emit(pipe: Pipeline, plans: Sequence[SpanPlan]) -> None:
    """Start and end one span per plan (parents first), with the plans' own times."""
    tracer = pipe.provider.get_tracer(SCOPE)
    made: dict[uuid.UUID, Any] = {}
    trace_token = _trace_id.set(plans[0].key.int if pipe.own and plans else None)
    try:
        for plan in plans:
            parent = made.get(plan.parent) if plan.parent else None
            ctx = trace.set_span_in_context(parent) if parent is not None else otel_context.Context()
            span_token = _span_id.set(_span_id_of(plan.key) if pipe.own else None)
            try:
                span = tracer.start_span(
                    plan.name, context=ctx, kind=_KINDS[plan.kind], attributes=plan.attributes,
                    start_time=_ns(plan.start),
                )  # fmt: skip
            finally:
                _span_id.reset(span_token)
            if plan.error:
                span.set_attribute("error.type", plan.error)
                span.set_status(Status(StatusCode.ERROR, plan.error))
            made[plan.key] = span
        for plan in reversed(plans):  # children end before their parents
            made[plan.key].end(end_time=_ns(max(plan.end, plan.start)))
    finally:
        _trace_id.reset(trace_token)


def reset_for_tests() -> None:
    """Forget the app's own pipelines (tests that point OTEL_ENDPOINT elsewhere)."""
    with _lock:
        for pipe in _own.values():
            pipe.provider.shutdown()
        for provider in _own_meters.values():
            provider.shutdown()
        _own.clear()
        _own_meters.clear()
