"""`prodops insights rebuild`: replay the stream into empty facts and signals.

The replay applies events through the same engine as the live consumer, silently (no events,
webhooks or history), claiming each id in the live consumer's inbox so that it does not apply
them a second time. Signal history and subscriptions are kept.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import nats
from nats.js.api import DeliverPolicy

from insights.engine import CONSUMER, SignalEngine
from insights.facts import AGGREGATES
from prodops.db import Connection, Pool, create_pool
from prodops.events import Event
from prodops.settings import Settings

log = logging.getLogger(__name__)

DERIVED = (
    "projection",
    "feedback_fact",
    "feedback_item",
    "account_fact",
    "objective_fact",
    "item_fact",
    "launch_fact",
    "issue_fact",
    "contribution",
    "total",
    "contributor_expiry",
    "launch_signal",
    "alignment_signal",
)
_CLAIM = """
INSERT INTO inbox (consumer, event_id, workspace, type)
SELECT $1, * FROM unnest($2::uuid[], $3::text[], $4::text[])
ON CONFLICT DO NOTHING RETURNING event_id
"""
_UNCLAIM = "DELETE FROM inbox WHERE consumer = $1 AND event_id = ANY($2::uuid[])"


@dataclass
class Rebuilt:
    """What a rebuild read and applied."""

    messages: int = 0
    applied: int = 0
    skipped: int = 0
    failed: int = 0


async def clear(conn: Connection) -> None:
    """Empty every derived table and forget what the live consumer applied."""
    # TRUNCATE waits for the live consumer's open batch, then shuts it out until commit.
    await conn.execute(f"TRUNCATE {', '.join(DERIVED)}")
    await conn.execute("DELETE FROM inbox WHERE consumer = $1", CONSUMER)


async def rebuild(settings: Settings, *, batch_size: int = 1000) -> Rebuilt:
    """Replay every event in the stream, up to its last message when the rebuild began."""
    pool = await create_pool(settings, schema="insights", max_size=2)
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        last = (await js.stream_info(settings.stream_name)).state.last_seq
        async with pool.acquire() as conn, conn.transaction():
            await clear(conn)
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
    finally:
        await nc.close()
        await pool.close()


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
        rows = await conn.fetch(
            _CLAIM,
            CONSUMER,
            [e.id for e in events],
            [e.workspace for e in events],
            [e.type for e in events],
        )
        fresh = {r["event_id"] for r in rows}
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
            await conn.execute(_UNCLAIM, CONSUMER, failed)
        await engine.end(conn)
