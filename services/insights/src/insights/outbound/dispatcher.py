"""Outbound webhooks (design.md §6): enqueue signal events, sign and send them, retry, disable.

A dispatch (one event for one subscription) commits with the signal that caused it (`enqueue`
runs in the caller's transaction). Dispatchers on every replica claim due dispatches with SKIP
LOCKED and a lease, send them outside any transaction, then record the attempt: 2xx delivers,
anything else is retried with capped, jittered exponential back-off until the retry horizon, and
a subscription that keeps failing is disabled until someone enables it again. The /v1 API calls a
dispatch a *delivery* (`/v1/subscriptions/{id}/deliveries`), a name it keeps for its clients.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Literal, get_args
from uuid import UUID

import asyncpg

from insights.outbound import sql
from insights.outbound.http import (
    AttemptResult,
    http_client,
    retry_delay,
    send_webhook,
)
from prodops.contract import Event, new_id
from prodops.messaging.wakeup import notified, woken_or_timed_out
from prodops.runtime.db import Connection, Pool
from prodops.runtime.settings import Settings
from prodops.webhooks.sources import SecretBox

log = logging.getLogger(__name__)

# The event types a subscription can ask for; an empty list means all of them.
EventType = Literal[
    "prodops.signal.launch_readiness.changed.v1", "prodops.signal.alignment.changed.v1"
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
PING_TYPE = "prodops.webhook.ping.v1"
# What the migration's trigger notifies: 'prodops_outbound_' || current_schema().
CHANNEL = "prodops_outbound_insights"
_PURGE_EVERY_SECONDS = 3600.0


async def enqueue(conn: Connection, event: Event) -> int:
    """Queue `event` for every enabled subscription of its workspace that wants its type."""
    if event.type not in EVENT_TYPES:
        return 0
    status: str = await conn.execute(
        sql.ENQUEUE, event.workspace, event.id, event.type, event.to_bytes()
    )
    return int(status.rsplit(maxsplit=1)[-1])


async def record_attempt(
    conn: Connection, *, dispatch_id: UUID, workspace: str, result: AttemptResult
) -> None:
    """Store one attempt of a dispatch."""
    await conn.execute(
        sql.INSERT_ATTEMPT,
        new_id(),
        dispatch_id,
        workspace,
        result.attempted_at,
        result.status_code,
        result.error,
        result.duration_ms,
    )


class OutboundDispatcher:
    """Sends due dispatches of every workspace; any number of replicas can run one."""

    def __init__(self, pool: Pool, settings: Settings, *, rng: random.Random | None = None) -> None:
        self._pool, self._settings = pool, settings
        self._box = SecretBox(settings)
        self._client = http_client(settings)
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._wake = asyncio.Event()

    async def dispatch_batch(self) -> int:
        """Claim, send and record one batch of due dispatches; returns how many."""
        lease = new_id()
        # The lease outlives the whole send (timeout included), so no other dispatcher sends
        # the same dispatch while this one still might.
        lease_seconds = self._settings.outbound_timeout_seconds * 2 + 5
        rows = await self._pool.fetch(
            sql.CLAIM, self._settings.outbound_batch_size, lease, lease_seconds
        )
        results = await asyncio.gather(*(self._send(row) for row in rows))
        for row, result in zip(rows, results, strict=True):
            await self._record(row, lease, result)
        return len(rows)

    async def drain(self) -> int:
        """Dispatch until no dispatch is due."""
        total = 0
        while sent := await self.dispatch_batch():
            total += sent
            if sent < self._settings.outbound_batch_size:
                break
        return total

    async def _send(self, row: asyncpg.Record) -> AttemptResult:
        return await send_webhook(
            self._client,
            self._settings,
            url=row["url"],
            secret=self._box.open(row["secret"]),
            message_id=row["event_id"],
            body=row["payload"],
        )

    async def _record(self, row: asyncpg.Record, lease: UUID, result: AttemptResult) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            if result.ok:
                mine = await conn.fetchval(sql.RECORD_SUCCESS, row["id"], lease)
                if mine is not None:
                    await conn.execute(sql.SUBSCRIPTION_SUCCEEDED, mine)
            else:
                mine = await self._record_failure(conn, row, lease, result)
            if mine is None:
                log.warning("dispatch %s is gone or lost its lease; not recorded", row["id"])
                return
            await record_attempt(
                conn, dispatch_id=row["id"], workspace=row["workspace"], result=result
            )

    async def _record_failure(
        self, conn: Connection, row: asyncpg.Record, lease: UUID, result: AttemptResult
    ) -> UUID | None:
        settings = self._settings
        delay = retry_delay(
            row["attempts"] + 1,
            base=settings.outbound_retry_base_seconds,
            cap=settings.outbound_retry_max_delay_seconds,
            rng=self._rng,
        )
        horizon = settings.outbound_retry_horizon_hours
        settled = await conn.fetchrow(
            sql.RECORD_FAILURE, row["id"], lease, result.error, delay, horizon
        )
        if settled is None:
            return None
        health = await conn.fetchrow(
            sql.SUBSCRIPTION_FAILED,
            row["subscription_id"],
            settings.outbound_disable_after_failures,
            settings.outbound_disable_after_hours,
        )
        if health is not None and health["should_disable"]:
            reason = (
                f"{health['consecutive_failures']} failed attempts in a row and no successful "
                f"delivery since {health['failing_since']:%Y-%m-%d %H:%M:%S %Z}; "
                f"last error: {result.error}"
            )
            await conn.execute(sql.DISABLE_SUBSCRIPTION, row["subscription_id"], reason)
            log.warning("subscription %s disabled: %s", row["subscription_id"], reason)
        subscription: UUID = settled["subscription_id"]
        return subscription

    async def purge(self) -> int:
        """Delete delivered and failed dispatches older than the retention."""
        status: str = await self._pool.execute(
            sql.PURGE_SETTLED, self._settings.outbound_retention_hours
        )
        return int(status.rsplit(maxsplit=1)[-1])

    async def aclose(self) -> None:
        """Close the HTTP client (run() does it on the way out)."""
        await self._client.aclose()

    async def run(self) -> None:
        """Dispatch forever: woken by NOTIFY when dispatches are queued, polling as a fallback."""
        failures, purged_at = 0, time.monotonic()
        try:
            async with notified(self._pool, CHANNEL, self._wake):
                while True:
                    self._wake.clear()
                    try:
                        await self.drain()
                        if time.monotonic() - purged_at > _PURGE_EVERY_SECONDS:
                            await self.purge()
                            purged_at = time.monotonic()
                        failures = 0
                    except Exception:
                        failures += 1
                        # Back off while the database stays away; the dispatches wait safely.
                        poll = self._settings.outbound_poll_interval_seconds
                        log.exception("outbound dispatch failed (%d in a row)", failures)
                        await asyncio.sleep(min(30.0, poll * 2**failures))
                    await woken_or_timed_out(
                        self._wake, self._settings.outbound_poll_interval_seconds
                    )
        finally:
            await self._client.aclose()
