"""The rebuild event by event: each one through the live engine, in batches of a transaction.

Slow (several round trips an event), but it needs nothing beyond what the live consumer does:
the bulk rebuild falls back to it when PostgreSQL refuses what it wrote, since this path tells
which event was refused and rebuilds the rest.
"""

from __future__ import annotations

import logging

import nats.js
from nats.js.api import DeliverPolicy

from insights import rebuild_sql as sql
from insights.engine import CONSUMER, SignalEngine
from insights.facts import AGGREGATES
from insights.replay import Rebuilt
from prodops.contract import Event
from prodops.messaging import inbox
from prodops.runtime.db import Connection, Pool
from prodops.runtime.settings import Settings

log = logging.getLogger(__name__)


async def clear(conn: Connection) -> None:
    """Empty every derived table and forget what the live consumer applied."""
    await conn.execute(sql.TRUNCATE)
    await conn.execute(sql.FORGET_CLAIMS, CONSUMER)


async def rebuild_event_by_event(
    pool: Pool, js: nats.js.JetStreamContext, settings: Settings, *, batch_size: int = 1000
) -> Rebuilt:
    """Replay every event in the stream, up to its last message when the rebuild began."""
    async with pool.acquire() as conn, conn.transaction():
        await clear(conn)
    last = (await js.stream_info(settings.stream_name)).state.last_seq
    report = Rebuilt()
    if not last:
        return report
    sub = await js.subscribe(
        f"{settings.subject_prefix}.>",
        stream=settings.stream_name,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
    )
    batch: list[Event] = []
    while True:
        msg = await sub.next_msg(timeout=30)
        report.messages += 1
        batch.extend(_decoded(msg.data, report))
        done = msg.metadata.sequence.stream >= last
        if len(batch) >= batch_size or done:
            await apply_batch(pool, batch, report)
            batch = []
        if done:
            break
    await sub.unsubscribe()
    return report


def _decoded(body: bytes, report: Rebuilt) -> list[Event]:
    try:
        event = Event.from_bytes(body)
    except ValueError:
        report.failed += 1
        return []
    if event.type not in AGGREGATES:
        report.skipped += 1
        return []
    return [event]


async def apply_batch(pool: Pool, events: list[Event], report: Rebuilt) -> None:
    """Apply events in one transaction, each once; a batch with a failing event goes again."""
    # Savepoints cost two round trips an event: only a batch that needs them pays for them.
    try:
        tally = Rebuilt()
        await _apply(pool, events, tally, savepoints=False)
    except Exception:  # noqa: BLE001 - the careful pass below tells which event and why
        await _apply(pool, events, report, savepoints=True)
    else:
        report.applied += tally.applied
        report.skipped += tally.skipped


async def _apply(pool: Pool, events: list[Event], report: Rebuilt, *, savepoints: bool) -> None:
    engine = SignalEngine(emit=False)
    async with pool.acquire() as conn, conn.transaction():
        await engine.begin(conn, events)
        fresh = await inbox.claim(conn, CONSUMER, events)
        failed = []
        for event in events:
            if event.id not in fresh:
                report.skipped += 1
                continue
            fresh.discard(event.id)  # a second copy in the batch is a duplicate too
            if not savepoints:
                await engine.apply(conn, event)
                report.applied += 1
                continue
            try:
                async with conn.transaction():
                    await engine.apply(conn, event)
                report.applied += 1
            except Exception:
                # The live consumer would dead-letter it; the rebuild reports it and goes on.
                log.exception("rebuild: event %s (%s) could not be applied", event.id, event.type)
                failed.append(event.id)
        report.failed += len(failed)
        if failed:
            await inbox.release(conn, CONSUMER, failed)
        await engine.end(conn, careful=savepoints)
