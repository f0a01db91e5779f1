"""Telemetry: server spans, traceparent continuity, JSON logs with trace ids, Prometheus metrics."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import REGISTRY
from pydantic import SecretStr

from prodops.http.telemetry import NATIVE_TELEMETRY_OFF, instrument_app
from prodops.runtime.settings import Settings
from prodops.runtime.telemetry import (
    current_traceparent,
    json_log_handler,
    recording_spans,
    setup_telemetry,
    span_from_traceparent,
    started_span,
)

INCOMING_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING_SPAN_ID = "00f067aa0ba902b7"
INCOMING_TRACEPARENT = f"00-{INCOMING_TRACE_ID}-{INCOMING_SPAN_ID}-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    with recording_spans() as exporter:
        yield exporter


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def build_app(*, service: str, metrics_enabled: bool = True) -> FastAPI:
    app = FastAPI(telemetry=NATIVE_TELEMETRY_OFF)

    @app.get("/items/{item_id}")
    async def read_item(item_id: str) -> dict[str, str]:
        return {"id": item_id}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    comments = APIRouter(prefix="/comments")

    @comments.get("/{comment_id}")
    async def read_comment(comment_id: str) -> dict[str, str]:
        return {"id": comment_id}

    items = APIRouter(prefix="/v1/items")
    items.include_router(comments)
    app.include_router(items)
    instrument_app(app, service=service, metrics_enabled=metrics_enabled)
    return app


async def get(app: FastAPI, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path, headers=headers)


def finished(exporter: InMemorySpanExporter, span: Span) -> ReadableSpan:
    span_id = span.get_span_context().span_id
    [match] = [s for s in exporter.get_finished_spans() if s.context.span_id == span_id]
    return match


def requests_counted(service: str, route: str, status: str) -> float | None:
    labels = {"service": service, "method": "GET", "route": route, "status": status}
    return REGISTRY.get_sample_value("prodops_http_requests_total", labels)


async def test_request_is_traced_as_a_server_span_named_by_route(
    spans: InMemorySpanExporter,
) -> None:
    response = await get(build_app(service="traced"), "/items/123")

    assert response.status_code == 200
    [server] = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert server.name == "GET /items/{item_id}"


async def test_request_is_traced_as_one_span_without_spans_per_send(
    spans: InMemorySpanExporter,
) -> None:
    await get(build_app(service="traced"), "/items/123")

    assert [(s.kind, s.name) for s in spans.get_finished_spans()] == [
        (SpanKind.SERVER, "GET /items/{item_id}")
    ]


async def test_request_with_traceparent_header_continues_the_callers_trace(
    spans: InMemorySpanExporter,
) -> None:
    await get(build_app(service="traced"), "/items/1", {"traceparent": INCOMING_TRACEPARENT})

    [server] = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert format(server.context.trace_id, "032x") == INCOMING_TRACE_ID
    assert server.parent is not None
    assert format(server.parent.span_id, "016x") == INCOMING_SPAN_ID


async def test_a_failing_request_is_an_error_span_and_probes_are_not_traced(
    spans: InMemorySpanExporter,
) -> None:
    app = build_app(service="traced")
    assert (await get(app, "/boom")).status_code == 500
    assert (await get(app, "/metrics")).status_code == 200

    [server] = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert server.name == "GET /boom"
    assert server.status.status_code is StatusCode.ERROR
    assert server.attributes is not None
    assert server.attributes["http.status_code"] == 500
    assert [e.name for e in server.events] == ["exception"]


def test_current_traceparent_names_the_active_span(spans: InMemorySpanExporter) -> None:
    with trace.get_tracer("test").start_as_current_span("write") as span:
        traceparent = current_traceparent()

    assert traceparent is not None
    version, trace_id, span_id, _flags = traceparent.split("-")
    assert version == "00"
    assert trace_id == format(span.get_span_context().trace_id, "032x")
    assert span_id == format(span.get_span_context().span_id, "016x")


def test_current_traceparent_is_none_outside_any_span() -> None:
    assert current_traceparent() is None


def test_span_from_traceparent_is_a_child_of_the_stored_span(
    spans: InMemorySpanExporter,
) -> None:
    with span_from_traceparent(
        "publish", INCOMING_TRACEPARENT, kind=SpanKind.PRODUCER, attributes={"batch": 3}
    ) as span:
        assert trace.get_current_span() is span

    published = finished(spans, span)
    assert published.kind is SpanKind.PRODUCER
    assert format(published.context.trace_id, "032x") == INCOMING_TRACE_ID
    assert published.parent is not None
    assert format(published.parent.span_id, "016x") == INCOMING_SPAN_ID
    assert published.attributes == {"batch": 3}


@pytest.mark.parametrize("traceparent", [None, "", "not-a-traceparent"])
def test_span_from_missing_or_invalid_traceparent_starts_a_new_trace(
    spans: InMemorySpanExporter, traceparent: str | None
) -> None:
    with (
        trace.get_tracer("test").start_as_current_span("unrelated") as unrelated,
        span_from_traceparent("consume", traceparent, kind=SpanKind.CONSUMER) as span,
    ):
        pass

    consumed = finished(spans, span)
    assert consumed.parent is None
    assert consumed.context.trace_id != unrelated.get_span_context().trace_id


def test_traceparent_round_trips_through_an_outbox_row(spans: InMemorySpanExporter) -> None:
    with trace.get_tracer("test").start_as_current_span("request") as request:
        stored = current_traceparent()
    with span_from_traceparent("relay", stored, kind=SpanKind.PRODUCER) as relay:
        pass

    relayed = finished(spans, relay)
    assert relayed.context.trace_id == request.get_span_context().trace_id
    assert relayed.parent is not None
    assert relayed.parent.span_id == request.get_span_context().span_id


def test_json_log_line_carries_service_and_active_trace_id(spans: InMemorySpanExporter) -> None:
    stream = io.StringIO()
    logger = logging.getLogger(f"test.telemetry.{uuid.uuid4().hex}")
    logger.addHandler(json_log_handler(stream, "feedback"))
    logger.setLevel(logging.INFO)
    logger.propagate = False

    logger.info("before any span")
    with span_from_traceparent("consume", INCOMING_TRACEPARENT, kind=SpanKind.CONSUMER) as span:
        logger.info("applied %s", "event", extra={"event_id": "e-1"})

    outside, inside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert outside["trace_id"] == ""
    assert outside["span_id"] == ""
    assert inside["message"] == "applied event"
    assert inside["level"] == "INFO"
    assert inside["service"] == "feedback"
    assert inside["event_id"] == "e-1"
    assert inside["trace_id"] == INCOMING_TRACE_ID
    assert inside["span_id"] == format(span.get_span_context().span_id, "016x")


def test_unread_spans_are_not_recorded_yet_their_trace_reaches_logs_and_the_outbox() -> None:
    # No exporter and no recording (outside the `spans` fixture): the span is dropped, cheaply.
    stream = io.StringIO()
    logger = logging.getLogger(f"test.telemetry.{uuid.uuid4().hex}")
    logger.addHandler(json_log_handler(stream, "feedback"))
    logger.propagate = False
    with span_from_traceparent("consume", INCOMING_TRACEPARENT, kind=SpanKind.CONSUMER) as span:
        logger.warning("applied")
        onward = current_traceparent()
    assert not span.is_recording()
    assert json.loads(stream.getvalue())["trace_id"] == INCOMING_TRACE_ID
    assert onward is not None
    assert onward.split("-")[1] == INCOMING_TRACE_ID
    with (
        recording_spans() as exporter,
        span_from_traceparent("consume", None, kind=SpanKind.CONSUMER),
    ):
        pass
    assert [s.name for s in exporter.get_finished_spans()] == ["consume"]


def test_an_unread_span_is_the_one_the_sdk_would_have_dropped() -> None:
    # Outside a recording, prodops makes unread spans itself: they must be what the SDK's own
    # dropped spans are, a child of the same trace (or a new one), unsampled, never recording.
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    state = "vendor=value"
    for traceparent in (INCOMING_TRACEPARENT, None):
        carrier = {"traceparent": traceparent, "tracestate": state} if traceparent else {}
        parent = TraceContextTextMapPropagator().extract(carrier)
        with started_span("consume", context=parent, kind=SpanKind.CONSUMER) as ours:
            assert trace.get_current_span() is ours
        with provider.get_tracer("sdk").start_as_current_span("consume", parent) as sdk:
            pass
        mine, theirs = ours.get_span_context(), sdk.get_span_context()
        assert not ours.is_recording()
        assert not sdk.is_recording()
        assert (mine.is_valid, mine.is_remote, mine.trace_flags, mine.trace_state) == (
            theirs.is_valid,
            theirs.is_remote,
            theirs.trace_flags,
            theirs.trace_state,
        )
        if traceparent:
            assert mine.trace_id == theirs.trace_id == int(INCOMING_TRACE_ID, 16)
            assert mine.trace_state.to_header() == state
        else:
            assert mine.trace_id != theirs.trace_id  # each starts a trace of its own
        assert mine.span_id not in (theirs.span_id, int(INCOMING_SPAN_ID, 16))
    assert trace.get_current_span() is INVALID_SPAN


def test_setup_telemetry_twice_keeps_one_handler_and_the_installed_tracer(
    spans: InMemorySpanExporter, root_logger: logging.Logger
) -> None:
    provider = trace.get_tracer_provider()
    settings = Settings(env="test", jwt_secret=SecretStr("s" * 40), log_level="debug")
    setup_telemetry(settings, service="feedback")
    setup_telemetry(settings, service="feedback")

    assert [h.name for h in root_logger.handlers].count("prodops-json") == 1
    assert root_logger.level == logging.DEBUG
    assert trace.get_tracer_provider() is provider


async def test_metrics_label_requests_by_route_template_not_raw_path() -> None:
    service = f"metrics-{uuid.uuid4().hex[:8]}"
    app = build_app(service=service)

    await get(app, "/items/123")
    await get(app, "/items/456")
    await get(app, "/v1/items/comments/7")
    await get(app, "/nowhere/9")
    response = await get(app, "/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = [
        line
        for line in response.text.splitlines()
        if line.startswith("prodops_http_requests_total{") and f'service="{service}"' in line
    ]
    assert any('route="/items/{item_id}"' in line for line in samples)
    assert not any("/items/123" in line for line in samples)
    assert requests_counted(service, "/items/{item_id}", "200") == 2.0
    assert requests_counted(service, "/v1/items/comments/{comment_id}", "200") == 1.0
    assert requests_counted(service, "unmatched", "404") == 1.0
    duration = REGISTRY.get_sample_value(
        "prodops_http_request_duration_seconds_count",
        {"service": service, "method": "GET", "route": "/items/{item_id}"},
    )
    assert duration == 2.0


async def test_unhandled_error_is_counted_as_500() -> None:
    service = f"metrics-{uuid.uuid4().hex[:8]}"

    response = await get(build_app(service=service), "/boom")

    assert response.status_code == 500
    assert requests_counted(service, "/boom", "500") == 1.0


async def test_metrics_disabled_serves_no_metrics_endpoint() -> None:
    service = f"metrics-{uuid.uuid4().hex[:8]}"
    app = build_app(service=service, metrics_enabled=False)

    await get(app, "/items/1")
    response = await get(app, "/metrics")

    assert response.status_code == 404
    assert requests_counted(service, "/items/{item_id}", "200") is None
