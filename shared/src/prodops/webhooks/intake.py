"""Verified deliveries stored by group commit, then normalised in order in the background.

A webhook request only waits for its delivery to be durable (design.md §4: "normalisation may
run in the same transaction or after"): `intake_writer` stores concurrent deliveries together.
The normaliser then maps stored deliveries in arrival order, a batch per transaction, under a
lock that makes one process at a time do it, so two replicas never apply one issue's updates out
of order. A delivery left `received` by a stopped process is found by the next poll of any
replica.

A service gives one normaliser: a batch of one workspace's deliveries in, for each whether it
named anything out. The fast pass hands it each workspace's share of the batch; after a failure,
the careful pass hands it one delivery at a time, each in a savepoint, so only the failing ones
are kept `failed`. What a normaliser must ask a vendor's API (GitLab milestone titles) it asks in
its `prepare` step, which runs before the transaction that claims the batch: no vendor call waits
while the lock every workspace's deliveries share is held.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from prodops.contract import Event
from prodops.messaging import outbox
from prodops.messaging.wakeup import notified, woken_or_timed_out
from prodops.runtime.db import Connection, Pool
from prodops.runtime.settings import Settings
from prodops.webhooks import body_codec
from prodops.webhooks.body_cache import BodyCache
from prodops.webhooks.writer import WAKE_CHANNEL_PREFIX, GroupCommit, NewDelivery

log = logging.getLogger(__name__)

Outcome = Literal["processed", "ignored", "failed"]
Status = Literal["received", "processed", "ignored", "failed"]

# Most deliveries normalised in one transaction.
NORMALISE_BATCH = 200
# Most bytes of stored bodies kept for the normaliser (`BodyCache`).
BODY_CACHE_BYTES = 32 * 2**20

# The next deliveries to normalise, read without a lock: their vendor look-ups run before the
# claim.
_NEXT = """
SELECT id, workspace, source_id, provider, event_type, received_at
FROM webhook_delivery WHERE status = 'received'
ORDER BY received_at, id LIMIT $1
"""
# One normaliser at a time per service schema (feedback and roadmap share a database), taken in
# the claim's own round trip: every row it returns is joined to the lock, so the lock is held
# before the first row is. Rows another normaliser settled while this one waited for the lock
# are still `received` in the statement's snapshot; locking them reads their new version, which
# no longer matches, and they are skipped.
_CLAIM = """
WITH normaliser AS MATERIALIZED (
    SELECT pg_advisory_xact_lock(hashtext('webhook-normaliser:' || current_schema()))
)
SELECT d.id FROM webhook_delivery AS d, normaliser
WHERE d.id = ANY($1::uuid[]) AND d.status = 'received'
FOR UPDATE OF d SKIP LOCKED
"""
_BODIES = "SELECT id, body_codec, body FROM webhook_delivery WHERE id = ANY($1::uuid[])"
_SCOPE = "SELECT set_config('prodops.workspace', $1, true), set_config('role', $2, true)"
_UNSCOPE = "SELECT set_config('prodops.workspace', '', true), set_config('role', 'none', true)"
_SETTLE = """
UPDATE webhook_delivery d SET status = s.status, error = s.error, processed_at = now()
FROM unnest($1::uuid[], $2::text[], $3::text[]) AS s (id, status, error) WHERE d.id = s.id
"""
NamedLoop = tuple[str, Coroutine[Any, Any, None]]
_STATUS = "SELECT status FROM webhook_delivery WHERE id = $1"


@dataclass(frozen=True)
class Delivery:
    """A stored delivery, as the service's normaliser sees it."""

    id: UUID
    workspace: str
    source_id: UUID
    provider: str
    event_type: str
    body: bytes
    received_at: datetime


# Writes the domain rows of one workspace's deliveries, in order, in the caller's transaction;
# for each, False means "not a type this service acts on" (stored as `ignored`). Raising undoes
# them all (the careful pass then gives it one delivery at a time, to find the failing one).
Normaliser = Callable[[Connection, Sequence[Delivery]], Awaitable[list[bool]]]
# Vendor look-ups for deliveries, run with no transaction open; the reason each delivery that
# cannot be normalised failed (kept `failed`, to be replayed), by its id.
Preparer = Callable[[Pool, Sequence[Delivery]], Awaitable[Mapping[UUID, str]]]


class Intake:
    """The group-committing writer and the normaliser of one service's webhook deliveries."""

    def __init__(self, normalise: Normaliser, prepare: Preparer | None = None) -> None:
        self.normalise = normalise
        self._prepare = prepare
        self._stored = asyncio.Event()
        self._settled: dict[UUID, asyncio.Future[Status]] = {}
        self._bodies = BodyCache(BODY_CACHE_BYTES)
        self._writer = GroupCommit(self._bodies, self._stored)

    def writer(self, pool: Pool, settings: Settings) -> Coroutine[Any, Any, None]:
        """The writer, to run for the lifetime of every process that serves deliveries.

        In a process without background work, each commit also wakes the normalisers of the
        service's other processes.
        """
        self._writer.running = True
        return self._writer.write_forever(pool, wake_others=not settings.background)

    def background(self, pool: Pool, settings: Settings) -> Sequence[NamedLoop]:
        """The normaliser, to run for the lifetime of a process with background work."""
        return [("webhook-normaliser", self._normalise_forever(pool, settings))]

    def loops(self, pool: Pool, settings: Settings) -> Sequence[NamedLoop]:
        """The writer, and the normaliser where `settings` give this process background work."""
        loops = [("webhook-writer", self.writer(pool, settings))]
        return [*loops, *self.background(pool, settings)] if settings.background else loops

    async def prepare(self, pool: Pool, deliveries: Sequence[Delivery]) -> Mapping[UUID, str]:
        """The normaliser's vendor look-ups for `deliveries` (no transaction may be open)."""
        return {} if self._prepare is None else await self._prepare(pool, deliveries)

    async def store(self, delivery: NewDelivery) -> bool:
        """Store a delivery durably; False when its (source, key) was stored before."""
        return await self._writer.store(delivery)

    async def settled(self, pool: Pool, delivery_id: UUID, *, within: float) -> Status:
        """The delivery's status once normalised, or `received` if that takes over `within` s."""
        waiter = self._settled.get(delivery_id)
        if waiter is None:
            waiter = self._settled[delivery_id] = asyncio.get_running_loop().create_future()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        try:
            while True:
                # Another replica may normalise it: look at the row now and then.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(0.25, max(0.0, deadline - loop.time()))):
                        return await asyncio.shield(waiter)
                status: Status | None = await pool.fetchval(_STATUS, delivery_id)
                if status is None or status != "received" or loop.time() >= deadline:
                    return status or "received"
        finally:
            self._settled.pop(delivery_id, None)

    async def _normalise_forever(self, pool: Pool, settings: Settings) -> None:
        # Woken by this process's writer directly, and by NOTIFY from the writers of processes
        # without background work; polling finds what a stopped process left.
        async with notified(pool, await _wake_channel(pool, settings), self._stored):
            while True:
                self._stored.clear()
                try:
                    while await self.normalise_batch(pool, settings) == NORMALISE_BATCH:
                        pass
                except Exception:
                    log.exception("normalising stored deliveries failed; trying again")
                await woken_or_timed_out(self._stored, settings.webhook_normalise_poll_seconds)

    async def normalise_batch(self, pool: Pool, settings: Settings) -> int:
        """Normalise the oldest stored deliveries in one transaction; how many there were."""
        rows = await pool.fetch(_NEXT, NORMALISE_BATCH)
        if not rows:
            return 0
        deliveries = await self._with_bodies(pool, rows)
        failed = await self.prepare(pool, deliveries)
        try:
            # Fast: each workspace's deliveries at once. A mapper failing undoes the transaction
            # and sends the batch to the careful pass, a savepoint per delivery, so that only the
            # failing ones are kept `failed`.
            await self._normalise_claimed(pool, settings, deliveries, failed, careful=False)
        except Exception:  # noqa: BLE001 - the careful pass records which one failed
            await self._normalise_claimed(pool, settings, deliveries, failed, careful=True)
        return len(rows)

    async def _normalise_claimed(
        self,
        pool: Pool,
        settings: Settings,
        deliveries: list[Delivery],
        failed: Mapping[UUID, str],
        *,
        careful: bool,
    ) -> None:
        async with pool.acquire() as conn, conn.transaction():
            # Those still `received` once the lock is held; another replica may have taken some.
            claimed = {r["id"] for r in await conn.fetch(_CLAIM, [d.id for d in deliveries])}
            batch = [d for d in deliveries if d.id in claimed]
            if not batch:
                return
            events: list[Event] = []
            outcomes = await self._apply(conn, batch, settings, failed, events, careful=careful)
            await conn.execute(_UNSCOPE)
            # The batch's events in one write, as the owner: they span workspaces.
            await outbox.add(conn, *events)
            await conn.execute(
                _SETTLE,
                [d.id for d in batch],
                [status for status, _ in outcomes],
                [error for _, error in outcomes],
            )
        for delivery, (status, _) in zip(batch, outcomes, strict=True):
            self._bodies.take(delivery.id)  # committed: the body is not needed again here
            waiter = self._settled.get(delivery.id)
            if waiter is not None and not waiter.done():
                waiter.set_result(status)

    async def _with_bodies(self, pool: Pool, rows: list[Any]) -> list[Delivery]:
        """The rows as deliveries: bodies this process stored from memory, the rest read."""
        kept = {row["id"]: self._bodies.get(row["id"]) for row in rows}
        bodies = {key: body for key, body in kept.items() if body is not None}
        missing = [key for key in kept if key not in bodies]
        if missing:
            stored = await pool.fetch(_BODIES, missing)
            bodies.update((r["id"], body_codec.decode(r["body_codec"], r["body"])) for r in stored)
        return [Delivery(**dict(row.items()), body=bodies[row["id"]]) for row in rows]

    async def _apply(
        self,
        conn: Connection,
        deliveries: list[Delivery],
        settings: Settings,
        failed: Mapping[UUID, str],
        events: list[Event],
        *,
        careful: bool,
    ) -> list[tuple[Outcome, str | None]]:
        """Normalise the deliveries in order; the events they emit are added to `events`."""
        outcomes: dict[UUID, tuple[Outcome, str | None]] = {
            d.id: ("failed", failed[d.id]) for d in deliveries if d.id in failed
        }
        by_workspace: dict[str, list[Delivery]] = {}
        for delivery in deliveries:
            if delivery.id not in failed:
                by_workspace.setdefault(delivery.workspace, []).append(delivery)
        for workspace, share in by_workspace.items():  # workspaces are independent
            await conn.execute(_SCOPE, workspace, settings.app_role)
            groups = [[d] for d in share] if careful else [share]
            for group in groups:
                outcomes |= await self._normalise_group(conn, group, events, careful=careful)
        return [outcomes[d.id] for d in deliveries]

    async def _normalise_group(
        self, conn: Connection, group: list[Delivery], events: list[Event], *, careful: bool
    ) -> dict[UUID, tuple[Outcome, str | None]]:
        """One call of the normaliser; in the careful pass in a savepoint, its failure kept."""
        try:
            with outbox.deferred() as emitted:
                if careful:
                    async with conn.transaction():
                        named = await self.normalise(conn, group)
                else:
                    named = await self.normalise(conn, group)
        except Exception as exc:
            if not careful:
                raise
            delivery = group[0]
            log.warning("delivery %s of %s failed to map: %r", delivery.id, delivery.provider, exc)
            return {delivery.id: ("failed", f"{type(exc).__name__}: {exc}")}
        events += emitted
        return {
            d.id: ("processed" if n else "ignored", None) for d, n in zip(group, named, strict=True)
        }


async def _wake_channel(pool: Pool, settings: Settings) -> str:
    """The channel of the schema that `pool` sees (a service's own), once the database answers."""
    while True:
        try:
            schema: str = await pool.fetchval("SELECT current_schema()")
        except Exception:  # starting while the database is away: wait for it
            log.warning("webhook normaliser: the database is away; trying again", exc_info=True)
            await asyncio.sleep(settings.webhook_normalise_poll_seconds)
        else:
            return WAKE_CHANNEL_PREFIX + schema
