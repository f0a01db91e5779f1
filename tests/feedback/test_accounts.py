"""Accounts from a CRM: upserted one by one or in bulk, listed, read; each change is emitted."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from prodops.runtime.settings import Settings
from support import assert_problem, auth, create_app, eventually, query, running, summary

ACME = {"name": "Acme", "arr": 120000, "segment": "enterprise", "plan": "pro"}


async def account_events(settings: Settings, workspace: str) -> list[dict[str, Any]]:
    """The `data` of every account.upserted the workspace's writes put in the outbox."""
    rows = await query(
        settings,
        "SELECT payload FROM feedback.outbox WHERE workspace = $1 AND type = $2 ORDER BY position",
        workspace,
        "prodops.account.upserted.v1",
    )
    return [orjson.loads(row["payload"])["data"] for row in rows]


async def test_put_creates_an_account_then_updates_it_and_an_identical_put_changes_nothing(
    client: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    headers = auth(settings, workspace, "feedback:write")
    created = await client.put("/v1/accounts/acme-1", headers=headers, json=ACME)
    assert created.status_code == 201, created.text
    assert created.headers["location"] == "/v1/accounts/acme-1"
    assert created.json() | {"created_at": None, "updated_at": None} == {
        "external_id": "acme-1",
        **ACME,
        "version": 1,
        "created_at": None,
        "updated_at": None,
    }
    same = await client.put("/v1/accounts/acme-1", headers=headers, json=ACME)
    assert (same.status_code, same.json()["version"]) == (200, 1)
    grown = await client.put("/v1/accounts/acme-1", headers=headers, json=ACME | {"arr": 150000.5})
    assert (grown.status_code, grown.json()["version"], grown.json()["arr"]) == (200, 2, 150000.5)
    events = await account_events(settings, workspace)
    assert [(e["external_id"], e["version"], e["arr"]) for e in events] == [
        ("acme-1", 1, 120000.0),
        ("acme-1", 2, 150000.5),
    ]
    assert events[0] | {"updated_at": None} == {
        "external_id": "acme-1",
        **ACME,
        "version": 1,
        "updated_at": None,
    }


async def test_put_replaces_the_whole_account_so_an_omitted_field_is_cleared(
    client: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    headers = auth(settings, workspace, "feedback:write")
    await client.put("/v1/accounts/acme-1", headers=headers, json=ACME)
    replaced = await client.put("/v1/accounts/acme-1", headers=headers, json={"name": "Acme"})
    assert replaced.json() | {"created_at": None, "updated_at": None} == {
        "external_id": "acme-1",
        "name": "Acme",
        "arr": 0.0,
        "segment": None,
        "plan": None,
        "version": 2,
        "created_at": None,
        "updated_at": None,
    }


async def test_bulk_upsert_answers_created_updated_or_unchanged_per_account_in_order(
    client: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    headers = auth(settings, workspace, "feedback:write")
    await client.put("/v1/accounts/a", headers=headers, json=ACME)
    await client.put("/v1/accounts/b", headers=headers, json=ACME)
    answer = await client.post(
        "/v1/accounts/bulk",
        headers=headers,
        json={
            "accounts": [
                {"external_id": "c", "name": "Cyberdyne", "arr": 5000},
                {"external_id": "a", **ACME},
                {"external_id": "b", **ACME, "plan": "enterprise"},
            ]
        },
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "created": 1,
        "updated": 1,
        "unchanged": 1,
        "accounts": [
            {"external_id": "c", "outcome": "created", "version": 1},
            {"external_id": "a", "outcome": "unchanged", "version": 1},
            {"external_id": "b", "outcome": "updated", "version": 2},
        ],
    }
    events = await account_events(settings, workspace)
    assert sorted((e["external_id"], e["version"]) for e in events[2:]) == [("b", 2), ("c", 1)]


async def test_a_thousand_accounts_upsert_in_one_call_and_a_thousand_and_one_are_refused(
    client: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    headers = auth(settings, workspace, "feedback:write")
    accounts = [{"external_id": f"acc-{n:04}", "arr": n} for n in range(1001)]
    refused = await client.post("/v1/accounts/bulk", headers=headers, json={"accounts": accounts})
    assert_problem(refused, 422)
    answer = await client.post(
        "/v1/accounts/bulk", headers=headers, json={"accounts": accounts[:1000]}
    )
    assert answer.json()["created"] == 1000
    assert len(await account_events(settings, workspace)) == 1000


async def test_bulk_upsert_naming_one_account_twice_is_refused_whole(
    client: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    headers = auth(settings, workspace, "feedback:write")
    twice = [{"external_id": "a", "arr": 1}, {"external_id": "a", "arr": 2}]
    answer = await client.post("/v1/accounts/bulk", headers=headers, json={"accounts": twice})
    assert answer.status_code == 422
    assert "only once" in answer.json()["errors"][0]["msg"]
    assert await account_events(settings, workspace) == []


async def test_accounts_are_listed_by_external_id_page_by_page_and_filtered(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    plans = {"e": ("smb", "free"), "a": ("enterprise", "pro"), "d": ("enterprise", "free")}
    plans |= {"c": ("smb", "pro"), "b": ("enterprise", "pro")}
    accounts = [{"external_id": k, "segment": s, "plan": p} for k, (s, p) in plans.items()]
    await client.post("/v1/accounts/bulk", headers=headers, json={"accounts": accounts})
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(3):
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/v1/accounts", headers=headers, params=params)).json()
        seen += [account["external_id"] for account in page["items"]]
        cursor = page["next_cursor"]
    assert (seen, cursor) == (["a", "b", "c", "d", "e"], None)

    async def listed(**filters: str) -> list[str]:
        page = await client.get("/v1/accounts", headers=headers, params=filters)
        return [account["external_id"] for account in page.json()["items"]]

    assert await listed(segment="enterprise") == ["a", "b", "d"]
    assert await listed(plan="pro") == ["a", "b", "c"]
    assert await listed(segment="enterprise", plan="free") == ["d"]
    bad = await client.get("/v1/accounts", headers=headers, params={"cursor": "not-a-cursor"})
    assert bad.status_code == 400


async def test_an_account_is_read_by_its_external_id_even_with_a_slash_and_a_missing_one_is_404(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    await client.put("/v1/accounts/sf:001%2FX", headers=headers, json=ACME)
    found = await client.get("/v1/accounts/sf:001%2FX", headers=headers)
    missing = await client.get("/v1/accounts/nobody", headers=headers)
    assert found.json()["external_id"] == "sf:001/X"
    assert_problem(missing, 404)
    assert missing.json()["detail"] == "no such account in this workspace"


@pytest.mark.parametrize(
    "body",
    [
        ACME | {"arr": -1},
        ACME | {"arr": "lots"},
        ACME | {"owner": "me"},
        ACME | {"name": "x" * 501},
    ],
    ids=["negative-arr", "arr-not-a-number", "unknown-field", "name-too-long"],
)
async def test_an_invalid_account_is_a_422_problem_and_nothing_is_stored(
    client: httpx.AsyncClient, body: dict[str, object], headers: dict[str, str]
) -> None:
    answer = await client.put("/v1/accounts/acme-1", headers=headers, json=body)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert (await client.get("/v1/accounts/acme-1", headers=headers)).status_code == 404


async def test_an_external_id_over_200_characters_is_refused(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    answer = await client.put(f"/v1/accounts/{'x' * 201}", headers=headers, json=ACME)
    assert answer.status_code == 422
    bulk = await client.post(
        "/v1/accounts/bulk", headers=headers, json={"accounts": [{"external_id": "y" * 201}]}
    )
    assert bulk.status_code == 422


async def test_reading_needs_feedback_read_and_writing_needs_feedback_write(
    client: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    reader = auth(settings, workspace, "feedback:read")
    writer = auth(settings, workspace, "feedback:write")
    admin = auth(settings, workspace, "admin")
    body = {"accounts": [{"external_id": "a"}]}
    for headers in (reader, admin):
        assert (await client.put("/v1/accounts/a", headers=headers, json=ACME)).status_code == 403
        assert (
            await client.post("/v1/accounts/bulk", headers=headers, json=body)
        ).status_code == 403
    for headers in (writer, admin):
        assert (await client.get("/v1/accounts", headers=headers)).status_code == 403
        assert (await client.get("/v1/accounts/a", headers=headers)).status_code == 403
    assert (await client.get("/v1/accounts")).status_code == 401
    assert (await client.put("/v1/accounts/a", headers=writer, json=ACME)).status_code == 201
    assert (await client.get("/v1/accounts/a", headers=reader)).status_code == 200


async def test_workspace_b_can_neither_see_nor_overwrite_workspace_a_accounts(
    client: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    mine, theirs = auth(settings, workspace), auth(settings, f"b-{workspace}"[:63])
    await client.put("/v1/accounts/acme-1", headers=mine, json=ACME)
    assert (await client.get("/v1/accounts/acme-1", headers=theirs)).status_code == 404
    assert (await client.get("/v1/accounts", headers=theirs)).json()["items"] == []
    own = await client.put("/v1/accounts/acme-1", headers=theirs, json={"name": "Their Acme"})
    assert (own.status_code, own.json()["version"]) == (201, 1)
    bulk = await client.post(
        "/v1/accounts/bulk", headers=theirs, json={"accounts": [{"external_id": "acme-1"}]}
    )
    assert bulk.json()["accounts"] == [
        {"external_id": "acme-1", "outcome": "updated", "version": 2}
    ]
    untouched = (await client.get("/v1/accounts/acme-1", headers=mine)).json()
    assert (untouched["name"], untouched["arr"], untouched["version"]) == ("Acme", 120000.0, 1)
    assert [e["version"] for e in await account_events(settings, workspace)] == [1]


async def test_upserted_accounts_reach_insights_through_the_broker(
    client: httpx.AsyncClient, settings: Settings, headers: dict[str, str]
) -> None:
    accounts = [{"external_id": name} for name in ("a", "b", "c")]
    await client.post("/v1/accounts/bulk", headers=headers, json={"accounts": accounts})
    async with running(create_app("insights", settings)) as insights:
        counts = await eventually(lambda: summary(insights, headers), lambda c: c["accounts"] == 3)
    assert counts["feedback"] == 0
