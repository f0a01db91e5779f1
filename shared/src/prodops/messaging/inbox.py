"""The inbox that makes consumers idempotent, and the dead letters of events that kept failing.

A consumer claims an event id in the same transaction as the event's effect: a claim that is
already there means the event was applied, so a redelivery changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from prodops.contract import Event, new_id
from prodops.runtime.db import Connection, Pool

_CLAIM = """
INSERT INTO inbox (consumer, event_id, workspace, type)
SELECT $1, * FROM unnest($2::uuid[], $3::text[], $4::text[])
ON CONFLICT DO NOTHING RETURNING event_id
"""
_UNCLAIM = "DELETE FROM inbox WHERE consumer = $1 AND event_id = ANY($2::uuid[])"
_DEAD_LETTER = """
INSERT INTO dead_letter
    (id, consumer, event_id, workspace, type, subject, payload, error, deliveries)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (consumer, event_id) DO UPDATE
SET error = EXCLUDED.error, deliveries = EXCLUDED.deliveries, status = 'dead', replayed_at = NULL
"""
_PURGE = "DELETE FROM inbox WHERE processed_at < now() - $1::float8 * interval '1 hour'"


async def claim(conn: Connection, consumer: str, events: Sequence[Event]) -> set[UUID]:
    """Claim the events for `consumer`; the ids of those not claimed before."""
    if not events:
        return set()
    rows = await conn.fetch(
        _CLAIM,
        consumer,
        [e.id for e in events],
        [e.workspace for e in events],
        [e.type for e in events],
    )
    return {r["event_id"] for r in rows}


async def release(conn: Connection, consumer: str, event_ids: Sequence[UUID]) -> None:
    """Give claims back (their events failed), so that a redelivery applies them."""
    await conn.execute(_UNCLAIM, consumer, list(event_ids))


@dataclass(frozen=True)
class DeadLetter:
    """An event, or a body that was none, that a consumer gave up on."""

    consumer: str
    event_id: UUID
    workspace: str
    type: str
    subject: str
    payload: bytes
    error: str
    deliveries: int


async def store_dead_letter(conn: Connection, letter: DeadLetter) -> None:
    """Keep the letter, listed and replayable; a letter already kept takes the new error."""
    await conn.execute(
        _DEAD_LETTER,
        new_id(),
        letter.consumer,
        letter.event_id,
        letter.workspace,
        letter.type,
        letter.subject,
        letter.payload,
        letter.error,
        letter.deliveries,
    )


async def purge_inbox(pool: Pool, *, older_than_hours: float) -> int:
    """Forget claims older than the redelivery horizon (version gating covers anything later)."""
    status: str = await pool.execute(_PURGE, older_than_hours)
    return int(status.rsplit(maxsplit=1)[-1])
