"""Idempotent, durable JetStream consumers.

The server pushes messages to a durable consumer shared by every replica (a deliver group), up to
`max_ack_pending` unacknowledged at a time; the subscriber only queues them, and one task per
consumer handles whatever has queued as a batch. Push rather than pull: nats-py's pull `fetch`
loses messages to an `asyncio.wait_for` race on Python 3.11 when its timeout is short, and adds
its whole timeout to the latency when it is long; a push consumer has no client-side timeout.

A batch is handled in one PostgreSQL transaction: each event id is claimed in the inbox and the
handlers run (the types a bulk handler takes, set-wise, all at once), without savepoints; if
anything raises, the transaction is undone and the batch runs again in a new one, each event
through its handler in a savepoint of its own, so that only the failing one's writes are
undone. Acks go out only after the commit. A handler that raises is retried with back-off (nak
with delay) and, the last time its message is delivered, stored as a dead letter and acked, so
it never blocks the events behind it. A process that dies leaves its messages unacknowledged:
the server delivers them again after `ack_wait`, and the inbox skips what was already applied.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from faststream import AckPolicy
from faststream.nats import ConsumerConfig, DeliverPolicy, JStream, NatsBroker
from faststream.nats.message import NatsMessage
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from opentelemetry.trace import Span, SpanKind

from prodops.contract import Event, new_id
from prodops.messaging import inbox
from prodops.messaging.broker import ensure_stream
from prodops.messaging.handlers import BatchHooks, BulkHandler, Consumed, Handler
from prodops.runtime.db import Connection, Pool
from prodops.runtime.settings import Settings
from prodops.runtime.telemetry import EVENTS_CONSUMED, span_from_traceparent, traceparent_of

log = logging.getLogger(__name__)

# How often a running consumer checks that its durable consumer still exists on the server.
SUBSCRIPTION_CHECK_SECONDS = 5.0


class _Subscription(Protocol):
    """The FastStream subscriber of a consumer, as far as resubscribing needs it."""

    async def start(self) -> None:
        """Subscribe (creating the durable consumer when it does not exist)."""

    async def stop(self) -> None:
        """Unsubscribe."""


@dataclass
class _Message:
    """One consumed JetStream message: its event (None if undecodable) and what became of it."""

    msg: Msg
    event: Event | None
    error: str | None = None
    outcome: str = "applied"

    @property
    def times_delivered(self) -> int:
        return int(self.msg.metadata.num_delivered or 1)


async def _raw_message(message: NatsMessage) -> Any:
    """The nats-py message itself, undecoded (the batch decodes it).

    Not `Context("message")` in the handler: FastStream resolves that sync dependency in a
    worker thread, a thread hop per message, and would also decode the body as JSON for nothing.
    """
    return message.raw_message


@dataclass
class EventConsumer:
    """One durable pull consumer of the stream, applying events through `handlers` by type."""

    name: str
    pool: Pool
    settings: Settings
    handlers: Mapping[str, Handler]
    filter_subject: str = ">"
    hooks: BatchHooks | None = None
    bulk: BulkHandler | None = None
    deliveries_seen: int = field(default=0, init=False)  # settled (acked or nakked) so far
    _queue: asyncio.Queue[Msg] = field(default_factory=asyncio.Queue, init=False)
    _subscription: _Subscription | None = field(default=None, init=False)
    _subscribed: bool = field(default=True, init=False)  # the broker's start subscribes it
    # One batch at a time through the hooks, which keep a batch's state between begin and end:
    # the live loop's, and a dead letter's replay asked for over HTTP, never interleave.
    _one_batch: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    def register(self, broker: NatsBroker) -> None:
        """Attach the subscriber to the broker (before it starts)."""
        s = self.settings
        subscriber = broker.subscriber(
            f"{s.subject_prefix}.{self.filter_subject}",
            # A deliver group shared by replicas; nats-py makes it the durable name too.
            queue=self.name,
            stream=JStream(s.stream_name, declare=False),
            # Never FastStream's NATS default, which terminates a message whose handler raised:
            # every ack, nak and dead letter here is explicit.
            ack_policy=AckPolicy.MANUAL,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.ALL,
                # No max_deliver: the server would drop a message past it, neither applied nor
                # dead-lettered. A batch failing as a whole (the database away) is nakked, and
                # each redelivery counts, so an outage longer than the back-offs lost events.
                # The dead letter at `consumer_max_deliver` is this consumer's own decision.
                max_deliver=-1,
                ack_wait=s.consumer_ack_wait_seconds,
                max_ack_pending=s.consumer_max_ack_pending,
            ),
            title=f"{self.name}:consume",
            description=f"Durable consumer {self.name} of {s.stream_name}",
            decoder=_raw_message,
        )
        subscriber(self._enqueue)
        self._subscription = subscriber

    async def keep_subscribed(self, js: JetStreamContext) -> None:
        """Subscribe again whenever the durable consumer is gone (its stream deleted, say)."""
        # The server drops a stream's consumers with it, and tells no push subscriber: without
        # this, a stream refilled by `prodops outbox republish` would never be consumed again.
        while True:
            await asyncio.sleep(SUBSCRIPTION_CHECK_SECONDS)
            try:
                await self._check_subscription(js)
            except Exception:  # the broker may be away: look again next time
                log.warning("consumer %s: subscription check failed", self.name, exc_info=True)

    async def _check_subscription(self, js: JetStreamContext) -> None:
        assert self._subscription is not None, "register() the consumer first"
        try:
            await js.consumer_info(self.settings.stream_name, self.name)
        except NotFoundError:
            log.warning("consumer %s: durable consumer gone; subscribing again", self.name)
            await ensure_stream(js, self.settings)
        else:
            if self._subscribed:
                return
        if self._subscribed:
            self._subscribed = False
            await self._subscription.stop()
        await self._subscription.start()
        self._subscribed = True

    async def _enqueue(self, raw: Any) -> None:
        # `raw` is the nats-py message, as `_raw_message` decodes it: each event is decoded and
        # validated in the batch, as the inbox claim needs it.
        await self._queue.put(raw)

    async def run(self) -> None:
        """Handle queued messages forever, as many at a time as have arrived (up to a batch)."""
        limit = self.settings.consumer_batch_size
        while True:
            batch = [await self._queue.get()]
            while len(batch) < limit and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self.handle(batch)
            except Exception:
                # Unacknowledged, the batch comes back after ack_wait; keep consuming meanwhile.
                log.exception("consumer %s: batch of %d failed unexpectedly", self.name, len(batch))

    async def handle(self, msgs: list[Msg]) -> None:
        """Apply a batch; ack, nak or dead-letter each message after the transaction commits."""
        messages = [_decode(msg) for msg in msgs]
        try:
            await self.apply_batch(messages)
        except Exception:
            # The batch as a whole failed (the database went away): every message comes back.
            log.exception("consumer %s: batch of %d failed; redelivering", self.name, len(msgs))
            for m in messages:
                await m.msg.nak(delay=self._backoff(m.times_delivered))
        else:
            await self._settle(messages)
        self.deliveries_seen += len(msgs)

    async def apply_batch(self, messages: list[_Message]) -> None:
        """Apply the batch in one transaction: fast, or, if anything raised, carefully.

        The fast pass takes no savepoint (each costs two round trips, and a batch's
        transaction is on the path of every event's latency): whatever raises undoes the whole
        transaction. The careful pass then runs the batch again in a new one, each event and
        each piece of the batch's closing work in a savepoint of its own, so that only what
        failed is left out.
        """
        async with self._one_batch:
            try:
                await self._transaction(messages, careful=False)
            except Exception:  # noqa: BLE001 - the careful pass tells what failed, or fails too
                log.info("consumer %s: a batch failed; again, one event at a time", self.name)
                await self._transaction(messages, careful=True)

    async def _transaction(self, messages: list[_Message], *, careful: bool) -> None:
        for m in messages:  # what a pass that was undone had noted goes with it
            if m.event is None:
                m.outcome = "failed"  # undecodable: to be dead-lettered (again)
            else:
                m.outcome, m.error = "applied", None
        async with self.pool.acquire() as conn, conn.transaction():
            await self._apply(conn, messages, careful=careful)

    async def _apply(self, conn: Connection, messages: list[_Message], *, careful: bool) -> None:
        events = [m for m in messages if m.event is not None and m.event.type in self.handlers]
        for m in messages:
            if m.event is not None and m.event.type not in self.handlers:
                m.outcome = "ignored"
        fresh = await inbox.claim(conn, self.name, [m.event for m in events if m.event is not None])
        if self.hooks is not None:
            await self.hooks.begin(conn, [m.event for m in events if m.event is not None])
        todo: list[_Message] = []
        for m in events:
            assert m.event is not None
            if m.event.id not in fresh:
                m.outcome = "duplicate"
                continue
            fresh.discard(m.event.id)  # a second copy in the same batch is a duplicate too
            todo.append(m)
        failed = await self._run_handlers(conn, todo, careful=careful)
        if self.hooks is not None:
            await self.hooks.end(conn, careful=careful)
        if failed:
            await inbox.release(conn, self.name, [m.event.id for m in failed if m.event])
        for m in messages:
            # An undecodable body can never succeed, so it is dead-lettered at once.
            last_try = m.event is None or m.times_delivered >= self.settings.consumer_max_deliver
            if m.outcome == "failed" and last_try:
                await self._dead_letter(conn, m)

    async def _run_handlers(
        self, conn: Connection, todo: list[_Message], *, careful: bool
    ) -> list[_Message]:
        """Run each message's handler in order; the failed ones, whose writes are undone.

        Not careful, none fails: the first failure raises.
        """
        if not careful:
            await self._run_fast(conn, todo)
            return []
        failed: list[_Message] = []
        for m in todo:
            assert m.event is not None
            try:
                async with conn.transaction():
                    await self._run_handler(conn, m.event, m.msg)
            except Exception as exc:  # noqa: BLE001 - any handler failure is retried, then dead-lettered
                m.error, m.outcome = f"{type(exc).__name__}: {exc}", "failed"
                failed.append(m)
        return failed

    async def _run_fast(self, conn: Connection, todo: list[_Message]) -> None:
        bulk = self.bulk
        together: list[_Message] = []
        for m in todo:
            assert m.event is not None
            if bulk is not None and m.event.type in bulk.types:
                together.append(m)
            else:
                await self._run_handler(conn, m.event, m.msg)
        if bulk is None or not together:
            return
        with ExitStack() as spans:
            # Each event's consume span lasts as long as the set-wise work that applies it.
            consumed = [
                Consumed(m.event, traceparent_of(spans.enter_context(self._span(m.event, m.msg))))
                for m in together
                if m.event is not None
            ]
            await bulk.apply(conn, consumed)

    async def _run_handler(self, conn: Connection, event: Event, msg: Msg | None) -> None:
        with self._span(event, msg):
            await self.handlers[event.type](conn, event)

    def _span(self, event: Event, msg: Msg | None) -> AbstractContextManager[Span]:
        """The event's consume span, continuing the trace its message carries."""
        traceparent = (msg.headers or {}).get("traceparent") if msg else None
        return span_from_traceparent(
            f"consume {event.type}",
            traceparent or event.traceparent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "nats",
                "messaging.message.id": str(event.id),
                "messaging.consumer.group.name": self.name,
            },
        )

    async def _dead_letter(self, conn: Connection, m: _Message) -> None:
        event_id = m.event.id if m.event else _message_id(m.msg)
        letter = inbox.DeadLetter(
            consumer=self.name,
            event_id=event_id,
            workspace=m.event.workspace if m.event else m.msg.subject.rsplit(".", 1)[-1],
            type=m.event.type if m.event else "undecodable",
            subject=m.msg.subject,
            payload=m.msg.data,
            error=m.error or "unknown error",
            deliveries=m.times_delivered,
        )
        await inbox.store_dead_letter(conn, letter)
        m.outcome = "dead_lettered"
        log.error("consumer %s: event %s dead-lettered: %s", self.name, event_id, m.error)

    async def _settle(self, messages: list[_Message]) -> None:
        for m in messages:
            EVENTS_CONSUMED.labels(
                self.name, m.event.type if m.event else "undecodable", m.outcome
            ).inc()
            if m.outcome == "failed":
                await m.msg.nak(delay=self._backoff(m.times_delivered))
            else:
                await m.msg.ack()

    def _backoff(self, times_delivered: int) -> float:
        steps = self.settings.consumer_backoff_seconds
        return steps[min(times_delivered, len(steps)) - 1]

    async def replay(self, conn: Connection, payload: bytes) -> bool:
        """Apply a stored event again in the caller's transaction; False if applied already."""
        event = Event.from_bytes(payload)
        fresh = await inbox.claim(conn, self.name, [event])
        if event.id in fresh:
            async with self._one_batch:
                if self.hooks is not None:
                    await self.hooks.begin(conn, [event])
                await self._run_handler(conn, event, None)
                if self.hooks is not None:
                    await self.hooks.end(conn, careful=True)
        return event.id in fresh


def _decode(msg: Msg) -> _Message:
    try:
        return _Message(msg, Event.from_bytes(msg.data))
    except Exception as exc:  # noqa: BLE001 - a body that is no event can never succeed
        return _Message(
            msg, None, error=f"undecodable event: {type(exc).__name__}: {exc}", outcome="failed"
        )


def _message_id(msg: Msg) -> UUID:
    try:
        return UUID((msg.headers or {}).get("Nats-Msg-Id", ""))
    except ValueError:
        return new_id()
