"""Loops woken by PostgreSQL NOTIFY, polling as a fallback (the outbox relay, the dispatcher)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from asyncpg.pool import PoolConnectionProxy

from prodops.runtime.db import Pool

log = logging.getLogger(__name__)


@asynccontextmanager
async def notified(pool: Pool, channel: str, wake: asyncio.Event) -> AsyncIterator[None]:
    """LISTEN on `channel` for the block, setting `wake` on every NOTIFY (or only poll)."""

    def on_notify(*_: object) -> None:
        wake.set()

    listener = await _listen(pool, channel, on_notify)
    try:
        yield
    finally:
        if listener is not None:
            with contextlib.suppress(Exception):
                await listener.remove_listener(channel, on_notify)
                await pool.release(listener)


async def _listen(pool: Pool, channel: str, on_notify: Any) -> PoolConnectionProxy[Any] | None:
    try:
        conn = await pool.acquire()
    except Exception:
        log.warning("LISTEN %s failed; polling only", channel, exc_info=True)
        return None
    try:
        await conn.add_listener(channel, on_notify)
    except BaseException as exc:
        # Cancelled or failed between acquire and LISTEN: give the connection back, or closing
        # the pool would wait for it forever.
        await pool.release(conn)
        if not isinstance(exc, Exception):
            raise
        log.warning("LISTEN %s failed; polling only", channel, exc_info=True)
        return None
    return conn


async def woken_or_timed_out(wake: asyncio.Event, seconds: float) -> None:
    """Wait for `wake` at most `seconds`."""
    # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancel that lands
    # together with a NOTIFY wake-up, and the loop would never stop.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await wake.wait()
