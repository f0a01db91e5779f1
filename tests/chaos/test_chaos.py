"""Chaos: a fault lands mid-burst, and still nothing accepted is lost or counted twice.

Each case starts its own PostgreSQL, nats-server(s) and the three services as processes, sends
a burst of signed GitHub deliveries and feedback, injects its fault halfway, lets the system
recover, and then requires the ledger to balance (accepted = stored = published = applied +
dead-lettered) and the live signals to equal a clean `prodops insights rebuild`.

`PRODOPS_CHAOS_SCALE` multiplies the burst: 1 (30 GitHub deliveries and 24 feedback) in
`make test`, 10 in `make chaos`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import nats
import pytest
from chaos import ledger
from chaos.compare import rebuild_matches_live
from chaos.stack import STREAM, WORKSPACE, Stack
from chaos.workload import Burst, plan, prepare

SCALE = int(os.environ.get("PRODOPS_CHAOS_SCALE", "1"))
pytestmark = [pytest.mark.slow, pytest.mark.timeout(150 + 60 * SCALE)]

Fault = Callable[[Stack], Awaitable[None]]

# The advisory lock insights takes per workspace for each batch it applies.
_HOLD_SIGNAL_LOCK = "SELECT pg_advisory_lock(hashtextextended('prodops.insights:' || $1, 0))"
_RELEASE_SIGNAL_LOCK = "SELECT pg_advisory_unlock(hashtextextended('prodops.insights:' || $1, 0))"
_INSIGHTS_WAITING = """
SELECT count(*) FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND NOT l.granted AND a.application_name = 'prodops-insights'
"""


@asynccontextmanager
async def deployment(*, cluster: bool = False) -> AsyncIterator[Stack]:
    """A whole stack of processes of this case's own, all of it stopped and removed afterwards."""
    # Not under pytest's tmp_path: a concurrent pytest session makes /tmp/pytest-of-<user> 0700
    # again, which the PostgreSQL user (under root) then cannot traverse to its data directory.
    root = Path(tempfile.mkdtemp(prefix="prodops-chaos-"))
    stack = Stack(root)
    try:
        await stack.start(cluster=cluster)
        yield stack
    finally:
        stack.close()
        shutil.rmtree(root, ignore_errors=True)


async def survive(stack: Stack, fault: Fault) -> list[ledger.Line]:
    """Burst, fault halfway, recovery; then the ledger balances and a rebuild agrees."""
    token = stack.token()
    burst = plan(await prepare(stack, token), token=token, scale=SCALE)
    began = time.monotonic()
    await _with_fault_halfway(stack, burst, fault)
    sent = time.monotonic()
    assert burst.done() == burst.total, f"{burst.done()} of {burst.total} calls accepted"
    lines = await ledger.balanced(stack, burst.accepted)
    balanced = time.monotonic()
    messages, applied = await rebuild_matches_live(stack)
    # The rebuild claimed every event in the consumer's inbox again: each once, none missing.
    after = await ledger.balanced(stack, burst.accepted, within=10)
    print(
        f"\n{burst.total} calls ({burst.retries} retries, {burst.replayed} answered as already "
        f"stored) in {sent - began:.1f}s; balanced {balanced - sent:.1f}s later; rebuild: "
        f"{messages} messages read, {applied} applied, signals equal "
        f"({time.monotonic() - balanced:.1f}s)"
    )
    print(ledger.table(lines))
    return after


async def _with_fault_halfway(stack: Stack, burst: Burst, fault: Fault) -> None:
    """Send the burst; once half of it is accepted, inject the fault while the rest goes on."""
    sending = asyncio.create_task(burst.run(stack))
    try:
        halfway = asyncio.ensure_future(burst.reached(0.5))
        await asyncio.wait({halfway, sending}, return_when=asyncio.FIRST_COMPLETED)
        if not halfway.done():
            halfway.cancel()
            sending.result()  # the burst failed before the fault: say why
        await halfway
        await fault(stack)
        await sending
    finally:
        if not sending.done():
            sending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sending


async def test_roadmap_sigkilled_mid_burst_loses_and_doubles_nothing() -> None:
    async def kill_roadmap(stack: Stack) -> None:
        await stack.kill_service("roadmap")
        await stack.start_service("roadmap")

    async with deployment() as stack:
        await survive(stack, kill_roadmap)


async def test_insights_sigkilled_mid_batch_applies_every_event_once() -> None:
    async def kill_insights_mid_batch(stack: Stack) -> None:
        conn = await asyncpg.connect(stack.database_url)
        try:
            # Holding the workspace's signal lock makes insights' next batch wait for it inside
            # its open transaction, its events claimed: the SIGKILL lands provably mid-batch.
            await conn.execute(_HOLD_SIGNAL_LOCK, WORKSPACE)
            await _until(lambda: conn.fetchval(_INSIGHTS_WAITING), "insights waits mid-batch")
            await stack.kill_service("insights")
        finally:
            await conn.execute(_RELEASE_SIGNAL_LOCK, WORKSPACE)
            await conn.close()
        await stack.start_service("insights")

    async with deployment() as stack:
        await survive(stack, kill_insights_mid_batch)


async def test_nats_server_restarted_mid_burst_loses_nothing() -> None:
    async def restart_nats(stack: Stack) -> None:
        [node] = stack.nodes
        await stack.kill_node(node)
        await stack.start_node(node)

    async with deployment() as stack:
        await survive(stack, restart_nats)


async def test_postgres_restarted_mid_burst_loses_nothing() -> None:
    async def restart_postgres(stack: Stack) -> None:
        # Down longer than the consumer's back-offs (0.1, 0.2, then 0.5 s) take to redeliver a
        # batch more than `consumer_max_deliver` + 2 times: no event may be dropped meanwhile.
        await stack.restart_postgres(down_for=4.0)

    async with deployment() as stack:
        await survive(stack, restart_postgres)


async def test_stream_deleted_mid_burst_is_refilled_from_the_outbox() -> None:
    before = datetime.now(UTC)

    async def delete_and_refill_stream(stack: Stack) -> None:
        nc = await nats.connect(stack.nats_url)
        try:
            await nc.jetstream().delete_stream(STREAM)
        finally:
            await nc.close()
        await stack.cli("outbox", "republish", "--since", before.isoformat())

    async with deployment() as stack:
        await survive(stack, delete_and_refill_stream)


async def test_cluster_losing_the_stream_leader_mid_burst_loses_nothing() -> None:
    lost: list[str] = []

    async def lose_leader(stack: Stack) -> None:
        lost.append(await stack.leader_url())
        await stack.kill_node(next(n for n in stack.nodes if n.url == lost[0]))
        # From now on every process (the rebuild, a restarted insights) starts on a survivor.
        stack.nats_url = next(n.url for n in stack.nodes if n.url != lost[0])

    async with deployment(cluster=True) as stack:
        await survive(stack, lose_leader)
        assert await stack.leader_url() not in lost, "the stream elected no new leader"


async def _until(probe: Callable[[], Awaitable[object]], what: str, within: float = 30) -> None:
    """Poll until `probe` answers something truthy; fail naming `what` otherwise."""
    deadline = asyncio.get_running_loop().time() + within
    while not await probe():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached within {within:.0f}s: {what}")
        await asyncio.sleep(0.01)
