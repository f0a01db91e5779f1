"""The insights service's composition root."""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from typing import Any

from fastapi import FastAPI

from insights.api import policies as policies_api
from insights.api import signals as signals_api
from insights.api import subscriptions
from insights.api import summary as api
from insights.engine import CONSUMER, SignalEngine
from insights.outbound.dispatcher import OutboundDispatcher
from insights.signals.tick import tick_forever
from prodops.contract import AlignmentChanged, LaunchReadinessChanged
from prodops.messaging.consumer import EventConsumer
from prodops.runtime.app import ServiceSpec, create_service_app
from prodops.runtime.db import Pool
from prodops.runtime.settings import Settings


def consumers(pool: Pool, settings: Settings) -> Sequence[EventConsumer]:
    """One durable consumer of every event, feeding the facts and the signals."""
    engine = SignalEngine()
    return [
        EventConsumer(
            name=CONSUMER,
            pool=pool,
            settings=settings,
            handlers=engine.handlers(),
            hooks=engine,
            bulk=engine.bulk(),
        )
    ]


def background(pool: Pool, settings: Settings) -> Sequence[tuple[str, Coroutine[Any, Any, None]]]:
    """The periodic tick and the outbound webhook dispatcher."""
    return [
        ("tick", tick_forever(pool, settings)),
        ("outbound", OutboundDispatcher(pool, settings).run()),
    ]


SPEC = ServiceSpec(
    name="insights",
    description="Alignment and launch-readiness signals, explained and pushed to subscribers.",
    routers=[signals_api.router, policies_api.router, subscriptions.router, api.router],
    emits=[LaunchReadinessChanged, AlignmentChanged],
    consumers=consumers,
    background=background,
    hot_reads=signals_api.HOT_READS,
)


def create_app(settings: Settings) -> FastAPI:
    """The insights app for these settings."""
    return create_service_app(settings, SPEC)
