"""HTTP telemetry: a lean server span per request, Prometheus metrics by route, `/metrics`."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from fastapi import FastAPI, Response
from fastapi.routing import iter_route_contexts
from fastapi.telemetry import TelemetryConfig
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.trace import Span, SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import REGISTRY, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from starlette.routing import Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from prodops.runtime.telemetry import started_span

__all__ = [
    "HTTP_REQUESTS",
    "HTTP_REQUEST_DURATION",
    "NATIVE_TELEMETRY_OFF",
    "ServedRequests",
    "instrument_app",
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
_TRACEPARENT = TraceContextTextMapPropagator()
# Any other method a client invents is counted as OTHER, so it cannot grow the label set.
_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

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
    templates = _RouteTemplates(app.router)
    app.add_middleware(
        ServedRequests, service=service, route_of=templates.of_scope, metrics=metrics_enabled
    )
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

    def of_scope(self, scope: Scope) -> str | None:
        """The template of the route that answered the request; None when none matched."""
        route = scope.get("route")
        if route is None:
            return None
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


class ServedRequests:
    """Pure ASGI middleware: a server span per request (probes aside), counted and timed by route.

    The span is named, like OpenTelemetry's FastAPI instrumentation names it, by method and route
    template (`route_of`, read once the request is answered), and carries the same (older
    semantic convention) attributes; it continues the caller's `traceparent`. The
    instrumentation itself matched every request against every route a second time and built
    its attributes even for spans nobody records: a fifth of a read.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        service: str,
        route_of: Callable[[Scope], str | None],
        metrics: bool,
    ) -> None:
        self.app = app
        self.service = service
        self.route_of = route_of
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
            with _server_span(method, path, _traceparent(scope)) as span:
                try:
                    await self.app(scope, receive, send_noting_status)
                finally:
                    template = self.route_of(scope)
                    if template is not None:
                        span.update_name(f"{method} {template}")
                        span.set_attribute("http.route", template)
                    span.set_attribute("http.status_code", status)
                    if status >= 500:
                        span.set_status(StatusCode.ERROR)
        finally:
            if self.metrics:
                route = self.route_of(scope) or "unmatched"
                _observe(self.service, method, route, status, started)


_UNTRACED = frozenset({"/healthz", "/readyz", "/metrics"})


@functools.cache
def _http_series(service: str, method: str, route: str, status: int) -> tuple[Counter, Histogram]:
    # The labelled children, looked up once: few routes, methods and statuses exist.
    return (
        HTTP_REQUESTS.labels(service, method, route, str(status)),
        HTTP_REQUEST_DURATION.labels(service, method, route),
    )


def _observe(service: str, method: str, route: str, status: int, started: float) -> None:
    """Count one answered request and its duration since `started` (a perf_counter reading)."""
    method = method if method in _HTTP_METHODS else "OTHER"
    requests, duration = _http_series(service, method, route, status)
    requests.inc()
    duration.observe(time.perf_counter() - started)


def _traceparent(scope: Scope) -> str | None:
    value = next((v for k, v in scope["headers"] if k == b"traceparent"), None)
    return value.decode("latin-1") if value else None


@contextmanager
def _server_span(method: str, target: str, traceparent: str | None) -> Iterator[Span]:
    """A request's server span, named by its method until its route is known."""
    parent = _TRACEPARENT.extract({"traceparent": traceparent}) if traceparent else None
    attributes = {"http.method": method, "http.target": target}
    with started_span(method, context=parent, kind=SpanKind.SERVER, attributes=attributes) as span:
        yield span
