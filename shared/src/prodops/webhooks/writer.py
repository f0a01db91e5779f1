"""Verified deliveries stored by group commit: one insert for all that arrived meanwhile.

A webhook request only waits for its delivery to be durable. Concurrent requests are stored
together: the writer inserts everything that arrived while the previous insert was in flight, in
one statement, and answers each request once that statement has committed. Each body is kept
for the normaliser (`BodyCache`) before its row can be seen, and stored compressed
(`body_codec`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from prodops.http.problems import ProblemError
from prodops.runtime.db import Pool
from prodops.webhooks import body_codec
from prodops.webhooks.body_cache import BodyCache

# Most rows in one insert.
WRITE_BATCH = 500
# Most deliveries waiting to be stored: past it (the database stalled), a vendor is told to
# retry rather than held until it gives up, and the process's memory stays bounded.
MAX_WAITING = 20 * WRITE_BATCH

# The channel (+ the service's schema) that wakes normalisers in other processes.
WAKE_CHANNEL_PREFIX = "prodops_webhooks_"
# With $9, the commit also wakes the normalisers of other processes (this one has none): a
# NOTIFY on channel $10 || the schema.
_INSERT = """
WITH stored AS (
    INSERT INTO webhook_delivery
        (id, workspace, source_id, provider, delivery_key, event_type, body_codec, body)
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::text[],
                         $7::text[], $8::bytea[])
    ON CONFLICT (source_id, delivery_key) DO NOTHING
    RETURNING id
), woken AS (
    SELECT pg_notify($10::text || current_schema(), '')
    WHERE $9 AND EXISTS (SELECT FROM stored)
)
SELECT id FROM stored LEFT JOIN woken ON true
"""
# What one row can cause (a constraint, a value): the others of its batch are stored one by one.
_ROW_ERRORS = (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError)


@dataclass(frozen=True)
class NewDelivery:
    """A verified delivery to store."""

    id: UUID
    workspace: str
    source_id: UUID
    provider: str
    delivery_key: str
    event_type: str
    body: bytes


@dataclass(frozen=True)
class _Pending:
    delivery: NewDelivery
    stored: asyncio.Future[bool]


class GroupCommit:
    """Stores deliveries in group commits; sets `stored` whenever new rows committed."""

    def __init__(self, bodies: BodyCache, stored: asyncio.Event) -> None:
        self._bodies, self._stored = bodies, stored
        self.running = False
        self._stopped = False
        self._pending: list[_Pending] = []
        self._arrived = asyncio.Event()
        self._wake_others = False

    async def store(self, delivery: NewDelivery) -> bool:
        """Store a delivery durably; False when its (source, key) was stored before."""
        if not self.running:
            raise RuntimeError("the webhook intake is not running")
        if self._stopped:
            raise ProblemError(503, "Service Unavailable", "the service is stopping")
        if len(self._pending) >= MAX_WAITING:
            raise ProblemError(
                503,
                "Service Unavailable",
                "too many deliveries are waiting to be stored; retry shortly",
                headers={"Retry-After": "1"},
            )
        stored: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(delivery, stored))
        self._arrived.set()
        return await stored

    async def write_forever(self, pool: Pool, *, wake_others: bool = False) -> None:
        """Insert whatever has arrived, batch after batch, for the service's lifetime.

        With `wake_others`, every insert that stored a row also wakes the normalisers of other
        processes (this one has none, so it keeps no body for one).
        """
        self._wake_others = wake_others
        batch: list[_Pending] = []
        try:
            while True:
                await self._arrived.wait()
                self._arrived.clear()
                batch, self._pending = self._pending[:WRITE_BATCH], self._pending[WRITE_BATCH:]
                if self._pending:
                    self._arrived.set()
                await self._write(pool, batch)
        finally:
            # Stopping: a batch cut short may or may not have committed; its sender retries
            # and, if it had, is answered `duplicate`.
            self._stopped = True
            stopping = ProblemError(503, "Service Unavailable", "the service is stopping")
            for pending in [*batch, *self._pending]:
                if not pending.stored.done():
                    pending.stored.set_exception(stopping)
            self._pending = []

    async def _write(self, pool: Pool, batch: list[_Pending]) -> None:
        for pending in batch:  # kept before this process's normaliser can see the row
            if not self._wake_others:  # else it has none: the others read bodies from the rows
                self._bodies.put(pending.delivery.id, pending.delivery.body)
        try:
            inserted = await _insert(pool, [p.delivery for p in batch], wake=self._wake_others)
        except _ROW_ERRORS as exc:
            if len(batch) == 1:
                self._bodies.take(batch[0].delivery.id)
                _fail(batch[0], exc)
                return
            for pending in batch:  # one bad row must not fail the others
                await self._write(pool, [pending])
            return
        except Exception as exc:  # noqa: BLE001 - the database away: every sender hears it
            for pending in batch:
                self._bodies.take(pending.delivery.id)
                _fail(pending, exc)
            return
        for pending in batch:
            if pending.delivery.id not in inserted:  # a redelivery: stored before, or never
                self._bodies.take(pending.delivery.id)
            if not pending.stored.done():
                pending.stored.set_result(pending.delivery.id in inserted)
        if inserted:
            self._stored.set()


async def _insert(pool: Pool, deliveries: list[NewDelivery], *, wake: bool) -> set[UUID]:
    stored = [body_codec.encode(d.body) for d in deliveries]
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            _INSERT,
            [d.id for d in deliveries],
            [d.workspace for d in deliveries],
            [d.source_id for d in deliveries],
            [d.provider for d in deliveries],
            [d.delivery_key for d in deliveries],
            [d.event_type for d in deliveries],
            [codec for codec, _ in stored],
            [body for _, body in stored],
            wake,
            WAKE_CHANNEL_PREFIX,
        )
    return {row["id"] for row in rows}


def _fail(pending: _Pending, exc: Exception) -> None:
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        # The source was deleted after this process last read it.
        exc = ProblemError(404, "Not Found", "no such webhook source")
    if not pending.stored.done():
        pending.stored.set_exception(exc)
