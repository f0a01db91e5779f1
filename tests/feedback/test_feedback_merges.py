"""Merging duplicate feedback into one item, keeping every source, and undoing it."""

from __future__ import annotations

from typing import Any

import httpx

from prodops.runtime.settings import Settings
from support import assert_problem, create, emitted


async def test_a_merged_duplicate_folds_into_the_survivor_and_unmerge_restores_it(
    settings: Settings, workspace: str, client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    survivor = await create(client, headers, external_id="s-1", account_external_id="acme")
    duplicate = await create(client, headers, external_id="d-1", account_external_id="beta")

    merged = await client.post(
        f"/v1/feedback/{duplicate['id']}/merge", headers=headers, json={"into": survivor["id"]}
    )
    assert merged.status_code == 200, merged.text
    body = merged.json()
    assert (body["id"], body["merged_from"], body["version"]) == (
        survivor["id"],
        [duplicate["id"]],
        2,
    )
    assert [s["external_id"] for s in body["provenance"]] == ["s-1", "d-1"]
    folded = (await client.get(f"/v1/feedback/{duplicate['id']}", headers=headers)).json()
    assert (folded["merged_into"], folded["version"]) == (survivor["id"], 2)

    listed = await client.get("/v1/feedback", headers=headers)
    assert [f["id"] for f in listed.json()["items"]] == [survivor["id"]]
    everything = await client.get("/v1/feedback", headers=headers, params={"include_merged": True})
    assert {f["id"] for f in everything.json()["items"]} == {survivor["id"], duplicate["id"]}

    events = await emitted(settings, workspace)
    assert [kind for kind, _ in events[2:]] == [
        "feedback.merged",
        "feedback.updated",
        "feedback.updated",
    ]
    merged_event, duplicate_state, survivor_state = (data for _, data in events[2:])
    assert merged_event == {
        "feedback_id": duplicate["id"],
        "into_id": survivor["id"],
        "version": 2,
    }
    assert (duplicate_state["id"], duplicate_state["merged_into"]) == (
        duplicate["id"],
        survivor["id"],
    )
    assert duplicate_state["account_external_id"] == "beta"
    assert (survivor_state["id"], survivor_state["merged_into"]) == (survivor["id"], None)
    assert survivor_state["account_external_id"] == "acme"

    restored = await client.post(f"/v1/feedback/{duplicate['id']}/unmerge", headers=headers)
    assert restored.status_code == 200, restored.text
    assert (restored.json()["merged_into"], restored.json()["version"]) == (None, 3)
    alone = (await client.get(f"/v1/feedback/{survivor['id']}", headers=headers)).json()
    assert (alone["merged_from"], alone["version"]) == ([], 3)
    after = await emitted(settings, workspace)
    assert [(kind, data["id"], data["version"]) for kind, data in after[5:]] == [
        ("feedback.updated", duplicate["id"], 3),
        ("feedback.updated", survivor["id"], 3),
    ]


async def test_impossible_merges_are_conflicts_and_unknown_targets_not_found(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    a, b, c = [await create(client, headers, title=t) for t in "abc"]

    async def merge(source: Any, into: str) -> httpx.Response:
        return await client.post(
            f"/v1/feedback/{source['id']}/merge", headers=headers, json={"into": into}
        )

    assert (await merge(a, a["id"])).status_code == 409
    assert (await merge(a, b["id"])).status_code == 200
    assert (await merge(a, c["id"])).status_code == 409  # merged already
    assert (await merge(c, a["id"])).status_code == 409  # into a merged item
    assert (await merge(b, c["id"])).status_code == 409  # has duplicates of its own
    unknown = await merge(c, "0190f0f0-0000-7000-8000-000000000000")
    assert_problem(unknown, 404)
    bad = await client.post(
        f"/v1/feedback/{c['id']}/merge", headers=headers, json={"into": b["id"], "x": 1}
    )
    assert bad.status_code == 422
    not_merged = await client.post(f"/v1/feedback/{c['id']}/unmerge", headers=headers)
    assert not_merged.status_code == 409
    assert not_merged.json()["status"] == 409


async def test_deleting_a_survivor_gives_its_duplicates_back_their_own_life(
    settings: Settings, workspace: str, client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    survivor = await create(client, headers, title="Survivor")
    duplicate = await create(client, headers, title="Duplicate")
    await client.post(
        f"/v1/feedback/{duplicate['id']}/merge", headers=headers, json={"into": survivor["id"]}
    )
    assert (
        await client.delete(f"/v1/feedback/{survivor['id']}", headers=headers)
    ).status_code == 204
    alone = (await client.get(f"/v1/feedback/{duplicate['id']}", headers=headers)).json()
    assert (alone["merged_into"], alone["version"]) == (None, 3)
    events = await emitted(settings, workspace)
    assert [(kind, data["id"]) for kind, data in events[-2:]] == [
        ("feedback.updated", duplicate["id"]),
        ("feedback.deleted", survivor["id"]),
    ]
