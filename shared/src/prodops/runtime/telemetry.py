"""Traces, metrics and JSON logs of a service; W3C traceparent helpers for the outbox and broker."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider, sampling
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Sampler, SamplingResult
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    TraceFlags,
    TraceState,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes
from prometheus_client import Counter, Gauge
from pythonjsonlogger.json import JsonFormatter

from prodops.runtime.settings import Settings

__all__ = [
    "EVENTS_CONSUMED",
    "EVENTS_PUBLISHED",
    "OUTBOX_LAG",
    "WEBHOOKS_RECEIVED",
    "current_traceparent",
    "json_log_handler",
    "recording_spans",
    "setup_telemetry",
    "span_from_traceparent",
    "started_span",
]

# prometheus_client collectors are process-global: each is created once, here.
EVENTS_PUBLISHED = Counter(
    "prodops_outbox_published_total", "Outbox events published to the broker", ["service"]
)
OUTBOX_LAG = Gauge("prodops_outbox_unsent", "Outbox events not yet published", ["service"])
EVENTS_CONSUMED = Counter(
    "prodops_events_consumed_total",
    "Events handled, by outcome: applied, duplicate, stale, failed, dead_lettered",
    ["service", "type", "outcome"],
)
WEBHOOKS_RECEIVED = Counter(
    "prodops_webhooks_received_total",
    "Inbound vendor webhook deliveries, by provider and outcome",
    ["service", "provider", "outcome"],
)

_HANDLER_NAME = "prodops-json"
_TRACEPARENT = TraceContextTextMapPropagator()
_TRACER = trace.get_tracer("prodops")


@dataclass
class _Recorder(SimpleSpanProcessor):
    """Hands finished spans to an in-memory exporter, but only while a test is recording."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.recording = False
        super().__init__(self.exporter)

    def on_end(self, span: ReadableSpan) -> None:
        """Keep the span only while recording: a whole test session would not fit in memory."""
        if self.recording:
            super().on_end(span)


class _ProcessState:
    test_recorder: _Recorder | None = None


_process = _ProcessState()


class _WhileRead(Sampler):
    """The configured sampler while spans go somewhere (an exporter, a test recording); else none.

    A recorded span costs a noticeable share of a webhook request, for nothing when no processor
    reads it. A dropped span still has a valid context: trace ids still reach
    the logs and travel as traceparent through the outbox to the consumers.
    """

    def __init__(self) -> None:
        # What the SDK would use by itself (OTEL_TRACES_SAMPLER, else parent-based always-on).
        self.configured = sampling._get_from_env_or_default()
        self.exporting = False

    def should_sample(  # noqa: PLR0917 - the Sampler interface
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        sampler = self.configured if self.read() else sampling.ALWAYS_OFF
        return sampler.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"WhileRead{{{self.configured.get_description()}}}"

    def read(self) -> bool:
        """Whether spans go anywhere now."""
        recorder = _process.test_recorder
        return self.exporting or (recorder is not None and recorder.recording)


_SAMPLER = _WhileRead()
_IDS = RandomIdGenerator()


def _provider(service: str) -> TracerProvider:
    resource = Resource.create({"service.name": f"prodops-{service}"})
    return TracerProvider(resource=resource, sampler=_SAMPLER)


def setup_telemetry(settings: Settings, *, service: str) -> None:
    """Install the tracer provider (unless one is set) and the root logger's JSON handler."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = _provider(service)
        if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            _SAMPLER.exporting = True
        trace.set_tracer_provider(provider)

    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(handler)
        handler.close()
    root.addHandler(json_log_handler(sys.stderr, service))
    root.setLevel(settings.log_level.upper())


@contextmanager
def recording_spans() -> Iterator[InMemorySpanExporter]:
    """Testing helper: the spans that finish inside the block, kept in memory for assertions."""
    if _process.test_recorder is None:
        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            provider = _provider("test")
            trace.set_tracer_provider(provider)
        _process.test_recorder = _Recorder()
        provider.add_span_processor(_process.test_recorder)
    recorder = _process.test_recorder
    recorder.exporter.clear()
    recorder.recording = True
    try:
        yield recorder.exporter
    finally:
        recorder.recording = False


class _TraceContextFilter(logging.Filter):
    """Stamps each record with the service and the current span's ids (hex; empty outside one)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        span = trace.get_current_span().get_span_context()
        record.__dict__.update(
            service=self.service,
            trace_id=format(span.trace_id, "032x") if span.is_valid else "",
            span_id=format(span.span_id, "016x") if span.is_valid else "",
        )
        return True


def json_log_handler(stream: IO[str], service: str) -> logging.Handler:
    """A handler writing one JSON object per record to `stream`, with service and trace ids."""
    handler = logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(_TraceContextFilter(service))
    handler.setFormatter(
        JsonFormatter(
            ["levelname", "name", "message", "service", "trace_id", "span_id"],
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
        )
    )
    return handler


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span, or None outside a valid span."""
    carrier: dict[str, str] = {}
    _TRACEPARENT.inject(carrier)
    return carrier.get("traceparent")


def traceparent_of(span: Span) -> str | None:
    """The W3C traceparent of `span` (current or not), or None for an invalid one."""
    carrier: dict[str, str] = {}
    _TRACEPARENT.inject(carrier, context=trace.set_span_in_context(span))
    return carrier.get("traceparent")


def _all_dropped() -> bool:
    """Whether prodops' own sampler decides, and drops every span (nothing reads them now)."""
    provider = trace.get_tracer_provider()
    return (
        isinstance(provider, TracerProvider)
        and provider.sampler is _SAMPLER
        and not _SAMPLER.read()
    )


@contextmanager
def started_span(
    name: str,
    *,
    context: Context | None,
    kind: SpanKind,
    attributes: Mapping[str, str | int | float | bool] | None = None,
) -> Iterator[Span]:
    """A current span, child of `context` (the current one when None).

    While prodops' own sampler drops every span (nothing reads them), the span is made here as
    the SDK makes a dropped one, without the rest of its work (most of what a consumed event's
    span cost): not recording, not sampled, a new span id, the parent's trace id, state and
    random-id flag (a new random trace id without a parent). So trace ids still reach the logs
    and travel through the outbox.
    """
    if _all_dropped():
        parent = trace.get_current_span(context).get_span_context()
        if parent.is_valid:
            random = parent.trace_flags.random_trace_id
            trace_id, state = parent.trace_id, parent.trace_state
        else:
            random, trace_id, state = True, _IDS.generate_trace_id(), None
        flags = TraceFlags(TraceFlags.RANDOM_TRACE_ID if random else TraceFlags.DEFAULT)
        ids = SpanContext(
            trace_id, _IDS.generate_span_id(), is_remote=False, trace_flags=flags, trace_state=state
        )
        with trace.use_span(NonRecordingSpan(ids), end_on_exit=False) as span:
            yield span
        return
    with _TRACER.start_as_current_span(
        name, context=context, kind=kind, attributes=attributes
    ) as recorded:
        yield recorded


@contextmanager
def span_from_traceparent(
    name: str,
    traceparent: str | None,
    *,
    kind: SpanKind,
    attributes: Mapping[str, str | int | float | bool] | None = None,
) -> Iterator[Span]:
    """A current span continuing `traceparent`'s trace; a new trace when it is None or invalid."""
    # An empty Context, not the current one: without a traceparent the span starts its own trace.
    parent = _TRACEPARENT.extract({"traceparent": traceparent}) if traceparent else Context()
    with started_span(name, context=parent, kind=kind, attributes=attributes) as span:
        yield span
