"""The objectives HTTP API: create, read, list, patch, delete; events, scopes and workspaces."""

from __future__ import annotations

from typing import Any

import httpx

from prodops.runtime.settings import Settings
from support import emitted, posted


async def create(client: httpx.AsyncClient, headers: dict[str, str], **fields: Any) -> Any:
    return await posted(client, headers, "/v1/objectives", {"name": "Grow", **fields})


async def test_created_objective_is_read_back_listed_and_emitted(
    settings: Settings, workspace: str, client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    parent = await create(client, headers, name="Company", weight=5)
    body = {
        "name": "Self-serve revenue",
        "description": "Half of new ARR without sales",
        "weight": 3,
        "period_start": "2026-01-01",
        "period_end": "2026-06-30",
        "parent_id": parent["id"],
    }
    created = await client.post("/v1/objectives", headers=headers, json=body)
    assert created.status_code == 201, created.text
    objective = created.json()
    assert created.headers["location"] == f"/v1/objectives/{objective['id']}"
    assert objective | body == objective
    assert (objective["status"], objective["version"]) == ("active", 1)

    read = await client.get(f"/v1/objectives/{objective['id']}", headers=headers)
    assert read.json() == objective
    listed = (await client.get("/v1/objectives", headers=headers, params={"limit": 1})).json()
    assert [o["id"] for o in listed["items"]] == [objective["id"]]
    rest = await client.get(
        "/v1/objectives", headers=headers, params={"cursor": listed["next_cursor"]}
    )
    assert [o["id"] for o in rest.json()["items"]] == [parent["id"]]

    events = await emitted(settings, workspace, "roadmap")
    assert [kind for kind, _ in events] == ["objective.upserted", "objective.upserted"]
    data = events[1][1]
    assert (data["name"], data["weight"], data["parent_id"]) == (body["name"], 3, parent["id"])
    assert (data["period_end"], data["version"]) == ("2026-06-30", 1)


async def test_patch_changes_only_the_fields_sent_and_bumps_the_version(
    settings: Settings, workspace: str, client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    objective = await create(client, headers, description="Keep", weight=2)
    path = f"/v1/objectives/{objective['id']}"
    patched = await client.patch(path, headers=headers, json={"status": "achieved"})
    assert patched.status_code == 200, patched.text
    after = patched.json()
    assert (after["status"], after["version"]) == ("achieved", 2)
    assert (after["description"], after["weight"]) == ("Keep", 2)
    same = await client.patch(path, headers=headers, json={"status": "achieved"})
    assert same.json()["version"] == 2
    for bad in ({"colour": "red"}, {"weight": 0}, {"name": None}, {"status": "done"}):
        answer = await client.patch(path, headers=headers, json=bad)
        assert answer.status_code == 422, bad
        assert answer.headers["content-type"] == "application/problem+json"
    cycle = await client.patch(path, headers=headers, json={"parent_id": objective["id"]})
    assert cycle.status_code == 409
    events = await emitted(settings, workspace, "roadmap")
    assert [d["version"] for _, d in events] == [1, 2]


async def test_deleting_an_objective_unlinks_its_items_and_orphans_its_children(
    settings: Settings, workspace: str, client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    objective = await create(client, headers)
    child = await create(client, headers, name="Child", parent_id=objective["id"])
    item = await client.post(
        "/v1/items", headers=headers, json={"title": "Export", "objective_ids": [objective["id"]]}
    )
    path = f"/v1/objectives/{objective['id']}"
    assert (await client.delete(path, headers=headers)).status_code == 204
    assert (await client.get(path, headers=headers)).status_code == 404
    orphan = (await client.get(f"/v1/objectives/{child['id']}", headers=headers)).json()
    assert (orphan["parent_id"], orphan["version"]) == (None, 2)
    unlinked = (await client.get(f"/v1/items/{item.json()['key']}", headers=headers)).json()
    assert (unlinked["objective_ids"], unlinked["version"]) == ([], 2)

    events = await emitted(settings, workspace, "roadmap")
    assert [kind for kind, _ in events[-3:]] == [
        "objective.upserted",
        "item.upserted",
        "objective.deleted",
    ]
    assert events[-1][1] == {"id": objective["id"], "version": 2}
