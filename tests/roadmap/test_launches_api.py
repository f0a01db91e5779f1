"""The launches HTTP API: checklists, the template, item keys, events, scopes, workspaces."""

from __future__ import annotations

from typing import Any

import httpx

from prodops.runtime.settings import Settings
from support import auth, emitted, posted


async def create(client: httpx.AsyncClient, headers: dict[str, str], **fields: Any) -> Any:
    return await posted(
        client, headers, "/v1/launches", {"key": "SPRING", "name": "Spring release", **fields}
    )


async def test_created_launch_is_read_by_id_or_key_listed_and_emitted(
    settings: Settings, workspace: str, client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    checklist = [
        {"title": "Docs page", "category": "docs", "owner": "ann", "due_date": "2026-03-01"}
    ]
    launch = await create(client, headers, target_date="2026-03-15", checklist=checklist)
    assert (launch["key"], launch["status"], launch["version"]) == ("SPRING", "planned", 1)
    [entry] = launch["checklist"]
    assert entry | checklist[0] | {"required": True, "done": False} == entry
    by_key = await client.get("/v1/launches/spring", headers=headers)
    by_id = await client.get(f"/v1/launches/{launch['id']}", headers=headers)
    assert by_key.json() == by_id.json() == launch
    taken = await client.post("/v1/launches", headers=headers, json={"key": "spring", "name": "x"})
    assert taken.status_code == 409
    other = await create(client, headers, key="SUMMER", status="in_progress")
    listed = (await client.get("/v1/launches", headers=headers)).json()["items"]
    assert [launch["key"] for launch in listed] == ["SUMMER", "SPRING"]
    filtered = await client.get("/v1/launches", headers=headers, params={"status": "in_progress"})
    assert [launch["id"] for launch in filtered.json()["items"]] == [other["id"]]

    events = await emitted(settings, workspace, "roadmap")
    assert [kind for kind, _ in events] == ["launch.upserted", "launch.upserted"]
    data = events[0][1]
    assert (data["key"], data["target_date"], data["item_keys"]) == ("SPRING", "2026-03-15", [])
    assert data["checklist"] == launch["checklist"]


async def test_checklist_template_seeds_new_launches_only(
    settings: Settings, workspace: str, client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    before = await create(client, headers, key="OLD")
    template = {
        "entries": [
            {"title": "Release notes", "category": "docs"},
            {"title": "Tell sales", "category": "sales", "required": False, "owner": "bo"},
        ]
    }
    put = await client.put("/v1/checklist-template", headers=headers, json=template)
    assert put.status_code == 200, put.text
    assert (await client.get("/v1/checklist-template", headers=headers)).json() == put.json()
    launch = await create(client, headers)
    seeded = [(e["title"], e["category"], e["required"], e["done"]) for e in launch["checklist"]]
    assert seeded == [("Release notes", "docs", True, False), ("Tell sales", "sales", False, False)]
    assert launch["checklist"][1]["owner"] == "bo"
    old = (await client.get("/v1/launches/OLD", headers=headers)).json()
    assert old["checklist"] == before["checklist"] == []
    own = await create(client, headers, key="OWN", checklist=[])
    assert own["checklist"] == []
    reader = auth(settings, workspace, "roadmap:read", "roadmap:write")
    assert (
        await client.put("/v1/checklist-template", headers=reader, json=template)
    ).status_code == 403


async def test_checklist_is_replaced_whole_and_entries_ticked_one_by_one(
    settings: Settings, workspace: str, client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    launch = await create(client, headers, checklist=[{"title": "QA pass", "category": "qa"}])
    [kept] = launch["checklist"]
    path = "/v1/launches/SPRING/checklist"
    entries = [kept, {"title": "Legal review", "category": "legal", "due_date": "2026-02-01"}]
    replaced = await client.put(path, headers=headers, json={"entries": entries})
    assert replaced.status_code == 200, replaced.text
    assert [e["title"] for e in replaced.json()["checklist"]] == ["QA pass", "Legal review"]
    assert replaced.json()["checklist"][0]["id"] == kept["id"]
    ticked = await client.patch(f"{path}/{kept['id']}", headers=headers, json={"done": True})
    assert ticked.status_code == 200, ticked.text
    assert [e["done"] for e in ticked.json()["checklist"]] == [True, False]
    assert ticked.json()["version"] == 3
    unknown = "0190d3a4-0000-7000-8000-000000000000"
    assert (
        await client.patch(f"{path}/{unknown}", headers=headers, json={"done": True})
    ).status_code == 404
    bad = await client.patch(f"{path}/{kept['id']}", headers=headers, json={"done": None})
    assert bad.status_code == 422
    twice = await client.put(path, headers=headers, json={"entries": [kept, kept]})
    assert twice.status_code == 422
    events = await emitted(settings, workspace, "roadmap")
    assert [d["version"] for _, d in events] == [1, 2, 3]
    assert [e["done"] for e in events[-1][1]["checklist"]] == [True, False]


async def test_launch_carries_its_item_keys_and_deleting_it_unlinks_them(
    settings: Settings, workspace: str, client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    launch = await create(client, headers)
    for title in ("A", "B"):
        answer = await client.post(
            "/v1/items", headers=headers, json={"title": title, "launch_id": launch["id"]}
        )
        assert answer.status_code == 201, answer.text
    read = (await client.get("/v1/launches/SPRING", headers=headers)).json()
    assert (read["item_keys"], read["version"]) == (["ITEM-1", "ITEM-2"], 3)
    moved = await client.patch("/v1/items/ITEM-2", headers=headers, json={"launch_id": None})
    assert moved.json()["launch_key"] is None
    read = (await client.get("/v1/launches/SPRING", headers=headers)).json()
    assert (read["item_keys"], read["version"]) == (["ITEM-1"], 4)
    patched = await client.patch(
        "/v1/launches/SPRING", headers=headers, json={"status": "launched", "name": "Spring"}
    )
    assert (patched.json()["status"], patched.json()["version"]) == ("launched", 5)
    assert (
        await client.patch("/v1/launches/SPRING", headers=headers, json={"key": "X"})
    ).status_code == 422

    assert (await client.delete("/v1/launches/SPRING", headers=headers)).status_code == 204
    assert (await client.get("/v1/launches/SPRING", headers=headers)).status_code == 404
    item = (await client.get("/v1/items/ITEM-1", headers=headers)).json()
    assert item["launch_key"] is None
    events = await emitted(settings, workspace, "roadmap")
    assert [kind for kind, _ in events[-2:]] == ["item.upserted", "launch.deleted"]
    assert events[-2][1]["launch_key"] is None
    assert events[-1][1] == {"id": launch["id"], "version": 6, "key": "SPRING"}


async def test_launch_keys_are_per_workspace(
    settings: Settings, workspace: str, client: httpx.AsyncClient
) -> None:
    await create(client, auth(settings, workspace))
    assert (await create(client, auth(settings, f"b-{workspace}"[:63])))["key"] == "SPRING"
