"""The ledger of a chaos run: accepted = stored = published = applied + dead-lettered.

Counted per event type insights consumes, straight from PostgreSQL and the stream: accepted is
what the burst was answered 2xx for; stored the domain rows behind it (webhook deliveries,
feedback items) or, for the events the setup wrote, the outbox rows; written and sent the
producers' outbox rows and those marked sent; streamed the stream's messages; applied the
inbox claims of insights' consumer; dead its dead letters.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import astuple, dataclass, fields

import asyncpg
import nats
from chaos.stack import STREAM, WORKSPACE, Stack
from chaos.workload import FEEDBACK, TRACKER
from nats.aio.client import Client as NatsClient
from nats.js.errors import NotFoundError

from insights.engine import CONSUMER
from insights.projection.facts import AGGREGATES

BALANCE_SECONDS = 60.0

_STORED = {
    TRACKER: """
        SELECT count(*) FROM roadmap.webhook_delivery
        WHERE workspace = $1 AND provider = 'github' AND status = 'processed'
    """,
    FEEDBACK: """
        SELECT count(*) FROM feedback.feedback_item
        WHERE workspace = $1 AND external_id LIKE 'chaos-%'
    """,
}
_OUTBOX = """
SELECT type, count(*) AS written, count(sent_at) AS sent FROM (
    SELECT type, sent_at FROM feedback.outbox WHERE workspace = $1
    UNION ALL
    SELECT type, sent_at FROM roadmap.outbox WHERE workspace = $1
) AS produced GROUP BY type
"""
_APPLIED = """
SELECT type, count(*) FROM insights.inbox WHERE consumer = $1 AND workspace = $2 GROUP BY type
"""
_DEAD = """
SELECT type, count(*) FROM insights.dead_letter
WHERE consumer = $1 AND workspace = $2 AND status = 'dead' GROUP BY type
"""


@dataclass(frozen=True)
class Line:
    """One event type's counts at each step; accepted is None for what the setup wrote."""

    event_type: str
    accepted: int | None
    stored: int
    written: int
    sent: int
    streamed: int
    applied: int
    dead: int

    def balanced(self) -> bool:
        """Every step holds exactly what was accepted (or stored), and insights saw all of it."""
        counts = [self.stored, self.written, self.sent, self.streamed, self.applied + self.dead]
        if self.accepted is not None:
            counts.append(self.accepted)
        return len(set(counts)) == 1


def table(lines: list[Line]) -> str:
    """The ledger as a readable table, for failure messages and the run's report."""
    names = [f.name for f in fields(Line)]
    rows = [names, *[[str(v) for v in astuple(line)] for line in lines]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(names))]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in rows
    )


async def read(
    conn: asyncpg.Connection[asyncpg.Record], nc: NatsClient, accepted: Mapping[str, set[str]]
) -> list[Line]:
    """The ledger now, one line per event type that any producer wrote."""
    outbox = {r["type"]: (r["written"], r["sent"]) for r in await conn.fetch(_OUTBOX, WORKSPACE)}
    applied = await _counts(conn, _APPLIED)
    dead = await _counts(conn, _DEAD)
    streamed = await _streamed(nc)
    lines = []
    for event_type in sorted(set(outbox) & set(AGGREGATES)):
        written, sent = outbox[event_type]
        stored = (
            await conn.fetchval(_STORED[event_type], WORKSPACE)
            if event_type in _STORED
            else written
        )
        keys = accepted.get(event_type)
        lines.append(
            Line(
                event_type,
                None if keys is None else len(keys),
                stored,
                written,
                sent,
                streamed.get(event_type, 0),
                applied.get(event_type, 0),
                dead.get(event_type, 0),
            )
        )
    return lines


async def _counts(conn: asyncpg.Connection[asyncpg.Record], query: str) -> dict[str, int]:
    return {r["type"]: r["count"] for r in await conn.fetch(query, CONSUMER, WORKSPACE)}


async def _streamed(nc: NatsClient) -> dict[str, int]:
    """Messages per event type in the stream (none while it is deleted)."""
    try:
        # A short timeout: while a cluster elects a stream leader, ask again soon instead.
        js = nc.jetstream(timeout=1.0)
        info = await js.stream_info(STREAM, subjects_filter=f"prodops.*.*.{WORKSPACE}")
    except NotFoundError:
        return {}
    # `prodops.<aggregate>.<verb>.<workspace>` holds `prodops.<aggregate>.<verb>.v1` events.
    return {
        subject.rsplit(".", 1)[0] + ".v1": count
        for subject, count in (info.state.subjects or {}).items()
    }


async def balanced(
    stack: Stack, accepted: Mapping[str, set[str]], within: float = BALANCE_SECONDS
) -> list[Line]:
    """Wait until the ledger balances; fail with the ledger and the service logs if it does not."""
    conn = await asyncpg.connect(stack.database_url)
    nc = await nats.connect(stack.nats_url)
    try:
        deadline = time.monotonic() + within
        lines: list[Line] = []
        while True:
            # A cluster electing a new stream leader answers nothing for a moment.
            with contextlib.suppress(nats.errors.TimeoutError):
                lines = await read(conn, nc, accepted)
                if lines and all(line.balanced() for line in lines):
                    return lines
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {name}:\n{stack.tail(name)}" for name in stack.processes)
                raise AssertionError(
                    f"the ledger did not balance within {within:.0f}s:\n{table(lines)}\n{logs}"
                )
            await asyncio.sleep(0.2)
    finally:
        await nc.close()
        await conn.close()
