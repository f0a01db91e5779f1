"""`prodops insights rebuild`: replay the stream into empty facts and signals.

All of it is one transaction: the inbox locked, every derived table emptied and the live
consumer's claims forgotten; then the stream is read in chunks, each chunk's events claimed in
the live consumer's inbox (so that it does not apply them a second time) and applied by the live
consumer's own projection path (`insights.projection`). An event that cannot be applied is
reported and the rest goes on: a chunk that fails runs again one event at a time, each in a
savepoint, as the live consumer's careful pass does. Last, each workspace's contributions and
signals are computed once, silently (no events, webhooks or history), by the live engine's
`refresh_all`. The live consumer, the tick and the signal reads wait for the commit, and then see
the rebuilt state whole. Signal history and subscriptions are kept.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import nats
import nats.js
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy

from insights import engine
from insights.engine import CONSUMER
from insights.projection import apply_events
from insights.projection import rebuild_sql as sql
from insights.projection.facts import AGGREGATES
from prodops.contract import Event, utcnow
from prodops.messaging import inbox
from prodops.runtime.db import Connection, create_pool
from prodops.runtime.settings import Settings

__all__ = ["Rebuilt", "rebuild"]

log = logging.getLogger(__name__)

CHUNK = 2000  # events applied at once: the rebuild holds no more than this in memory
STALL_SECONDS = 30.0  # the stream delivered nothing for this long: give up
_V1_TOKENS = 9  # $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ts>.<pending>


@dataclass
class Rebuilt:
    """What a rebuild read and applied."""

    messages: int = 0
    applied: int = 0
    skipped: int = 0
    failed: int = 0


@dataclass
class Replay:
    """The stream applied so far: the report, and the scopes each workspace's events touched."""

    report: Rebuilt = field(default_factory=Rebuilt)
    scopes: dict[str, set[str]] = field(default_factory=dict)

    async def add(self, conn: Connection, bodies: Sequence[bytes]) -> None:
        """Apply a chunk of the stream's messages, counting each applied, skipped or failed."""
        events = [e for e in map(self._decoded, bodies) if e is not None]
        try:
            async with conn.transaction():
                await self._apply(conn, events)
        except Exception:  # noqa: BLE001 - one at a time below tells which event and why
            log.info("rebuild: a chunk failed; applying it again one event at a time")
            for event in events:
                try:
                    async with conn.transaction():
                        await self._apply(conn, [event])
                except Exception:
                    # The live consumer would dead-letter it; the rebuild reports it and goes on.
                    log.exception("rebuild: event %s (%s) was not applied", event.id, event.type)
                    self.report.failed += 1

    def _decoded(self, body: bytes) -> Event | None:
        self.report.messages += 1
        try:
            event = Event.from_bytes(body)
        except ValueError:
            self.report.failed += 1  # as the live consumer's decode failure
            return None
        if event.type not in AGGREGATES:
            self.report.skipped += 1  # not ours
            return None
        return event

    async def _apply(self, conn: Connection, events: Sequence[Event]) -> None:
        fresh = await inbox.claim(conn, CONSUMER, events)
        todo = []
        for event in events:
            if event.id in fresh:
                fresh.discard(event.id)  # a second copy in the chunk is a duplicate too
                todo.append(event)
        touches = await apply_events(conn, todo)
        # Counted once the chunk (or the event) is in: a chunk that failed counts again.
        self.report.applied += len(todo)
        self.report.skipped += len(events) - len(todo)
        for event in todo:
            self.scopes.setdefault(event.workspace, set())
        for ws, touch in touches.items():
            self.scopes.setdefault(ws, set()).update(touch.scopes)

    async def refresh(self, conn: Connection) -> None:
        """Each workspace's contributions and signals, once, silently."""
        # Statistics and clean indexes for the signals' plans over tables just filled.
        await conn.execute(sql.CLEAN_GIN)
        await conn.execute(sql.ANALYZE)
        now = utcnow()
        for ws, scopes in sorted(self.scopes.items()):
            await engine.refresh_all(conn, ws, emit=False, now=now, scopes=scopes)


async def rebuild(settings: Settings) -> Rebuilt:
    """Replay every event in the stream, up to its last message when the rebuild began."""
    pool = await create_pool(settings, schema="insights", max_size=1)
    nc = await nats.connect(settings.nats_url)
    replay = Replay()
    try:
        js = nc.jetstream()
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(sql.LOCK_INBOX)
            await conn.execute(sql.TRUNCATE)
            await conn.execute(sql.FORGET_CLAIMS, CONSUMER)
            # Read after the lock: whatever the live consumer applies from here on waits for us.
            last = (await js.stream_info(settings.stream_name)).state.last_seq
            if last:
                async for chunk in read_stream(js, settings, last):
                    await replay.add(conn, chunk)
            await replay.refresh(conn)
    finally:
        await nc.close()
        await pool.close()
    return replay.report


async def read_stream(
    js: nats.js.JetStreamContext, settings: Settings, last: int
) -> AsyncIterator[list[bytes]]:
    """The stream's messages up to sequence `last`, in chunks of up to `CHUNK`."""
    # Bounded: while a chunk is applied the callback waits, and so, by flow control, does the
    # server. A callback rather than next_msg(), which starts a task and a timer per message.
    queue: asyncio.Queue[Msg] = asyncio.Queue(maxsize=CHUNK)
    sub = await js.subscribe(
        f"{settings.subject_prefix}.>",
        stream=settings.stream_name,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
        cb=queue.put,
    )
    try:
        chunk: list[bytes] = []
        read = 0
        while True:
            msg = queue.get_nowait() if not queue.empty() else await _next(queue, read, last)
            read += 1
            chunk.append(msg.data)
            done = stream_sequence(msg) >= last
            if done or len(chunk) >= CHUNK:
                yield chunk
                chunk = []
            if done:
                return
    finally:
        await sub.unsubscribe()


async def _next(queue: asyncio.Queue[Msg], read: int, last: int) -> Msg:
    try:
        return await asyncio.wait_for(queue.get(), STALL_SECONDS)
    except TimeoutError:
        raise TimeoutError(f"the stream stalled after {read} of {last} messages") from None


def stream_sequence(msg: Msg) -> int:
    """The message's stream sequence, read off its reply subject without the rest of metadata."""
    # msg.metadata parses all of it (a timestamp too): a tenth of the time of a raw read.
    tokens = msg.reply.split(".")
    if len(tokens) == _V1_TOKENS and tokens[0] == "$JS" and tokens[1] == "ACK":
        return int(tokens[5])
    return msg.metadata.sequence.stream
