"""The periodic tick: what moves with time alone (schedule slack, windows, due dates)."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from uuid import UUID

from insights.engine import lock_workspaces, refresh
from insights.projection.facts import Touch
from prodops.contract import utcnow
from prodops.runtime.db import Connection, Pool
from prodops.runtime.settings import Settings

log = logging.getLogger(__name__)

# One replica ticks at a time; the others find the lock taken and skip this round.
_TRY_TICK_LOCK = "SELECT pg_try_advisory_xact_lock(hashtextextended('prodops.insights.tick', 0))"
_DUE_WORKSPACES = """
SELECT workspace FROM launch_fact WHERE status IN ('planned', 'in_progress')
UNION SELECT workspace FROM contributor_expiry WHERE expires_at <= $1
"""
_EXPIRED = """
SELECT contributor FROM contributor_expiry WHERE workspace = $1 AND expires_at <= $2
"""
_ACTIVE_LAUNCHES = """
SELECT key FROM launch_fact WHERE workspace = $1 AND status IN ('planned', 'in_progress')
"""


async def tick(pool: Pool, *, now: datetime | None = None) -> int:
    """Refresh every workspace with live launches or expired feedback; returns how many."""
    moment = now or utcnow()
    async with pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval(_TRY_TICK_LOCK):
            return 0
        workspaces = [r["workspace"] for r in await conn.fetch(_DUE_WORKSPACES, moment)]
    for ws in sorted(workspaces):
        async with pool.acquire() as conn, conn.transaction():
            await tick_workspace(conn, ws, moment)
    return len(workspaces)


async def tick_workspace(conn: Connection, ws: str, now: datetime) -> None:
    """Re-evaluate one workspace's expired feedback groups and its live launches."""
    await lock_workspaces(conn, [ws])
    expired = [r["contributor"] for r in await conn.fetch(_EXPIRED, ws, now)]
    touch = Touch(
        groups={_group(c) for c in expired if c.startswith("g:")},
        launches={r["key"] for r in await conn.fetch(_ACTIVE_LAUNCHES, ws)},
    )
    await refresh(conn, ws, touch, emit=True, now=now)


def _group(contributor: str) -> UUID:
    return UUID(contributor.removeprefix("g:"))


async def tick_forever(pool: Pool, settings: Settings) -> None:
    """Tick every `insights_tick_seconds` until cancelled."""
    while True:
        await asyncio.sleep(settings.insights_tick_seconds)
        try:
            await tick(pool)
        except Exception:
            log.exception("insights tick failed; trying again next round")
