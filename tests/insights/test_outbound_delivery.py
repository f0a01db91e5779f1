"""Outbound webhook delivery against a real receiver: enqueue, sign, retry, disable, resume."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from itertools import pairwise
from typing import Any

import httpx
from fastapi import FastAPI

from insights.outbound.dispatcher import OutboundDispatcher, enqueue
from prodops.contract import (
    AlignmentChanged,
    Change,
    Event,
    LaunchReadinessChanged,
    make_event,
)
from prodops.runtime.db import create_pool, workspace_transaction
from prodops.runtime.settings import Settings
from receiver import webhook_receiver
from support import Running, auth, eventually, started

READINESS = LaunchReadinessChanged.TYPE
ALIGNMENT = AlignmentChanged.TYPE
CLOSED_PORT = "http://127.0.0.1:9/hooks"  # the discard port: nothing listens there

Json = dict[str, Any]


def quick(settings: Settings, **overrides: object) -> Settings:
    """The test's settings with private URLs allowed (the receiver is local) and short timings."""
    values = {
        **settings.model_dump(),
        "outbound_allow_private_urls": True,
        "outbound_timeout_seconds": 2.0,
        "outbound_retry_base_seconds": 0.2,
        "outbound_retry_max_delay_seconds": 0.4,
        "outbound_poll_interval_seconds": 0.1,
        **overrides,
    }
    return Settings.model_validate(values)


@asynccontextmanager
async def insights(settings: Settings) -> AsyncIterator[Running]:
    """A running insights app (its dispatcher included) and a client of it."""
    async with started("insights", settings) as value:
        yield value


def readiness(workspace: str, launch_key: str = "L-1") -> Event:
    data = LaunchReadinessChanged(
        launch_key=launch_key,
        status=Change(from_="on_track", to="at_risk"),
        score=Change(from_=81.0, to=62.5),
        components={"checklist": 0.5},
        reasons=[],
    )
    return make_event(data, service="insights", workspace=workspace)


def alignment(workspace: str) -> Event:
    data = AlignmentChanged(
        alignment=Change(from_=40.0, to=55.0),
        strategic=Change(from_=40.0, to=50.0),
        customer=Change(from_=40.0, to=60.0),
        reasons=[],
    )
    return make_event(data, service="insights", workspace=workspace)


async def enqueued(app: FastAPI, settings: Settings, workspace: str, *events: Event) -> int:
    """Enqueue events in one workspace transaction, as the signal engine does."""
    async with workspace_transaction(app.state.pool, workspace, role=settings.app_role) as conn:
        return sum([await enqueue(conn, event) for event in events])


async def subscribe(
    client: httpx.AsyncClient, admin: dict[str, str], url: str, **fields: Any
) -> Json:
    answer = await client.post("/v1/subscriptions", headers=admin, json={"url": url, **fields})
    assert answer.status_code == 201, answer.text
    created: Json = answer.json()
    return created


async def fetch(client: httpx.AsyncClient, admin: dict[str, str], path: str) -> Any:
    answer = await client.get(f"/v1/subscriptions/{path}", headers=admin)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def deliveries(client: httpx.AsyncClient, admin: dict[str, str], sub: Json) -> list[Json]:
    page = await fetch(client, admin, f"{sub['id']}/deliveries")
    items: list[Json] = page["items"]
    return items


async def settled(
    client: httpx.AsyncClient, admin: dict[str, str], sub: Json, status: str, within: float = 15
) -> list[Json]:
    """The subscription's deliveries once every one has `status`."""
    return await eventually(
        lambda: deliveries(client, admin, sub),
        lambda found: bool(found) and all(d["status"] == status for d in found),
        within=within,
    )


async def test_enqueued_signal_is_delivered_once_signed_with_its_attempt_listed(
    settings: Settings, workspace: str
) -> None:
    tuned, admin = quick(settings), auth(settings, workspace, "admin")
    async with webhook_receiver() as receiver, insights(tuned) as (app, client):
        sub = await subscribe(client, admin, receiver.url, event_types=[READINESS])
        event = readiness(workspace)
        assert await enqueued(app, tuned, workspace, event) == 1
        [request] = await receiver.wait_for(1)
        [delivery] = await settled(client, admin, sub, "delivered")
        await asyncio.sleep(0.3)
        assert len(receiver.requests) == 1
    receiver.verify(sub["secret"], request)
    assert request.webhook_id == str(event.id)
    assert request.body == event.to_bytes()
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 30
    assert request.json()["data"]["launch_key"] == "L-1"
    assert (delivery["event_id"], delivery["event_type"]) == (str(event.id), READINESS)
    assert [a["status_code"] for a in delivery["attempts"]] == [200]
    assert delivery["delivered_at"] is not None


async def test_enqueue_queues_for_enabled_subscriptions_of_the_workspace_that_want_the_type(
    settings: Settings, workspace: str
) -> None:
    tuned, admin = quick(settings), auth(settings, workspace, "admin")
    other = f"{workspace}-other"
    async with insights(tuned) as (app, client):
        await subscribe(client, admin, CLOSED_PORT, event_types=[READINESS])
        await subscribe(client, admin, CLOSED_PORT)
        await subscribe(client, admin, CLOSED_PORT, event_types=[ALIGNMENT])
        off = await subscribe(client, admin, CLOSED_PORT)
        await app.state.pool.execute(
            "UPDATE subscription SET enabled = false WHERE id = $1::uuid", off["id"]
        )
        await subscribe(client, auth(settings, other, "admin"), CLOSED_PORT)
        first = readiness(workspace)
        assert await enqueued(app, tuned, workspace, first) == 2
        assert await enqueued(app, tuned, workspace, alignment(workspace)) == 2
        assert await enqueued(app, tuned, workspace, first) == 0  # the same event again
        ping = first.model_copy(update={"type": "prodops.webhook.ping.v1"})
        assert await enqueued(app, tuned, workspace, ping) == 0
        assert await enqueued(app, tuned, other, readiness(other)) == 1


async def test_receiver_errors_are_retried_with_backoff_until_delivered(
    settings: Settings, workspace: str
) -> None:
    tuned = quick(settings, outbound_retry_base_seconds=0.5, outbound_retry_max_delay_seconds=0.5)
    admin = auth(settings, workspace, "admin")
    async with webhook_receiver() as receiver, insights(tuned) as (app, client):
        receiver.respond_with(500, 503)
        sub = await subscribe(client, admin, receiver.url)
        event = readiness(workspace)
        await enqueued(app, tuned, workspace, event)
        failing = await eventually(
            lambda: fetch(client, admin, sub["id"]), lambda s: s["failing_since"] is not None
        )
        requests = await receiver.wait_for(3)
        [delivery] = await settled(client, admin, sub, "delivered")
        healthy = await fetch(client, admin, sub["id"])
        await asyncio.sleep(0.3)
        assert len(receiver.requests) == 3
    assert failing["enabled"]
    assert healthy["failing_since"] is None
    assert {r.webhook_id for r in requests} == {str(event.id)}
    for request in requests:
        receiver.verify(sub["secret"], request)
    gaps = [later.received_at - earlier.received_at for earlier, later in pairwise(requests)]
    assert all(gap >= 0.45 for gap in gaps), gaps
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 503, 200]
    assert [a["error"] for a in delivery["attempts"]] == ["HTTP 500", "HTTP 503", None]


async def test_persistent_failure_disables_the_subscription_and_enabling_resumes_it(
    settings: Settings, workspace: str
) -> None:
    tuned = quick(settings, outbound_disable_after_hours=0, outbound_disable_after_failures=3)
    admin = auth(settings, workspace, "admin")
    async with webhook_receiver(status=500) as receiver, insights(tuned) as (app, client):
        sub = await subscribe(client, admin, receiver.url)
        await enqueued(app, tuned, workspace, readiness(workspace))
        disabled = await eventually(
            lambda: fetch(client, admin, sub["id"]), lambda s: not s["enabled"]
        )
        await asyncio.sleep(0.5)
        assert len(receiver.requests) == 3  # held: nothing is sent while disabled
        assert await enqueued(app, tuned, workspace, readiness(workspace, "L-2")) == 0
        [held] = await deliveries(client, admin, sub)
        receiver.status = 200
        enabled = await client.post(f"/v1/subscriptions/{sub['id']}/enable", headers=admin)
        assert enabled.status_code == 200, enabled.text
        await receiver.wait_for(4)
        [delivery] = await settled(client, admin, sub, "delivered")
    assert disabled["disabled_at"] is not None
    assert "3 failed attempts in a row" in disabled["disabled_reason"]
    assert "HTTP 500" in disabled["disabled_reason"]
    assert held["status"] == "pending"
    assert enabled.json()["enabled"] is True
    assert (enabled.json()["disabled_reason"], enabled.json()["failing_since"]) == (None, None)
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 500, 200]


async def test_delivery_fails_after_the_retry_horizon_and_can_be_retried_by_hand(
    settings: Settings, workspace: str
) -> None:
    tuned = quick(settings, outbound_retry_horizon_hours=0.5 / 3600)
    admin = auth(settings, workspace, "admin")
    async with webhook_receiver(status=500) as receiver, insights(tuned) as (app, client):
        sub = await subscribe(client, admin, receiver.url)
        await enqueued(app, tuned, workspace, readiness(workspace))
        [failed] = await settled(client, admin, sub, "failed")
        sent = len(receiver.requests)
        await asyncio.sleep(0.5)
        assert len(receiver.requests) == sent
        receiver.status = 200
        base = f"/v1/subscriptions/{sub['id']}/deliveries"
        retried = await client.post(f"{base}/{failed['id']}/retry", headers=admin)
        assert retried.status_code == 202, retried.text
        [delivered] = await settled(client, admin, sub, "delivered")
        again = await client.post(f"{base}/{failed['id']}/retry", headers=admin)
        unknown = await client.post(f"{base}/{sub['id']}/retry", headers=admin)
    assert failed["last_error"] == "HTTP 500"
    assert failed["next_attempt_at"] is None
    assert retried.json()["status"] == "pending"
    assert [a["status_code"] for a in delivered["attempts"]] == [500] * sent + [200]
    assert (again.status_code, unknown.status_code) == (409, 404)
    assert "failed" in again.json()["detail"]


async def test_two_dispatchers_deliver_each_delivery_exactly_once(
    settings: Settings, workspace: str
) -> None:
    tuned, admin = quick(settings, outbound_batch_size=2), auth(settings, workspace, "admin")
    pools = [await create_pool(tuned, schema="insights") for _ in range(2)]
    dispatchers = [OutboundDispatcher(pool, tuned) for pool in pools]
    async with webhook_receiver() as receiver, insights(tuned) as (app, client):
        receiver.answer_slowly(0.02)  # so that the dispatchers' batches overlap
        sub = await subscribe(client, admin, receiver.url)
        events = [readiness(workspace, f"L-{n}") for n in range(20)]
        tasks = [asyncio.create_task(d.run()) for d in dispatchers]
        try:
            assert await enqueued(app, tuned, workspace, *events) == 20
            await receiver.wait_for(20)
            await settled(client, admin, sub, "delivered")
            await asyncio.sleep(0.5)
        finally:
            await _stop(tasks)
            for pool in pools:
                await pool.close()
    ids = [r.webhook_id for r in receiver.requests]
    assert sorted(ids) == sorted(str(e.id) for e in events)


async def _stop(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_slow_receiver_times_out_and_is_retried(settings: Settings, workspace: str) -> None:
    tuned = quick(settings, outbound_timeout_seconds=0.3)
    admin = auth(settings, workspace, "admin")
    async with webhook_receiver() as receiver, insights(tuned) as (app, client):
        receiver.answer_slowly(1.0)
        sub = await subscribe(client, admin, receiver.url)
        await enqueued(app, tuned, workspace, readiness(workspace))
        await receiver.wait_for(1)
        receiver.answer_slowly(0)
        [delivery] = await settled(client, admin, sub, "delivered")
    first = delivery["attempts"][0]
    assert (first["status_code"], first["error"]) == (None, "timed out after 0.3 s")
    assert first["duration_ms"] >= 250
    assert delivery["attempts"][-1]["status_code"] == 200


async def test_dispatcher_refuses_an_address_that_became_private(
    settings: Settings, workspace: str
) -> None:
    admin = auth(settings, workspace, "admin")
    strict = quick(settings, outbound_allow_private_urls=False)
    async with webhook_receiver() as receiver:
        async with insights(quick(settings)) as (_, client):
            sub = await subscribe(client, admin, receiver.url)
        async with insights(strict) as (app, client):
            await enqueued(app, strict, workspace, readiness(workspace))
            [delivery] = await eventually(
                lambda: deliveries(client, admin, sub),
                lambda found: bool(found and found[0]["attempts"]),
            )
        assert receiver.requests == []
    assert delivery["status"] == "pending"
    assert delivery["attempts"][0]["error"].startswith("refused: ")
    assert "non-public" in delivery["last_error"]


async def test_settled_deliveries_are_purged_after_the_retention(
    settings: Settings, workspace: str
) -> None:
    tuned = quick(settings, outbound_retention_hours=0.2 / 3600)
    admin = auth(settings, workspace, "admin")
    async with webhook_receiver() as receiver, insights(tuned) as (app, client):
        sub = await subscribe(client, admin, receiver.url)
        await client.post(f"/v1/subscriptions/{sub['id']}/ping", headers=admin)
        stuck = await subscribe(client, admin, CLOSED_PORT)
        await enqueued(app, tuned, workspace, readiness(workspace))
        await settled(client, admin, sub, "delivered")
        await asyncio.sleep(0.3)
        dispatcher = OutboundDispatcher(app.state.pool, tuned)
        try:
            # The purge spans every workspace, so earlier tests' deliveries may go too.
            assert await dispatcher.purge() >= 2
        finally:
            await dispatcher.aclose()
        assert await deliveries(client, admin, sub) == []
        [pending] = await deliveries(client, admin, stuck)
    assert pending["status"] == "pending"
