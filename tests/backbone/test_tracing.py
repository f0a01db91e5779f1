"""One trace runs from the HTTP request through the outbox relay into the insights handler."""

from __future__ import annotations

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from prodops.runtime.settings import Settings
from prodops.runtime.telemetry import recording_spans
from support import create_app, eventually, running, summary


async def test_one_trace_spans_the_post_the_relay_and_the_consumer(
    settings: Settings, headers: dict[str, str]
) -> None:
    async with (
        running(create_app("feedback", settings)) as feedback,
        running(create_app("insights", settings)) as insights,
    ):
        with recording_spans() as exporter:
            answer = await feedback.post("/v1/feedback", headers=headers, json={"title": "Traced"})
            assert answer.status_code == 201
            await eventually(lambda: summary(insights, headers), lambda c: c["feedback"] == 1)
            # The alignment signal the feedback moved is published under the same trace.
            await eventually(
                lambda: _published_signals(exporter), lambda names: len(names) > 0, within=10
            )
    spans = exporter.get_finished_spans()
    server = [s for s in spans if s.kind == SpanKind.SERVER and "/v1/feedback" in s.name]
    assert server, [s.name for s in spans]
    trace_id = server[0].context.trace_id
    in_trace = {s.name for s in spans if s.context.trace_id == trace_id}
    assert any(n.startswith("publish ") for n in in_trace), in_trace
    assert "consume prodops.feedback.received.v1" in in_trace, in_trace
    assert "refresh signals" in in_trace, in_trace
    assert any(".signal.alignment.changed." in n for n in in_trace), in_trace


async def _published_signals(exporter: InMemorySpanExporter) -> list[str]:
    return [s.name for s in exporter.get_finished_spans() if ".signal." in s.name]
