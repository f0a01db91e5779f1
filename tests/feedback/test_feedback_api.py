"""The feedback HTTP API: create, read, list with filters, patch, delete; scopes and workspaces."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from prodops.runtime.settings import Settings
from support import assert_problem, auth, create, emitted


async def test_created_feedback_is_read_back_with_its_provenance(
    settings: Settings, workspace: str, client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    body = {
        "title": "Export to CSV",
        "body": "Weekly, please",
        "customer": {"email": "ann@example.com", "name": "Ann"},
        "account_external_id": "acme-co",
        "tags": ["Export", "csv"],
        "priority": "high",
        "url": "https://desk.example.com/1",
        "external_id": "crm-1",
    }
    created = await client.post(
        "/v1/feedback", headers=headers | {"Idempotency-Key": "k1"}, json=body
    )
    assert created.status_code == 201, created.text
    item = created.json()
    assert created.headers["location"] == f"/v1/feedback/{item['id']}"
    again = await client.post("/v1/feedback", headers=headers, json=body)
    assert (again.status_code, again.json()["id"]) == (200, item["id"])

    read = (await client.get(f"/v1/feedback/{item['id']}", headers=headers)).json()
    assert read["tags"] == ["export", "csv"]
    assert read["priority"] == "high"
    assert read["customer"] == {"external_id": None, "email": "ann@example.com", "name": "Ann"}
    assert read["source"] == {
        "provider": "api",
        "source_id": None,
        "external_id": "crm-1",
        "url": "https://desk.example.com/1",
    }
    assert (read["version"], read["merged_from"], read["item_keys"]) == (1, [], [])
    assert [kind for kind, _ in await emitted(settings, workspace)] == ["feedback.received"]


async def test_patch_changes_only_the_fields_sent_and_bumps_the_version(
    settings: Settings, workspace: str, client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    item = await create(
        client,
        headers,
        body="Details",
        tags=["a"],
        account_external_id="acme",
        customer={"external_id": "c-1", "email": "ann@example.com", "name": "Ann"},
    )
    path = f"/v1/feedback/{item['id']}"

    patched = await client.patch(path, headers=headers, json={"status": "archived", "tags": ["B"]})
    assert patched.status_code == 200, patched.text
    after = patched.json()
    assert (after["status"], after["tags"], after["version"]) == ("archived", ["b"], 2)
    assert (after["title"], after["body"], after["account_external_id"]) == (
        "Wish",
        "Details",
        "acme",
    )
    cleared = (await client.patch(path, headers=headers, json={"account_external_id": None})).json()
    assert (cleared["account_external_id"], cleared["version"]) == (None, 3)
    same = (await client.patch(path, headers=headers, json={"status": "archived"})).json()
    assert same["version"] == 3
    renamed = await client.patch(
        path,
        headers={**headers, "Content-Type": "application/merge-patch+json"},
        content=b'{"customer": {"name": "Ann B", "email": null}}',
    )
    assert renamed.json()["customer"] == {"external_id": "c-1", "email": None, "name": "Ann B"}
    assert renamed.json()["version"] == 4

    events = await emitted(settings, workspace)
    assert [(kind, data["version"]) for kind, data in events] == [
        ("feedback.received", 1),
        ("feedback.updated", 2),
        ("feedback.updated", 3),
        ("feedback.updated", 4),
    ]
    assert events[1][1]["status"] == "archived"


@pytest.mark.parametrize(
    "patch",
    [{"votes": 3}, {"title": None}, {"priority": "blocker"}, {"status": "deleted"}],
    ids=["unknown field", "null title", "bad priority", "bad status"],
)
async def test_a_patch_outside_the_shape_is_422(
    client: httpx.AsyncClient, patch: dict[str, Any], headers: dict[str, str]
) -> None:
    item = await create(client, headers)
    answer = await client.patch(f"/v1/feedback/{item['id']}", headers=headers, json=patch)
    assert_problem(answer, 422)


async def test_deleted_feedback_is_gone_and_its_external_id_can_come_again(
    settings: Settings, workspace: str, client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    item = await create(client, headers, external_id="t-9")
    path = f"/v1/feedback/{item['id']}"
    deleted = await client.delete(path, headers=headers)
    assert deleted.status_code == 204
    assert (await client.get(path, headers=headers)).status_code == 404
    assert (await client.patch(path, headers=headers, json={"title": "x"})).status_code == 404
    assert (await client.delete(path, headers=headers)).status_code == 404
    reborn = await create(client, headers, external_id="t-9")
    assert reborn["id"] != item["id"]
    events = await emitted(settings, workspace)
    assert events[1] == ("feedback.deleted", {"id": item["id"], "version": 2})


async def test_each_filter_narrows_the_list_and_they_combine(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    await create(client, headers, title="A", tags=["export"], account_external_id="acme")
    b = await create(client, headers, title="B", tags=["export", "ui"], account_external_id="beta")
    c = await create(client, headers, title="C", tags=["ui"], account_external_id="acme")
    await client.patch(f"/v1/feedback/{c['id']}", headers=headers, json={"status": "archived"})
    linked = await client.put(f"/v1/feedback/{b['id']}/links/ck-3", headers=headers)
    assert linked.status_code == 201, linked.text

    async def titles(**params: str) -> list[str]:
        answer = await client.get("/v1/feedback", headers=headers, params=params)
        assert answer.status_code == 200, answer.text
        return [item["title"] for item in answer.json()["items"]]

    assert await titles() == ["C", "B", "A"]
    assert await titles(status="archived") == ["C"]
    assert await titles(tag="Export") == ["B", "A"]
    assert await titles(account="acme") == ["C", "A"]
    assert await titles(item="CK-3") == ["B"]
    assert await titles(source="api") == ["C", "B", "A"]
    assert await titles(source="1b0c7bd4-6a43-4f3e-9d49-2d3b6d7c4f00") == []
    assert await titles(created_after=b["created_at"]) == ["C", "B"]
    assert await titles(created_before=b["created_at"]) == ["A"]
    assert await titles(tag="ui", account="acme") == ["C"]
    assert await titles(tag="export", status="open", created_before=c["created_at"]) == ["B", "A"]
    bad = await client.get("/v1/feedback", headers=headers, params={"status": "closed"})
    assert bad.status_code == 422


async def test_a_filtered_list_pages_newest_first_and_its_cursor_keeps_the_filter(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    for n in range(7):
        await create(client, headers, title=f"Item {n}", tags=["even" if n % 2 == 0 else "odd"])
    seen: list[str] = []
    params: dict[str, Any] = {"tag": "even", "limit": 2}
    cursor = None
    for _ in range(3):
        answer = await client.get("/v1/feedback", headers=headers, params=params)
        page = answer.json()
        seen += [item["title"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        params["cursor"] = cursor
    assert seen == ["Item 6", "Item 4", "Item 2", "Item 0"]
    assert cursor is None

    first = await client.get("/v1/feedback", headers=headers, params={"tag": "odd", "limit": 1})
    other = first.json()["next_cursor"]
    mixed = await client.get(
        "/v1/feedback", headers=headers, params={"tag": "even", "limit": 1, "cursor": other}
    )
    assert_problem(mixed, 400)
    forged = await client.get("/v1/feedback", headers=headers, params={"cursor": "bm90LWpzb24"})
    assert forged.status_code == 400


async def test_a_read_token_can_read_but_not_write(
    settings: Settings, workspace: str, client: httpx.AsyncClient
) -> None:
    item = await create(client, auth(settings, workspace))
    path = f"/v1/feedback/{item['id']}"
    reader = auth(settings, workspace, "feedback:read")
    assert (await client.get(path, headers=reader)).status_code == 200
    assert (await client.get("/v1/feedback", headers=reader)).status_code == 200
    writes = [
        client.patch(path, headers=reader, json={"title": "x"}),
        client.delete(path, headers=reader),
        client.put(f"{path}/links/CK-1", headers=reader),
        client.delete(f"{path}/links/CK-1", headers=reader),
        client.post(f"{path}/merge", headers=reader, json={"into": item["id"]}),
        client.post(f"{path}/unmerge", headers=reader),
    ]
    for write in writes:
        answer = await write
        assert_problem(answer, 403)
    writer = auth(settings, workspace, "feedback:write")
    assert (await client.get(path, headers=writer)).status_code == 403


async def test_workspace_a_cannot_see_or_touch_workspace_b_feedback(
    settings: Settings, workspace: str, client: httpx.AsyncClient
) -> None:
    mine = auth(settings, workspace)
    theirs = auth(settings, f"b-{workspace}"[:63])
    item = await create(client, mine, tags=["private"])
    their_item = await create(client, theirs)
    path = f"/v1/feedback/{item['id']}"
    attempts = [
        client.get(path, headers=theirs),
        client.patch(path, headers=theirs, json={"title": "Mine now"}),
        client.delete(path, headers=theirs),
        client.put(f"{path}/links/CK-1", headers=theirs),
        client.delete(f"{path}/links/CK-1", headers=theirs),
        client.post(f"{path}/merge", headers=theirs, json={"into": their_item["id"]}),
        client.post(f"{path}/unmerge", headers=theirs),
        client.post(
            f"/v1/feedback/{their_item['id']}/merge", headers=theirs, json={"into": item["id"]}
        ),
    ]
    for attempt in attempts:
        answer = await attempt
        assert answer.status_code == 404, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
    listed = await client.get("/v1/feedback", headers=theirs, params={"tag": "private"})
    assert listed.json()["items"] == []
    untouched = (await client.get(path, headers=mine)).json()
    assert (untouched["title"], untouched["version"], untouched["item_keys"]) == ("Wish", 1, [])
