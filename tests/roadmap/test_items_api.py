"""The roadmap items HTTP API: keys, filters, status history, events, scopes and workspaces."""

from __future__ import annotations

from typing import Any

import httpx

from prodops.runtime.settings import Settings
from support import auth, emitted, posted


async def create(client: httpx.AsyncClient, headers: dict[str, str], **fields: Any) -> Any:
    return await posted(client, headers, "/v1/items", {"title": "Export", **fields})


async def test_item_keys_are_sequential_per_workspace_under_its_prefix(
    settings: Settings, workspace: str, client: httpx.AsyncClient
) -> None:
    mine = auth(settings, workspace)
    theirs = auth(settings, f"b-{workspace}"[:63])
    assert [(await create(client, mine))["key"] for _ in range(2)] == ["ITEM-1", "ITEM-2"]
    assert (await create(client, theirs))["key"] == "ITEM-1"
    prefix = await client.put("/v1/settings/item-key-prefix", headers=mine, json={"prefix": "CK"})
    assert prefix.json() == {"prefix": "CK"}
    created = await client.post("/v1/items", headers=mine, json={"title": "Next"})
    assert created.headers["location"] == "/v1/items/CK-3"
    assert (await create(client, theirs))["key"] == "ITEM-2"
    bad = await client.put("/v1/settings/item-key-prefix", headers=mine, json={"prefix": "a b"})
    assert bad.status_code == 422
    writer = auth(settings, workspace, "roadmap:write", "roadmap:read")
    refused = await client.put("/v1/settings/item-key-prefix", headers=writer, json={"prefix": "X"})
    assert refused.status_code == 403


async def test_created_item_is_read_by_id_or_key_and_emitted_with_keys(
    settings: Settings, workspace: str, client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    objective = await client.post("/v1/objectives", headers=headers, json={"name": "Grow"})
    launch = await client.post(
        "/v1/launches", headers=headers, json={"key": "SPRING", "name": "Spring release"}
    )
    parent = await create(client, headers, title="Reporting")
    body = {
        "title": "CSV export",
        "description": "Weekly",
        "status": "planned",
        "horizon": "now",
        "effort": 3,
        "area": "reports",
        "objective_ids": [objective.json()["id"]],
        "launch_id": launch.json()["id"],
        "parent_id": parent["id"],
    }
    item = await create(client, headers, **body)
    assert item | body == item
    assert (item["key"], item["launch_key"], item["parent_key"]) == ("ITEM-2", "SPRING", "ITEM-1")
    assert (item["version"], item["shipped_at"]) == (1, None)
    by_id = await client.get(f"/v1/items/{item['id']}", headers=headers)
    by_key = await client.get("/v1/items/item-2", headers=headers)
    assert by_id.json() == by_key.json() == item

    events = await emitted(settings, workspace, "roadmap")
    kinds = [kind for kind, _ in events]
    assert kinds[-2:] == ["item.upserted", "launch.upserted"]
    data = events[-2][1]
    assert (data["key"], data["launch_key"], data["parent_key"]) == ("ITEM-2", "SPRING", "ITEM-1")
    assert data["objective_ids"] == [objective.json()["id"]]
    assert "description" not in data
    assert (events[-1][1]["item_keys"], events[-1][1]["version"]) == (["ITEM-2"], 2)


async def test_status_changes_are_kept_in_history_and_shipping_sets_shipped_at(
    settings: Settings, workspace: str, client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    item = await create(client, headers)
    path = f"/v1/items/{item['key']}"
    for status in ("planned", "in_progress", "shipped"):
        answer = await client.patch(path, headers=headers, json={"status": status})
        assert answer.status_code == 200, answer.text
    shipped = answer.json()
    assert shipped["shipped_at"] is not None
    assert shipped["version"] == 4
    retitled = await client.patch(path, headers=headers, json={"title": "CSV"})
    assert retitled.json()["shipped_at"] == shipped["shipped_at"]
    assert retitled.json()["status"] == "shipped"
    history = (await client.get(f"{path}/history", headers=headers)).json()
    assert [(h["from_status"], h["to_status"]) for h in history] == [
        (None, "idea"),
        ("idea", "planned"),
        ("planned", "in_progress"),
        ("in_progress", "shipped"),
    ]
    reopened = await client.patch(path, headers=headers, json={"status": "in_progress"})
    assert reopened.json()["shipped_at"] is None
    events = await emitted(settings, workspace, "roadmap")
    assert [d["version"] for _, d in events] == [1, 2, 3, 4, 5, 6]
    assert events[3][1]["shipped_at"] is not None


async def test_items_are_listed_newest_first_and_filtered(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    objective = (await client.post("/v1/objectives", headers=headers, json={"name": "G"})).json()
    launch = await client.post("/v1/launches", headers=headers, json={"key": "L1", "name": "L"})
    first = await create(client, headers, status="planned", horizon="now", area="reports")
    second = await create(client, headers, objective_ids=[objective["id"]])
    third = await create(client, headers, launch_id=launch.json()["id"], horizon="later")

    async def keys(**params: Any) -> list[str]:
        answer = await client.get("/v1/items", headers=headers, params=params)
        assert answer.status_code == 200, answer.text
        return [i["key"] for i in answer.json()["items"]]

    assert await keys() == [third["key"], second["key"], first["key"]]
    assert await keys(status="planned") == [first["key"]]
    assert await keys(horizon="later") == [third["key"]]
    assert await keys(objective=objective["id"]) == [second["key"]]
    assert await keys(launch="l1") == [third["key"]]
    assert await keys(area="reports") == [first["key"]]
    page = (await client.get("/v1/items", headers=headers, params={"limit": 2})).json()
    rest = await keys(cursor=page["next_cursor"])
    assert [i["key"] for i in page["items"]] + rest == await keys()
    assert (
        await client.get("/v1/items", headers=headers, params={"status": "x"})
    ).status_code == 422


async def test_patch_refuses_unknown_fields_and_foreign_references(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    item = await create(client, headers)
    path = f"/v1/items/{item['key']}"
    invalid: list[dict[str, Any]] = [
        {"key": "X-1"},
        {"effort": 0},
        {"title": None},
        {"horizon": "soon"},
    ]
    for bad in invalid:
        answer = await client.patch(path, headers=headers, json=bad)
        assert answer.status_code == 422, bad
        assert answer.headers["content-type"] == "application/problem+json"
    unknown = "0190d3a4-0000-7000-8000-000000000000"
    foreign: list[dict[str, Any]] = [
        {"objective_ids": [unknown]},
        {"launch_id": unknown},
        {"parent_id": unknown},
    ]
    for ref in foreign:
        assert (await client.patch(path, headers=headers, json=ref)).status_code == 422, ref
    loop = await client.patch(path, headers=headers, json={"parent_id": item["id"]})
    assert loop.status_code == 409
    assert (await client.get(path, headers=headers)).json()["version"] == 1


async def test_deleting_an_item_emits_deleted_and_orphans_its_children(
    settings: Settings, workspace: str, client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    parent = await create(client, headers)
    child = await create(client, headers, parent_id=parent["id"])
    assert (await client.delete(f"/v1/items/{parent['key']}", headers=headers)).status_code == 204
    assert (await client.get(f"/v1/items/{parent['id']}", headers=headers)).status_code == 404
    orphan = (await client.get(f"/v1/items/{child['key']}", headers=headers)).json()
    assert (orphan["parent_key"], orphan["version"]) == (None, 2)
    events = await emitted(settings, workspace, "roadmap")
    assert events[-2][0] == "item.upserted"
    assert events[-1] == ("item.deleted", {"id": parent["id"], "version": 2, "key": "ITEM-1"})
