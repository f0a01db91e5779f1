"""Support-desk snapshots into feedback items: `upsert_from_source` keyed by (source, ticket)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID, uuid4

import pytest
from fastapi import FastAPI

from feedback.domain import Feedback
from prodops.contract import Customer
from prodops.runtime.settings import Settings
from support import apply_ticket, create_app, emitted, quiesce, running


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    value = create_app("feedback", settings)
    async with running(value):
        yield value
        await quiesce(value)


async def apply(app: FastAPI, workspace: str, source_id: UUID, **fields: Any) -> Feedback:
    """Apply a snapshot in a workspace transaction as the application role, as webhooks do."""
    return await apply_ticket(app, workspace, source_id, **{"external_id": "T-100", **fields})


async def test_a_new_ticket_becomes_a_feedback_item_and_is_received(
    settings: Settings, workspace: str, app: FastAPI
) -> None:
    source = uuid4()
    item = await apply(
        app,
        workspace,
        source,
        body="The export times out",
        tags=["export"],
        priority="urgent",
        sentiment=-0.5,
        customer=Customer(email="bo@example.com"),
        account_external_id="acme",
        url="https://acme.zendesk.com/agent/tickets/100",
    )
    assert item.title == "Ticket T-100"
    assert (item.source.provider, item.source.source_id, item.source.external_id) == (
        "zendesk",
        source,
        "T-100",
    )
    assert (item.priority, item.sentiment, item.status, item.version) == ("urgent", -0.5, "open", 1)
    events = await emitted(settings, workspace)
    assert [kind for kind, _ in events] == ["feedback.received"]
    assert events[0][1]["customer"]["email"] == "bo@example.com"
    assert events[0][1]["source"]["source_id"] == str(source)


async def test_a_later_event_updates_only_what_it_knows_and_a_repeat_changes_nothing(
    settings: Settings, workspace: str, app: FastAPI
) -> None:
    source = uuid4()
    first = await apply(
        app, workspace, source, title="Slow export", body="Details", tags=["export", "ui"]
    )
    second = await apply(
        app, workspace, source, status="archived", tags_added=["vip"], tags_removed=["ui"]
    )
    assert second.id == first.id
    assert (second.title, second.body, second.status) == ("Slow export", "Details", "archived")
    assert (second.tags, second.version) == (["export", "vip"], 2)
    repeat = await apply(app, workspace, source, status="archived", tags=["vip", "export"])
    assert repeat.version == 2
    other_source = await apply(app, workspace, uuid4(), title="Same ticket id, other desk")
    assert other_source.id != first.id

    events = await emitted(settings, workspace)
    assert [(kind, data["id"] == str(first.id), data["version"]) for kind, data in events] == [
        ("feedback.received", True, 1),
        ("feedback.updated", True, 2),
        ("feedback.received", False, 1),
    ]


async def test_two_deliveries_of_one_ticket_at_once_get_versions_one_and_two(
    settings: Settings, workspace: str, app: FastAPI
) -> None:
    source = uuid4()
    results = await asyncio.gather(
        apply(app, workspace, source, title="From the first delivery", priority="high"),
        apply(app, workspace, source, title="From the second delivery", priority="low"),
    )
    assert results[0].id == results[1].id
    assert sorted(r.version for r in results) == [1, 2]
    events = await emitted(settings, workspace)
    assert sorted((kind, data["version"]) for kind, data in events) == [
        ("feedback.received", 1),
        ("feedback.updated", 2),
    ]


async def test_workspaces_keep_their_own_tickets_of_one_source(
    settings: Settings, workspace: str, app: FastAPI
) -> None:
    source = uuid4()
    mine = await apply(app, workspace, source, title="Mine")
    theirs = await apply(app, f"b-{workspace}"[:63], source, title="Theirs")
    assert mine.id != theirs.id
    again = await apply(app, workspace, source, title="Mine, renamed")
    assert (again.id, again.version) == (mine.id, 2)
