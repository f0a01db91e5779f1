"""The outbox relay: woken by NOTIFY, safe with several replicas, keeps sent rows for a while."""

from __future__ import annotations

import asyncio

import nats

from feedback.domain import FeedbackInput
from feedback.service import create_feedback
from prodops.messaging.broker import ensure_stream
from prodops.messaging.inbox import purge_inbox
from prodops.messaging.outbox import OutboxRelay
from prodops.runtime.db import create_pool, workspace_transaction
from prodops.runtime.settings import Settings
from support import create_app, eventually, running, stream_messages, summary


async def test_relay_is_woken_by_notify_long_before_its_poll_interval(
    settings: Settings, headers: dict[str, str]
) -> None:
    slow_poll = settings.model_copy(update={"outbox_poll_interval_seconds": 60.0})
    async with (
        running(create_app("feedback", slow_poll)) as feedback,
        running(create_app("insights", slow_poll)) as insights,
    ):
        await asyncio.sleep(0.2)  # the relay has drained and is waiting
        answer = await feedback.post("/v1/feedback", headers=headers, json={"title": "Notify"})
        assert answer.status_code == 201
        await eventually(lambda: summary(insights, headers), lambda c: c["feedback"] == 1, 5)


async def test_two_relays_publish_every_row_exactly_once_between_them(
    settings: Settings, workspace: str
) -> None:
    pool = await create_pool(settings, schema="feedback")
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        await ensure_stream(js, settings)
        for n in range(120):
            async with workspace_transaction(pool, workspace, role=settings.app_role) as conn:
                await create_feedback(
                    conn=conn, workspace=workspace, data=FeedbackInput(title=f"Wish {n}")
                )
        small = settings.model_copy(update={"outbox_batch_size": 7})
        relays = [OutboxRelay(pool=pool, js=js, settings=small, service="feedback") for _ in "ab"]
        sent = await asyncio.gather(*(relay.drain() for relay in relays))
        assert sum(sent) == 120
        assert all(n > 0 for n in sent)  # SKIP LOCKED let both work at once
        assert await stream_messages(settings) == 120
        unsent = await pool.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
        assert unsent == 0
    finally:
        await nc.close()
        await pool.close()


async def test_purge_drops_only_rows_sent_before_the_retention_period(
    settings: Settings, workspace: str
) -> None:
    pool = await create_pool(settings, schema="feedback")
    try:
        async with workspace_transaction(pool, workspace, role=settings.app_role) as conn:
            for title in ("old and sent", "new and sent", "old but unsent"):
                await create_feedback(
                    conn=conn, workspace=workspace, data=FeedbackInput(title=title)
                )
        rows = await pool.fetch(
            "SELECT id FROM outbox WHERE workspace = $1 ORDER BY position", workspace
        )
        old_sent, new_sent, old_unsent = (r["id"] for r in rows)
        await pool.execute(
            "UPDATE outbox SET sent_at = now() - interval '100 hours' WHERE id = $1", old_sent
        )
        await pool.execute("UPDATE outbox SET sent_at = now() WHERE id = $1", new_sent)
        relay = OutboxRelay(pool=pool, js=None, settings=settings, service="feedback")  # type: ignore[arg-type]
        assert await relay.purge() >= 1
        left = {
            r["id"]
            for r in await pool.fetch("SELECT id FROM outbox WHERE workspace = $1", workspace)
        }
        assert left == {new_sent, old_unsent}
        await pool.execute("UPDATE outbox SET sent_at = now() WHERE id = $1", old_unsent)
    finally:
        await pool.close()


async def test_inbox_purge_forgets_only_old_claims(settings: Settings, workspace: str) -> None:
    pool = await create_pool(settings, schema="insights")
    try:
        await pool.execute(
            "INSERT INTO inbox (consumer, event_id, workspace, type, processed_at) VALUES "
            "('purge-test', gen_random_uuid(), $1, 't', now() - interval '200 hours'), "
            "('purge-test', gen_random_uuid(), $1, 't', now())",
            workspace,
        )
        assert await purge_inbox(pool, older_than_hours=168) >= 1
        left = await pool.fetchval("SELECT count(*) FROM inbox WHERE workspace = $1", workspace)
        assert left == 1
    finally:
        await pool.close()


async def test_marking_rows_sent_commits_without_waiting_for_the_disk(
    settings: Settings, workspace: str
) -> None:
    pool = await create_pool(settings, schema="feedback")
    relay = OutboxRelay(pool=pool, js=None, settings=settings, service="feedback")  # type: ignore[arg-type]
    try:
        async with workspace_transaction(pool, workspace, role=settings.app_role) as conn:
            await create_feedback(conn=conn, workspace=workspace, data=FeedbackInput(title="Lazy"))
        unsent = "SELECT position FROM outbox WHERE workspace = $1 AND sent_at IS NULL"
        async with pool.acquire() as conn:
            default = await conn.fetchval("SHOW synchronous_commit")
            async with conn.transaction():
                # Whatever the server's default (the test servers may run without it): on here.
                await conn.execute("SET LOCAL synchronous_commit = on")
                positions = [r["position"] for r in await conn.fetch(unsent, workspace)]
                assert positions
                await relay.mark_sent(conn, positions)
                assert await conn.fetchval("SHOW synchronous_commit") == "off"
            # Only that transaction's commit.
            assert await conn.fetchval("SHOW synchronous_commit") == default
            assert await conn.fetch(unsent, workspace) == []
    finally:
        await pool.close()
