"""The insights service's composition root."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI

from insights.api import router
from insights.projections import handlers
from prodops.consumer import EventConsumer
from prodops.db import Pool
from prodops.events import AlignmentChanged, LaunchReadinessChanged
from prodops.service import ServiceSpec, create_service_app
from prodops.settings import Settings

CONSUMER = "insights-projections"


def consumers(pool: Pool, settings: Settings) -> Sequence[EventConsumer]:
    """One durable consumer of every event, feeding the projections."""
    return [EventConsumer(name=CONSUMER, pool=pool, settings=settings, handlers=handlers())]


SPEC = ServiceSpec(
    name="insights",
    description="Alignment and launch-readiness signals, explained and pushed to subscribers.",
    routers=[router],
    emits=[LaunchReadinessChanged, AlignmentChanged],
    consumers=consumers,
)


def create_app(settings: Settings) -> FastAPI:
    """The insights app for these settings."""
    return create_service_app(settings, SPEC)
