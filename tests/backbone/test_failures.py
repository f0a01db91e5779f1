"""Faults the backbone survives: a consumer dying before its ack, a handler that keeps failing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import httpx
import pytest

from prodops.contract import Event, make_event
from prodops.messaging.consumer import EventConsumer
from prodops.messaging.handlers import BulkHandler, Consumed
from prodops.runtime.db import Connection
from prodops.runtime.settings import Settings
from support import (
    auth,
    count_applications,
    create_app,
    eventually,
    item_upserted,
    projections,
    publish,
    running,
    summary,
)


class Killed(BaseException):
    """The consumer dying: not an Exception, so nothing in it catches this."""


async def test_consumer_killed_after_commit_before_ack_is_redelivered_and_applied_once(
    settings: Settings, workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    killed: list[int] = []

    async def die_before_ack(self: EventConsumer, messages: list[object]) -> None:
        killed.append(len(messages))
        raise Killed("consumer killed after commit, before ack")

    applied: Counter[UUID] = Counter()
    event = make_event(item_upserted(1, "Audit log"), service="roadmap", workspace=workspace)
    with monkeypatch.context() as patch:
        patch.setattr(EventConsumer, "_settle", die_before_ack)
        first = create_app("insights", settings)
        async with running(first):
            count_applications(projections(first), applied)
            await publish(settings, event)
            await eventually(lambda: _value(killed), lambda k: k == [1])
    assert applied[event.id] == 1  # committed, but never acknowledged
    # The restarted consumer gets the message again once ack_wait has passed.
    second = create_app("insights", settings)
    async with running(second) as client:
        count_applications(projections(second), applied)
        consumer = projections(second)
        await eventually(
            lambda: _seen(consumer),
            lambda n: n >= 1,
            within=settings.consumer_ack_wait_seconds + 10,
        )
        counts = await summary(client, auth(settings, workspace))
    assert applied[event.id] == 1
    assert counts["items"] == 1


async def _value(value: list[int]) -> list[int]:
    return value


async def _seen(consumer: EventConsumer) -> int:
    return consumer.deliveries_seen


async def test_failing_handler_is_retried_dead_lettered_listed_and_replayed(
    settings: Settings, workspace: str
) -> None:
    # Back-off long enough that the events behind the poison are applied while it waits.
    settings = settings.model_copy(update={"consumer_backoff_seconds": (1.0, 1.0)})
    app = create_app("insights", settings)
    async with running(app) as client:
        consumer = projections(app)
        poison = make_event(item_upserted(1, "Poison"), service="roadmap", workspace=workspace)
        broken = {"on": True}
        error = RuntimeError("projection store rejected the item")
        attempts = _poisoned(consumer, poison, error, broken)
        behind = [
            make_event(item_upserted(1, f"Next {n}"), service="roadmap", workspace=workspace)
            for n in range(3)
        ]
        headers = auth(settings, workspace)
        await publish(settings, poison, *behind)
        # Events behind the poison flow while it is retried.
        await eventually(lambda: summary(client, headers), lambda c: c["items"] == 3)
        assert await _dead_letters(client, headers) == []  # the poison is still being retried
        dead = await eventually(lambda: _dead_letters(client, headers), lambda d: len(d) == 1)
        # Tried on every delivery; twice on one that came in a batch with the events behind it
        # (the batch's fast pass, then the careful pass that finds which event failed).
        assert attempts[poison.id] >= settings.consumer_max_deliver
        letter = dead[0]
        assert letter["event_id"] == str(poison.id)
        assert "projection store rejected the item" in letter["error"]
        assert letter["deliveries"] == settings.consumer_max_deliver
        assert letter["status"] == "dead"

        broken["on"] = False
        replay = await client.post(f"/v1/dead-letters/{letter['id']}/replay", headers=headers)
        assert replay.status_code == 200, replay.text
        assert replay.json()["applied"] is True
        assert (await summary(client, headers))["items"] == 4
        again = await client.post(f"/v1/dead-letters/{letter['id']}/replay", headers=headers)
        assert again.json()["applied"] is False
        listed = (await client.get("/v1/dead-letters?status=replayed", headers=headers)).json()
        assert [d["id"] for d in listed["items"]] == [letter["id"]]


def _poisoned(
    consumer: EventConsumer, poison: Event, error: Exception, broken: dict[str, bool]
) -> Counter[UUID]:
    """Fail every application of `poison` while `broken["on"]`: by its handler or set-wise."""
    attempts: Counter[UUID] = Counter()
    real, bulk = consumer.handlers[poison.type], consumer.bulk
    assert bulk is not None

    async def flaky(conn: Connection, event: Event) -> None:
        if event.id == poison.id and broken["on"]:
            attempts[event.id] += 1
            raise error
        await real(conn, event)

    async def flaky_bulk(conn: Connection, consumed: Sequence[Consumed]) -> None:
        if broken["on"] and any(c.event.id == poison.id for c in consumed):
            attempts[poison.id] += 1
            raise error
        await bulk.apply(conn, consumed)

    consumer.handlers = {**consumer.handlers, poison.type: flaky}
    consumer.bulk = BulkHandler(bulk.types, flaky_bulk)
    return attempts


async def _dead_letters(client: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = await client.get("/v1/dead-letters", headers=headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_dead_letters_of_another_workspace_are_invisible_and_not_replayable(
    settings: Settings, workspace: str
) -> None:
    app = create_app("insights", settings)
    async with running(app) as client:
        consumer = projections(app)
        poison = make_event(item_upserted(1, "Poison"), service="roadmap", workspace=workspace)

        _poisoned(consumer, poison, ValueError("no"), {"on": True})
        await publish(settings, poison)
        mine = auth(settings, workspace)
        dead = await eventually(lambda: _dead_letters(client, mine), lambda d: len(d) == 1)
        theirs = auth(settings, "other-" + workspace[:20])
        assert await _dead_letters(client, theirs) == []
        stolen = await client.post(f"/v1/dead-letters/{dead[0]['id']}/replay", headers=theirs)
        assert stolen.status_code == 404
        assert stolen.headers["content-type"] == "application/problem+json"
        no_admin = auth(settings, workspace, "insights:read")
        assert (await client.get("/v1/dead-letters", headers=no_admin)).status_code == 403
