"""Links from feedback to roadmap items: explicit ones over the API, and `roadmap-<key>` tags
resolved through feedback's projection of `item.upserted`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID, uuid4

import pytest
from fastapi import FastAPI

from feedback import consumers
from prodops.contract import Event, ItemDeleted, ItemUpserted, make_event, new_id, utcnow
from prodops.messaging.consumer import EventConsumer
from prodops.runtime.settings import Settings
from support import (
    Running,
    apply_ticket,
    assert_problem,
    emitted,
    eventually,
    publish,
    query_value,
    quiesce,
    started,
)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Running]:
    """The feedback app, with its consumer of roadmap item events."""
    async with started("feedback", settings) as value:
        yield value
        await quiesce(value[0])


def link_events(events: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, str, str, int]]:
    return [
        (kind, data["item_key"], data["by"], data["version"])
        for kind, data in events
        if kind in {"feedback.linked", "feedback.unlinked"}
    ]


async def item_arrives(settings: Settings, workspace: str, key: str, version: int = 1) -> UUID:
    """Publish `item.upserted` as roadmap would, and wait until feedback has projected it."""
    item_id = new_id()
    data = ItemUpserted(
        id=item_id, key=key, title=key, status="planned", version=version, updated_at=utcnow()
    )
    await publish(settings, make_event(data, service="roadmap", workspace=workspace))
    await eventually(lambda: projected(settings, workspace, key), lambda n: n == 1)
    return item_id


async def projected(settings: Settings, workspace: str, key: str) -> int:
    count: int = await query_value(
        settings,
        "SELECT count(*) FROM feedback.item_key WHERE workspace = $1 AND key = $2",
        workspace,
        key,
    )
    return count


async def ticket(app: FastAPI, workspace: str, source_id: UUID, **fields: Any) -> Any:
    """A support-desk snapshot applied as the webhook normaliser applies it."""
    return await apply_ticket(app, workspace, source_id, external_id="4711", **fields)


async def test_an_explicit_link_is_idempotent_and_unlinking_it_emits_events(
    settings: Settings, workspace: str, app: Running, headers: dict[str, str]
) -> None:
    _, client = app
    item = (await client.post("/v1/feedback", headers=headers, json={"title": "Wish"})).json()
    links = f"/v1/feedback/{item['id']}/links"

    first = await client.put(f"{links}/ck-7", headers=headers)
    assert first.status_code == 201, first.text
    assert first.json() == {"feedback_id": item["id"], "item_key": "CK-7", "by": "api"}
    again = await client.put(f"{links}/CK-7", headers=headers)
    assert (again.status_code, again.json()["item_key"]) == (200, "CK-7")
    linked = (await client.get(f"/v1/feedback/{item['id']}", headers=headers)).json()
    assert (linked["item_keys"], linked["version"]) == (["CK-7"], 2)

    assert (await client.delete(f"{links}/ck-7", headers=headers)).status_code == 204
    missing = await client.delete(f"{links}/ck-7", headers=headers)
    assert_problem(missing, 404)
    assert (await client.put(f"{links}/not a key", headers=headers)).status_code == 422

    events = await emitted(settings, workspace)
    assert [(kind, data["version"]) for kind, data in events] == [
        ("feedback.received", 1),
        ("feedback.linked", 2),
        ("feedback.updated", 2),
        ("feedback.unlinked", 3),
        ("feedback.updated", 3),
    ]
    assert link_events(events) == [
        ("feedback.linked", "CK-7", "api", 2),
        ("feedback.unlinked", "CK-7", "api", 3),
    ]
    assert (events[2][1]["item_keys"], events[4][1]["item_keys"]) == (["CK-7"], [])


async def test_a_ticket_tagged_with_an_unknown_item_links_once_the_item_arrives(
    settings: Settings, workspace: str, app: Running, headers: dict[str, str]
) -> None:
    feedback_app, client = app
    pending = await ticket(feedback_app, workspace, uuid4(), tags=["roadmap-ck-7", "billing"])
    assert (pending.item_keys, pending.version) == ([], 1)

    await item_arrives(settings, workspace, "CK-7")
    path = f"/v1/feedback/{pending.id}"
    linked = await eventually(
        lambda: client.get(path, headers=headers), lambda r: r.json()["item_keys"] == ["CK-7"]
    )
    assert linked.json()["version"] == 2
    assert linked.json()["tags"] == ["roadmap-ck-7", "billing"]
    events = await emitted(settings, workspace)
    assert link_events(events) == [("feedback.linked", "CK-7", "tag", 2)]
    assert events[-1][0] == "feedback.updated"
    assert (events[-1][1]["item_keys"], events[-1][1]["version"]) == (["CK-7"], 2)


async def test_a_tag_naming_a_known_item_links_at_once_and_removing_it_unlinks(
    settings: Settings, workspace: str, app: Running, headers: dict[str, str]
) -> None:
    feedback_app, client = app
    await item_arrives(settings, workspace, "CK-8")
    source = uuid4()
    received = await ticket(feedback_app, workspace, source, tags=["roadmap-ck-8"])
    assert (received.item_keys, received.version) == (["CK-8"], 1)

    untagged = await ticket(feedback_app, workspace, source, tags_removed=["roadmap-ck-8"])
    assert (untagged.item_keys, untagged.tags, untagged.version) == ([], [], 2)
    listed = await client.get("/v1/feedback", headers=headers, params={"item": "ck-8"})
    assert listed.json()["items"] == []

    events = await emitted(settings, workspace)
    assert [kind for kind, _ in events] == [
        "feedback.received",
        "feedback.linked",
        "feedback.unlinked",
        "feedback.updated",
    ]
    assert events[0][1]["item_keys"] == ["CK-8"]
    assert link_events(events) == [
        ("feedback.linked", "CK-8", "tag", 1),
        ("feedback.unlinked", "CK-8", "tag", 2),
    ]


async def test_an_explicit_link_survives_removing_the_tag(
    settings: Settings, workspace: str, app: Running, headers: dict[str, str]
) -> None:
    _, client = app
    await item_arrives(settings, workspace, "CK-9")
    item = (
        await client.post(
            "/v1/feedback", headers=headers, json={"title": "Wish", "tags": ["roadmap-ck-9"]}
        )
    ).json()
    assert item["item_keys"] == ["CK-9"]
    path = f"/v1/feedback/{item['id']}"
    promoted = await client.put(f"{path}/links/CK-9", headers=headers)
    assert (promoted.status_code, promoted.json()["by"]) == (200, "api")

    untagged = await client.patch(path, headers=headers, json={"tags": []})
    assert untagged.json()["item_keys"] == ["CK-9"]
    events = await emitted(settings, workspace)
    assert link_events(events) == [
        ("feedback.linked", "CK-9", "tag", 1),
        ("feedback.linked", "CK-9", "api", 2),
    ]


async def test_an_item_deleted_before_the_tag_leaves_the_tag_pending(
    settings: Settings, workspace: str, app: Running
) -> None:
    feedback_app, _ = app
    item_id = await item_arrives(settings, workspace, "CK-10")
    gone = ItemDeleted(id=item_id, key="CK-10", version=2)
    await publish(settings, make_event(gone, service="roadmap", workspace=workspace))
    await eventually(lambda: deleted_items(settings, workspace), lambda n: n == 1)
    pending = await ticket(feedback_app, workspace, uuid4(), tags=["roadmap-ck-10"])
    assert pending.item_keys == []


async def deleted_items(settings: Settings, workspace: str) -> int:
    count: int = await query_value(
        settings,
        "SELECT count(*) FROM feedback.item_key WHERE workspace = $1 AND deleted",
        workspace,
    )
    return count


async def test_an_older_item_event_arriving_late_does_not_rename_the_projected_key(
    settings: Settings, workspace: str, app: Running
) -> None:
    feedback_app, _ = app
    item_id = new_id()

    def upserted(version: int, key: str) -> Event:
        data = ItemUpserted(
            id=item_id, key=key, title=key, status="idea", version=version, updated_at=utcnow()
        )
        return make_event(data, service="roadmap", workspace=workspace)

    await publish(settings, upserted(2, "CK-12"), upserted(1, "CK-OLD"))
    await eventually(lambda: projected(settings, workspace, "CK-12"), lambda n: n == 1)
    await eventually(lambda: consumed(feedback_app), lambda n: n >= 2)
    assert await projected(settings, workspace, "CK-OLD") == 0
    linked = await ticket(feedback_app, workspace, uuid4(), tags=["roadmap-ck-12"])
    assert linked.item_keys == ["CK-12"]


async def consumed(app: FastAPI) -> int:
    consumer: EventConsumer = app.state.runtime.consumers[consumers.CONSUMER]
    return consumer.deliveries_seen
