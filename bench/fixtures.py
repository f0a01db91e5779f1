"""What the benchmarks set up through the real APIs, and how they wait for the pipeline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import nats
from nats.js import JetStreamContext

from bench.stack import WORKSPACE, Stack

INSIGHTS_CONSUMER = "insights-projections"


@asynccontextmanager
async def jetstream(nats_url: str) -> AsyncIterator[JetStreamContext]:
    """A JetStream context on a connection of its own, closed on the way out."""
    nc = await nats.connect(nats_url)
    try:
        yield nc.jetstream()
    finally:
        await nc.close()


async def register_github(stack: Stack) -> tuple[str, str]:
    """A GitHub source on roadmap; its webhook path and secret."""
    async with httpx.AsyncClient(base_url=stack.url("roadmap")) as client:
        answer = await client.post(
            "/v1/sources",
            headers={"Authorization": f"Bearer {stack.token('admin')}"},
            json={"provider": "github", "name": "Bench GitHub"},
        )
    answer.raise_for_status()
    source: dict[str, Any] = answer.json()
    return source["webhook_url"], source["secret"]


async def create_launches(stack: Stack, keys: list[str]) -> None:
    """Create launches on roadmap and wait until insights shows a readiness for each."""
    headers = {"Authorization": f"Bearer {stack.token('roadmap:write')}"}
    async with httpx.AsyncClient(base_url=stack.url("roadmap")) as client:
        for key in keys:
            answer = await client.post(
                "/v1/launches", headers=headers, json={"key": key, "name": f"Launch {key}"}
            )
            answer.raise_for_status()
    await until(lambda: launch_counts(stack, keys), lambda counts: len(counts) == len(keys))


async def launch_counts(stack: Stack, keys: list[str]) -> dict[str, int]:
    """`details.total_issues` of each launch's readiness, as insights stores it."""
    conn = await asyncpg.connect(stack.settings.database_url)
    try:
        rows = await conn.fetch(
            "SELECT launch_key, (details->>'total_issues')::int AS n FROM insights.launch_signal"
            " WHERE workspace = $1 AND launch_key = ANY($2::text[])",
            WORKSPACE,
            keys,
        )
    finally:
        await conn.close()
    return {r["launch_key"]: r["n"] for r in rows}


async def until(probe: Any, done: Any, within: float = 120.0, every: float = 0.2) -> Any:
    """Poll the coroutine function `probe` until `done(value)`; TimeoutError after `within`."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"not settled within {within}s: {value!r}")
        await asyncio.sleep(every)


async def backlog(stack: Stack) -> int:
    """Work accepted but not yet applied: deliveries not yet normalised, unsent outbox rows and
    the insights consumer's queue."""
    conn = await asyncpg.connect(stack.settings.database_url)
    try:
        unsent = 0
        for schema in ("feedback", "roadmap", "insights"):
            unsent += await conn.fetchval(
                f"SELECT count(*) FROM {schema}.outbox WHERE sent_at IS NULL"  # noqa: S608 - constant schema names
            )
        for schema in ("feedback", "roadmap"):
            unsent += await conn.fetchval(
                f"SELECT count(*) FROM {schema}.webhook_delivery WHERE status = 'received'"  # noqa: S608 - constant schema names
            )
    finally:
        await conn.close()
    async with jetstream(stack.settings.nats_url) as js:
        info = await js.consumer_info(stack.settings.stream_name, INSIGHTS_CONSUMER)
    return int(unsent + (info.num_pending or 0) + (info.num_ack_pending or 0))


async def settle(stack: Stack, within: float = 300.0) -> float:
    """Wait until every event written so far is applied by insights; returns the seconds waited."""
    started = time.monotonic()
    await until(lambda: backlog(stack), lambda n: n == 0, within=within, every=0.5)
    return time.monotonic() - started
