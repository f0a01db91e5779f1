"""The composition root every service shares: pool, broker, relay, consumers and HTTP conventions.

Nothing connects at import time: `create_service_app` returns an app whose lifespan builds and
tears down every connection, so tests build as many independent apps as they like.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, FastAPI
from faststream.nats import NatsBroker
from faststream.specification import AsyncAPI

from prodops import __version__
from prodops.contract import EventData, envelope_model
from prodops.http.auth import install_auth
from prodops.http.idempotency import (
    IdempotencyMiddleware,
    document_idempotency_key,
    purge_expired_keys,
)
from prodops.http.limits import BodyLimitMiddleware, RateLimitMiddleware, TokenBuckets
from prodops.http.problems import install_problem_handlers
from prodops.http.read_fast_path import HotRead, ReadFastPath
from prodops.http.telemetry import NATIVE_TELEMETRY_OFF, instrument_app
from prodops.messaging.broker import create_broker, ensure_stream, jetstream
from prodops.messaging.consumer import EventConsumer
from prodops.messaging.inbox import purge_inbox
from prodops.messaging.outbox import OutboxRelay
from prodops.runtime.db import Pool, create_pool
from prodops.runtime.settings import Settings
from prodops.runtime.telemetry import setup_telemetry
from prodops.webhooks.endpoint import WebhookEndpoint, purge_deliveries, webhook_routers
from prodops.webhooks.fast_path import WebhookFastPath

log = logging.getLogger(__name__)

ConsumerFactory = Callable[[Pool, Settings], Sequence[EventConsumer]]
# Named background loops a service runs beside its relay and consumers (cancelled at shutdown).
BackgroundFactory = Callable[[Pool, Settings], Sequence[tuple[str, Coroutine[Any, Any, None]]]]


@dataclass(frozen=True)
class ServiceSpec:
    """What makes one service different from the others."""

    name: str
    description: str
    routers: Sequence[APIRouter] = ()
    emits: Sequence[type[EventData]] = ()
    consumers: ConsumerFactory = field(default=lambda _pool, _settings: ())
    unlimited_body_paths: Sequence[str] = ()
    background: BackgroundFactory = field(default=lambda _pool, _settings: ())
    # Inbound vendor webhooks: routed first, and served by WebhookFastPath.
    webhooks: WebhookEndpoint | None = None
    # GET routes also answered by ReadFastPath (each must be one of `routers`' routes).
    hot_reads: Sequence[HotRead] = ()


@dataclass
class Runtime:
    """The live connections of a running service (on `app.state.runtime`)."""

    settings: Settings
    pool: Pool
    broker: NatsBroker
    relay: OutboxRelay
    consumers: dict[str, EventConsumer]
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


def create_service_app(settings: Settings, spec: ServiceSpec) -> FastAPI:
    """Build the FastAPI app of a service; connections open in its lifespan."""
    setup_telemetry(settings, service=spec.name)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await _start(settings, spec, app)
        if getattr(app.state, "freeze_after_startup", False):
            _freeze_what_startup_made()
        try:
            yield
        finally:
            await _stop(runtime)

    app = FastAPI(
        title=f"prodops {spec.name}",
        version=__version__,
        description=spec.description,
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
        telemetry=NATIVE_TELEMETRY_OFF,
    )
    app.state.settings = settings
    install_problem_handlers(app)
    verifier = install_auth(app, settings)
    from prodops.http.common import asyncapi_router, dead_letter_router, health_router

    app.include_router(health_router)
    app.include_router(dead_letter_router)
    if spec.webhooks is not None:
        # Routes are matched in order: the vendors' deliveries, the busiest, first.
        for router in webhook_routers(spec.webhooks):
            app.include_router(router)
    for router in spec.routers:
        app.include_router(router)
    app.state.asyncapi = AsyncAPI(title=f"prodops {spec.name} events", version=__version__)
    app.include_router(asyncapi_router)
    # Starlette wraps in reverse: the last added is outermost. Order: rate, size, idempotency.
    app.add_middleware(IdempotencyMiddleware)
    app.add_middleware(
        BodyLimitMiddleware,
        limit=settings.body_limit_bytes,
        unlimited_paths=tuple(spec.unlimited_body_paths),
    )
    buckets = TokenBuckets(
        rate_per_second=settings.rate_limit_per_second, burst=settings.rate_limit_burst
    )
    app.add_middleware(RateLimitMiddleware, buckets=buckets)
    instrument_app(app, service=spec.name, metrics_enabled=settings.metrics_enabled)
    document_idempotency_key(app)
    if spec.hot_reads:
        app.add_middleware(
            ReadFastPath,
            reads=spec.hot_reads,
            verifier=verifier,
            service=spec.name,
            buckets=buckets,
            metrics=settings.metrics_enabled,
        )
    if spec.webhooks is not None:
        # Outermost, so that deliveries skip the rest of the stack and the router.
        app.add_middleware(
            WebhookFastPath,
            endpoint=spec.webhooks,
            service=spec.name,
            body_limit=settings.body_limit_bytes,
            buckets=buckets,
            metrics=settings.metrics_enabled,
        )
    return app


# Allocations between collections of the youngest generation in a served process.
YOUNG_COLLECTION_THRESHOLD = 50_000


def _freeze_what_startup_made() -> None:
    """Keep the objects that live as long as the process out of every garbage collection.

    Only in a process that serves one app for its whole life (`prodops serve` sets
    `app.state.freeze_after_startup`): a process that makes and drops many apps, such as the
    test suite, would keep every one of them.

    The app, its routes and schemas, the modules and the connections are hundreds of thousands
    of objects that never become garbage. The oldest generation's collection walked all of them
    with the event loop stopped, every few seconds under load, which was most of a read's p99
    (benchmark 5, docs/performance.md). Frozen, a collection walks only what was made since.

    The youngest generation is collected after `YOUNG_COLLECTION_THRESHOLD` allocations instead
    of 700: a request's objects are freed by reference counting when it ends, so a collection
    that frequent mostly walked objects still in use; a delivery costs the ingest process less
    CPU (benchmark 1), and a collection of that many objects is still short.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])


async def _start(settings: Settings, spec: ServiceSpec, app: FastAPI) -> Runtime:
    pool = await create_pool(settings, schema=spec.name, max_size=settings.pool_max_size)
    broker = create_broker(settings, service=spec.name)
    # Without background work the consumers are still built, for dead-letter replays over HTTP,
    # but not subscribed.
    consumers = {c.name: c for c in spec.consumers(pool, settings)}
    if settings.background:
        for consumer in consumers.values():
            consumer.register(broker)
    _document_events(settings, spec, broker)
    try:
        await broker.connect()
        js = jetstream(broker)
        await ensure_stream(js, settings)
        await broker.start()
    except BaseException:
        await pool.close()
        raise
    relay = OutboxRelay(pool=pool, js=js, settings=settings, service=spec.name)
    runtime = Runtime(settings, pool, broker, relay, consumers)
    loops: list[tuple[str, Coroutine[Any, Any, None]]] = []
    if spec.webhooks is not None:  # every process that serves deliveries stores them
        loops.append(("webhook-writer", spec.webhooks.intake.writer(pool, settings)))
    if settings.background:
        loops.append(("outbox-relay", relay.run()))
        for consumer in consumers.values():
            runtime.tasks.append(asyncio.create_task(consumer.run(), name=consumer.name))
            watch = consumer.keep_subscribed(js)
            runtime.tasks.append(asyncio.create_task(watch, name=f"{consumer.name}-subscription"))
        loops += spec.background(pool, settings)
        loops.append(("purge", _purge_forever(pool, relay, settings)))
    for name, loop in loops:
        runtime.tasks.append(asyncio.create_task(loop, name=f"{spec.name}-{name}"))
    app.state.pool, app.state.runtime = pool, runtime
    app.state.asyncapi.add_broker(broker)
    return runtime


def _document_events(settings: Settings, spec: ServiceSpec, broker: NatsBroker) -> None:
    from prodops.contract import type_tokens

    for data in spec.emits:
        broker.publisher(
            f"{settings.subject_prefix}.{type_tokens(data.TYPE)}.*",
            title=data.TYPE,
            description=data.__doc__,
            schema=envelope_model(data),
        )


async def _purge_forever(pool: Pool, relay: OutboxRelay, settings: Settings) -> None:
    """Hourly: drop sent outbox rows, expired idempotency keys, old inbox claims and deliveries."""
    while True:
        await asyncio.sleep(3600)
        try:
            await relay.purge()
            await purge_expired_keys(pool)
            await purge_inbox(pool, older_than_hours=settings.inbox_retention_hours)
            await purge_deliveries(pool, older_than_hours=settings.delivery_retention_hours)
        except Exception:
            log.exception("periodic purge failed; trying again in an hour")


async def _stop(runtime: Runtime) -> None:
    """Cancel the loops, then stop the broker, then close the pool, each within the grace period.

    A step that overruns is logged and abandoned, so that a loop deaf to cancellation or a
    connection stuck in a query can never hold the process (or a test run) up for good: the
    database, not this process, keeps every accepted event.
    """
    grace = runtime.settings.shutdown_grace_seconds
    for task in runtime.tasks:
        task.cancel()
    if runtime.tasks:
        _done, pending = await asyncio.wait(runtime.tasks, timeout=grace)
        for task in pending:
            log.error("background task %s still running %s s after cancel", task.get_name(), grace)
    for task in runtime.tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.error("background task %s had died: %r", task.get_name(), task.exception())
    try:
        async with asyncio.timeout(grace):
            await runtime.broker.stop()
    except TimeoutError:
        log.warning("broker still stopping after %s s; leaving it", grace)
    except Exception:
        log.exception("broker failed to stop cleanly")
    try:
        async with asyncio.timeout(grace):
            await runtime.pool.close()
    except TimeoutError:
        log.warning("database connections still busy after %s s; terminating them", grace)
        runtime.pool.terminate()
