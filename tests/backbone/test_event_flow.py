"""The backbone end to end: HTTP write -> outbox -> JetStream -> idempotent consumer."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from uuid import UUID

import pytest
from fastapi import FastAPI

from prodops.contract import make_event, new_id
from prodops.messaging.consumer import EventConsumer
from prodops.runtime.settings import Settings
from support import (
    Running,
    auth,
    count_applications,
    create_app,
    eventually,
    item_upserted,
    projections,
    publish,
    query,
    running,
    started,
    stream_messages,
    summary,
)


@pytest.fixture
async def insights(settings: Settings) -> AsyncIterator[Running]:
    async with started("insights", settings) as value:
        yield value


async def test_feedback_posted_over_http_is_counted_by_insights(
    settings: Settings, insights: Running, headers: dict[str, str]
) -> None:
    _, insights_client = insights
    async with running(create_app("feedback", settings)) as feedback:
        created = await feedback.post(
            "/v1/feedback", headers=headers, json={"title": "Export to CSV", "tags": ["Export"]}
        )
        assert created.status_code == 201, created.text
        assert created.json()["tags"] == ["export"]
        counts = await eventually(
            lambda: summary(insights_client, headers), lambda c: c["feedback"] == 1
        )
    assert counts["items"] == 0


async def test_relay_killed_between_publish_and_mark_sent_is_applied_once(
    settings: Settings,
    workspace: str,
    insights: Running,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, client = insights
    applied = count_applications(projections(app))
    feedback_app = create_app("feedback", settings)
    async with running(feedback_app):
        relay = feedback_app.state.runtime.relay
        for task in feedback_app.state.runtime.tasks:
            task.cancel()  # the background relay must not race the one driven here

        async def crash(*_: object) -> None:
            raise SystemExit("relay killed after publishing")

        monkeypatch.setattr(relay, "mark_sent", crash)
        headers = auth(settings, workspace)
        event = await _write_feedback_without_relay(feedback_app, workspace)
        with pytest.raises(SystemExit):
            await relay.publish_batch()
        monkeypatch.undo()
        assert await relay.drain() >= 1  # the row was still unsent: published again
        await eventually(lambda: summary(client, headers), lambda c: c["feedback"] == 1)
    assert applied[event] == 1
    assert await stream_messages(settings) == 1  # the stream dropped the repeat by Nats-Msg-Id


async def _write_feedback_without_relay(app: FastAPI, workspace: str) -> UUID:
    from feedback.domain import FeedbackInput
    from feedback.service import create_feedback
    from prodops.runtime.db import workspace_transaction

    settings = app.state.settings
    async with workspace_transaction(app.state.pool, workspace, role=settings.app_role) as conn:
        await create_feedback(conn=conn, workspace=workspace, data=FeedbackInput(title="Dark mode"))
        row = await conn.fetchrow("SELECT id FROM outbox ORDER BY position DESC LIMIT 1")
    assert row is not None
    event_id: UUID = row["id"]
    return event_id


async def test_the_same_event_published_twice_is_applied_once(
    settings: Settings,
    workspace: str,
    insights: Running,
    headers: dict[str, str],
) -> None:
    app, client = insights
    applied = count_applications(projections(app))
    event = make_event(item_upserted(1, "Bulk edit"), service="roadmap", workspace=workspace)
    # Two message ids: the broker cannot deduplicate, so only the inbox stands between.
    await publish(settings, event, msg_id="first")
    await publish(settings, event, msg_id="second")
    await eventually(lambda: summary(client, headers), lambda c: c["items"] == 1)
    await eventually(lambda: _delivered(projections(app)), lambda n: n >= 2)
    assert applied[event.id] == 1


async def _delivered(consumer: EventConsumer) -> int:
    return consumer.deliveries_seen


async def test_an_older_version_arriving_after_a_newer_one_changes_nothing(
    settings: Settings, workspace: str, insights: Running
) -> None:
    app, _ = insights
    item_id = new_id()
    newer = make_event(item_upserted(2, "Renamed", item_id), service="roadmap", workspace=workspace)
    older = make_event(
        item_upserted(1, "Original", item_id), service="roadmap", workspace=workspace
    )
    await publish(settings, newer, older)
    await eventually(lambda: _delivered(projections(app)), lambda n: n >= 2)
    rows = await query(
        settings,
        "SELECT version, state->>'title' AS title FROM insights.projection "
        "WHERE workspace = $1 AND id = $2",
        workspace,
        str(item_id),
    )
    row = rows[0] if rows else None
    assert row is not None
    assert (row["version"], row["title"]) == (2, "Renamed")


async def test_two_insights_replicas_share_the_stream_and_apply_each_event_once(
    settings: Settings, workspace: str
) -> None:
    events = [
        make_event(item_upserted(1, f"Item {n}"), service="roadmap", workspace=workspace)
        for n in range(40)
    ]
    applied: Counter[UUID] = Counter()
    first, second = create_app("insights", settings), create_app("insights", settings)
    async with running(first) as client, running(second):
        count_applications(projections(first), applied)
        count_applications(projections(second), applied)
        await publish(settings, *events)
        counts = await eventually(
            lambda: summary(client, auth(settings, workspace)), lambda c: c["items"] == 40
        )
        await eventually(lambda: _both(projections(first), projections(second)), lambda n: n >= 40)
    assert counts["items"] == 40
    assert sorted(applied.values()) == [1] * 40
    assert set(applied) == {e.id for e in events}


async def _both(a: EventConsumer, b: EventConsumer) -> int:
    return a.deliveries_seen + b.deliveries_seen
