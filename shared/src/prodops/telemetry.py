"""Traces, metrics and JSON logs of a service; W3C traceparent helpers for the outbox and broker."""

from __future__ import annotations

import functools
import logging
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

from fastapi import FastAPI, Response
from fastapi.routing import iter_route_contexts
from fastapi.telemetry import TelemetryConfig
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider, sampling
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Sampler, SamplingResult
from opentelemetry.trace import Link, Span, SpanKind, StatusCode, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from pythonjsonlogger.json import JsonFormatter
from starlette.routing import Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from prodops.settings import Settings

__all__ = [
    "EVENTS_CONSUMED",
    "EVENTS_PUBLISHED",
    "HTTP_REQUESTS",
    "HTTP_REQUEST_DURATION",
    "NATIVE_TELEMETRY_OFF",
    "OUTBOX_LAG",
    "WEBHOOKS_RECEIVED",
    "current_traceparent",
    "instrument_app",
    "json_log_handler",
    "observe_request",
    "recording_spans",
    "server_span",
    "settled",
    "setup_telemetry",
    "span_from_traceparent",
]

# prometheus_client collectors are process-global: each is created once, here.
HTTP_REQUESTS = Counter(
    "prodops_http_requests_total",
    "HTTP requests answered, by route template and status",
    ["service", "method", "route", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "prodops_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template",
    ["service", "method", "route"],
)
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
# Any other method a client invents is counted as OTHER, so it cannot grow the label set.
_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


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

    A recorded span costs tens of microseconds, about a tenth of a webhook request, for nothing
    when no processor reads it. A dropped span still has a valid context: trace ids still reach
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
        recorder = _process.test_recorder
        read = self.exporting or (recorder is not None and recorder.recording)
        sampler = self.configured if read else sampling.ALWAYS_OFF
        return sampler.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"WhileRead{{{self.configured.get_description()}}}"


_SAMPLER = _WhileRead()


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


# FastAPI's own telemetry, off: `instrument_app` traces each request once. Pass it to FastAPI().
NATIVE_TELEMETRY_OFF: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def instrument_app(app: FastAPI, *, service: str, metrics_enabled: bool = True) -> None:
    """Trace every request (probes aside) and, when enabled, count them and serve /metrics.

    Make the app with `FastAPI(telemetry=NATIVE_TELEMETRY_OFF)`, or requests are traced twice.
    """
    if getattr(app.state, "prodops_instrumented", False):
        return
    app.state.prodops_instrumented = True
    # A span per SQL statement costs more than the statement on the webhook path; only worth it
    # when the spans go somewhere.
    asyncpg_instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
    exporting = bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
    if exporting and not asyncpg_instrumentor.is_instrumented_by_opentelemetry:
        asyncpg_instrumentor.instrument()
    app.add_middleware(_Served, service=service, router=app.router, metrics=metrics_enabled)
    if not metrics_enabled:
        return

    async def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_PLAIN_0_0_4)

    app.add_api_route("/metrics", metrics, methods=["GET"], include_in_schema=False)


class _RouteTemplates:
    """The full path template of each route of an app, looked up by the route in the ASGI scope.

    FastAPI (>= 0.137) keeps included routers as a tree and puts the original route in
    scope["route"], whose path lacks the prefixes of the routers it was included through.
    """

    def __init__(self, router: Router) -> None:
        self._router = router
        self._by_route: dict[int, str] = {}

    def of(self, route: object) -> str:
        if route is None:
            return "unmatched"
        template = self._by_route.get(id(route))
        if template is None:
            self._by_route.update(self._collect())
            own = str(getattr(route, "path_format", None) or getattr(route, "path", "unmatched"))
            template = self._by_route.setdefault(id(route), own)
        return template

    def _collect(self) -> dict[int, str]:
        templates: dict[int, set[str]] = {}
        for context in iter_route_contexts(self._router.routes):
            if context.path_format is not None:
                templates.setdefault(id(context.original_route), set()).add(context.path_format)
        # A router included under two prefixes gives one route two templates: keep its own path.
        return {key: paths.pop() for key, paths in templates.items() if len(paths) == 1}


class _Served:
    """Pure ASGI middleware: a server span per request (probes aside), counted and timed by route.

    The span is named, like OpenTelemetry's FastAPI instrumentation names it, by method and route
    template, and carries the same (older semantic convention) attributes; it continues the
    caller's `traceparent`. The instrumentation itself matched every request against every route
    a second time and built its attributes even for spans nobody records: a fifth of a read.
    """

    def __init__(self, app: ASGIApp, *, service: str, router: Router, metrics: bool) -> None:
        self.app = app
        self.service = service
        self.routes = _RouteTemplates(router)
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.perf_counter()
        method, path = scope["method"], scope["path"]
        try:
            if path in _UNTRACED:
                await self.app(scope, receive, send_noting_status)
                return
            traceparent = next((v for k, v in scope["headers"] if k == b"traceparent"), None)
            parent = traceparent.decode("latin-1") if traceparent else None
            with server_span(method, None, path, parent) as span:
                try:
                    await self.app(scope, receive, send_noting_status)
                finally:
                    route = scope.get("route")
                    if route is not None:
                        template = self.routes.of(route)
                        span.update_name(f"{method} {template}")
                        span.set_attribute("http.route", template)
                    settled(span, status)
        finally:
            if self.metrics:
                route = self.routes.of(scope.get("route"))
                observe_request(self.service, method, route, status, started)


_UNTRACED = frozenset({"/healthz", "/readyz", "/metrics"})


@functools.cache
def _http_series(service: str, method: str, route: str, status: int) -> tuple[Counter, Histogram]:
    # The labelled children, looked up once: few routes, methods and statuses exist.
    return (
        HTTP_REQUESTS.labels(service, method, route, str(status)),
        HTTP_REQUEST_DURATION.labels(service, method, route),
    )


def observe_request(service: str, method: str, route: str, status: int, started: float) -> None:
    """Count one answered request and its duration since `started` (a perf_counter reading)."""
    method = method if method in _HTTP_METHODS else "OTHER"
    requests, duration = _http_series(service, method, route, status)
    requests.inc()
    duration.observe(time.perf_counter() - started)


@contextmanager
def server_span(
    method: str, route: str | None, target: str, traceparent: str | None
) -> Iterator[Span]:
    """A request's server span: `METHOD route` (the route may be set later), the caller's trace."""
    parent = _TRACEPARENT.extract({"traceparent": traceparent}) if traceparent else None
    attributes = {"http.method": method, "http.target": target}
    if route is not None:
        attributes["http.route"] = route
    name = f"{method} {route}" if route is not None else method
    with _TRACER.start_as_current_span(
        name, context=parent, kind=SpanKind.SERVER, attributes=attributes
    ) as span:
        yield span


def settled(span: Span, status: int) -> None:
    """Record a request's response status on its server span (an error from 500 on)."""
    span.set_attribute("http.status_code", status)
    if status >= 500:
        span.set_status(StatusCode.ERROR)


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span, or None outside a valid span."""
    carrier: dict[str, str] = {}
    _TRACEPARENT.inject(carrier)
    return carrier.get("traceparent")


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
    with _TRACER.start_as_current_span(
        name, context=parent, kind=kind, attributes=attributes
    ) as span:
        yield span
