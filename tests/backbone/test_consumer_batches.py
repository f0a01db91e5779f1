"""A consumer batch runs its handlers in one savepoint; a failure sends it one event at a time."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, cast
from uuid import UUID

from nats.aio.msg import Msg

from prodops.consumer import EventConsumer, _Delivery
from prodops.db import Connection
from prodops.events import Event, make_event
from prodops.settings import Settings
from support import auth, create_app, item_upserted, projections, running, summary


@dataclass
class _Metadata:
    num_delivered: int = 1


@dataclass
class _Carried:
    """What the consumer reads off a NATS message besides its body: headers and metadata."""

    headers: dict[str, str] | None = None
    metadata: _Metadata = field(default_factory=_Metadata)


def _deliveries(events: list[Event]) -> list[_Delivery]:
    return [_Delivery(cast(Msg, _Carried()), event) for event in events]


def _counting(consumer: EventConsumer, poison: UUID | None) -> Counter[UUID]:
    """How often each event's handler ran (rolled back or not); `poison`'s always raises."""
    runs: Counter[UUID] = Counter()
    real = dict(consumer.handlers)

    def wrapped(event_type: str) -> Any:
        async def handler(conn: Connection, event: Event) -> None:
            runs[event.id] += 1
            if event.id == poison:
                raise RuntimeError("projection store rejected the item")
            await real[event_type](conn, event)

        return handler

    consumer.handlers = {t: wrapped(t) for t in real}
    return runs


@dataclass
class _Batch:
    """Four item events handled as one batch by a running insights consumer, and what it left."""

    events: list[Event]
    deliveries: list[_Delivery]
    runs: Counter[UUID]
    items: int  # items the workspace's summary counts
    claimed: int  # of the four, the event ids held in the inbox


async def _handled_batch(settings: Settings, workspace: str, poison: int | None) -> _Batch:
    app = create_app("insights", settings)
    async with running(app) as client:
        consumer = projections(app)
        events = [
            make_event(item_upserted(1, f"Item {n}"), service="roadmap", workspace=workspace)
            for n in range(4)
        ]
        runs = _counting(consumer, poison=None if poison is None else events[poison].id)
        deliveries = _deliveries(events)
        async with consumer.pool.acquire() as conn, conn.transaction():
            await consumer._apply(conn, deliveries)
        counts = await summary(client, auth(settings, workspace))
        claimed = await app.state.pool.fetchval(
            "SELECT count(*) FROM inbox WHERE consumer = $1 AND event_id = ANY($2::uuid[])",
            consumer.name,
            [e.id for e in events],
        )
    return _Batch(events, deliveries, runs, counts["items"], claimed)


async def test_a_batch_without_failures_runs_each_handler_once(
    settings: Settings, workspace: str
) -> None:
    batch = await _handled_batch(settings, workspace, poison=None)
    assert [d.outcome for d in batch.deliveries] == ["applied"] * 4
    assert batch.runs == Counter(e.id for e in batch.events)
    assert batch.items == 4


async def test_a_failing_handler_fails_alone_and_the_others_apply_once(
    settings: Settings, workspace: str
) -> None:
    batch = await _handled_batch(settings, workspace, poison=2)
    events, deliveries = batch.events, batch.deliveries
    assert [d.outcome for d in deliveries] == ["applied", "applied", "failed", "applied"]
    assert "projection store rejected the item" in (deliveries[2].error or "")
    # The fast pass ran the first two before the poison, then undid them; the careful pass
    # ran each once more: their writes are there once.
    assert batch.runs == Counter(
        {events[0].id: 2, events[1].id: 2, events[2].id: 2, events[3].id: 1}
    )
    assert batch.items == 3
    assert batch.claimed == 3  # the poison's claim is released, so its redelivery applies
