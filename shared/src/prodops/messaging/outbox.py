"""The transactional outbox: events commit with the domain write; a relay publishes them.

A crash anywhere re-publishes, never loses: rows are marked sent only after JetStream acknowledged
them, and the `Nats-Msg-Id` header (the event id) lets the stream drop the duplicates.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta

import asyncpg
import tenacity
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import NoStreamResponseError
from opentelemetry.trace import SpanKind

from prodops.contract import Event
from prodops.messaging.wakeup import notified, woken_or_timed_out
from prodops.runtime.db import Connection, Pool
from prodops.runtime.settings import Settings
from prodops.runtime.telemetry import (
    EVENTS_PUBLISHED,
    OUTBOX_LAG,
    current_traceparent,
    span_from_traceparent,
)

log = logging.getLogger(__name__)

_INSERT = """
INSERT INTO outbox (id, workspace, subject, type, payload, traceparent)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::text[])
"""

_CLAIM = """
SELECT position, id, subject, payload, traceparent FROM outbox
WHERE sent_at IS NULL ORDER BY position LIMIT $1
FOR UPDATE SKIP LOCKED
"""

# The mark's commit does not wait for its WAL to reach disk (the relay's next batch waited for
# that flush): lost in a crash, the rows are only published again, and the stream's Nats-Msg-Id
# window and every consumer's inbox drop the copies.
_MARK_SENT = """
WITH lazily AS (SELECT set_config('synchronous_commit', 'off', true))
UPDATE outbox SET sent_at = now() FROM lazily WHERE position = ANY($1::bigint[])
"""

_SINCE = """
SELECT position, id, subject, payload, traceparent FROM outbox
WHERE created_at >= $1 AND position > $2 ORDER BY position LIMIT $3
"""

_PURGE = "DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < now() - $1::interval"
_UNSENT = "SELECT count(*) FROM outbox WHERE sent_at IS NULL"


# Inside `deferred()`, `add` collects instead of writing: the caller writes them all at once.
_DEFERRED: ContextVar[list[Event] | None] = ContextVar("outbox_deferred", default=None)


@contextmanager
def deferred() -> Iterator[list[Event]]:
    """Collect the events `add` is given in the block, in order, for one write by the caller."""
    events: list[Event] = []
    token = _DEFERRED.set(events)
    try:
        yield events
    finally:
        _DEFERRED.reset(token)


async def add(conn: Connection, *events: Event) -> None:
    """Write events in the caller's transaction; they are published once it commits."""
    collecting = _DEFERRED.get()
    if collecting is not None:
        collecting.extend(events)
        return
    if not events:
        return
    # The subject is stored without the deployment's prefix, which the relay adds.
    await conn.execute(
        _INSERT,
        [e.id for e in events],
        [e.workspace for e in events],
        [e.subject_tokens() for e in events],
        [e.type for e in events],
        [e.to_bytes() for e in events],
        [e.traceparent for e in events],
    )


async def publish_rows(
    js: JetStreamContext,
    rows: Sequence[asyncpg.Record],
    *,
    subject_prefix: str,
    ack_timeout: float = 10.0,
) -> None:
    """Publish outbox rows and wait until JetStream has acknowledged every one."""
    pending: list[asyncio.Future[PubAck]] = []
    for record in rows:
        subject = f"{subject_prefix}.{record['subject']}"
        with span_from_traceparent(
            f"publish {subject}",
            record["traceparent"],
            kind=SpanKind.PRODUCER,
            attributes={"messaging.system": "nats", "messaging.message.id": str(record["id"])},
        ):
            headers = {"Nats-Msg-Id": str(record["id"])}
            traceparent = current_traceparent()
            if traceparent:
                headers["traceparent"] = traceparent
            pending.append(await js.publish_async(subject, record["payload"], headers=headers))
    try:
        # nats-py's ack futures never time out on their own: a broker that went away mid-batch
        # would hold the batch (and its row locks) forever.
        async with asyncio.timeout(ack_timeout):
            await asyncio.gather(*pending)
    finally:
        for future in pending:
            future.cancel()


class OutboxRelay:
    """Publishes unsent outbox rows of one service schema in batches."""

    def __init__(self, *, pool: Pool, js: JetStreamContext, settings: Settings, service: str):
        self._pool, self._js, self._settings, self._service = pool, js, settings, service
        self._wake = asyncio.Event()
        self._lag_reported_at = -1.0

    async def publish_batch(self) -> int:
        """Publish one batch; returns how many rows it sent (0 when none were waiting)."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_CLAIM, self._settings.outbox_batch_size)
            if not rows:
                return 0
            await publish_rows(
                self._js,
                rows,
                subject_prefix=self._settings.subject_prefix,
                ack_timeout=self._settings.outbox_publish_timeout_seconds,
            )
            await self.mark_sent(conn, [r["position"] for r in rows])
        EVENTS_PUBLISHED.labels(self._service).inc(len(rows))
        return len(rows)

    async def mark_sent(self, conn: Connection, positions: list[int]) -> None:
        """Record rows as published (a separate step so a crash between the two can be shown)."""
        await conn.execute(_MARK_SENT, positions)

    async def drain(self) -> int:
        """Publish until nothing is waiting."""
        total = 0
        while sent := await self.publish_batch():
            total += sent
        return total

    async def run(self) -> None:
        """Publish forever: woken by NOTIFY on commit, polling as a fallback."""
        failures = 0
        async with notified(self._pool, f"prodops_outbox_{self._service}", self._wake):
            while True:
                self._wake.clear()
                try:
                    await self.drain()
                    await self._report_lag()
                    failures = 0
                except Exception:
                    failures += 1
                    # Back off while the broker or database stays away; the rows wait safely.
                    delay = min(10.0, self._settings.outbox_poll_interval_seconds * 2**failures)
                    log.exception(
                        "outbox relay batch failed (%d in a row); retry in %.1fs", failures, delay
                    )
                    await asyncio.sleep(delay)
                await woken_or_timed_out(self._wake, self._settings.outbox_poll_interval_seconds)

    async def _report_lag(self) -> None:
        # A gauge scraped every few seconds: counting after every wake-up would cost a round trip
        # per committed write under load.
        now = time.monotonic()
        if now - self._lag_reported_at >= 1.0:
            self._lag_reported_at = now
            OUTBOX_LAG.labels(self._service).set(await self._pool.fetchval(_UNSENT))

    async def purge(self) -> int:
        """Delete rows sent longer ago than the retention period."""
        retention = timedelta(hours=self._settings.outbox_retention_hours)
        status: str = await self._pool.execute(_PURGE, retention)
        return int(status.rsplit(maxsplit=1)[-1])


# A stream that was just (re)created can briefly answer "no responders": wait and try again.
_retry_publish = tenacity.retry(
    retry=tenacity.retry_if_exception_type(NoStreamResponseError),
    wait=tenacity.wait_exponential(multiplier=0.1, max=2),
    stop=tenacity.stop_after_delay(30),
    reraise=True,
)


async def republish(
    pool: Pool, js: JetStreamContext, *, since: datetime, subject_prefix: str, batch: int = 1000
) -> int:
    """Publish again every event written since `since` (sent or not): refills a lost stream."""
    total, after = 0, 0
    while True:
        rows = await pool.fetch(_SINCE, since, after, batch)
        if not rows:
            return total
        await _retry_publish(publish_rows)(js, rows, subject_prefix=subject_prefix)
        total += len(rows)
        after = rows[-1]["position"]
