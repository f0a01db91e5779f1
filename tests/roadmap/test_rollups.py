"""Delivery roll-ups: items and launches count and estimate the tracker issues linked to them."""

from __future__ import annotations

from typing import Any

import httpx

from prodops.runtime.settings import Settings
from support import register_jira

ZERO = {
    "issues_total": 0,
    "issues_open": 0,
    "issues_closed": 0,
    "estimate_total": 0,
    "estimate_done": 0,
}


async def _post(client: httpx.AsyncClient, headers: dict[str, str], path: str, **body: Any) -> Any:
    answer = await client.post(path, headers=headers, json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


async def _get(client: httpx.AsyncClient, headers: dict[str, str], path: str) -> Any:
    answer = await client.get(path, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_item_rolls_up_its_three_linked_issues_with_their_estimates(
    client: httpx.AsyncClient, settings: Settings, workspace: str, headers: dict[str, str]
) -> None:
    item = await _post(client, headers, "/v1/items", title="Checkout")
    assert item["delivery"] == ZERO
    jira = await register_jira(client, settings, workspace)
    label = f"roadmap:{item['key']}"
    await jira.issue("SHOP-1", labels=(label,), points=3, done=True)
    await jira.issue("SHOP-2", labels=(label,), points=5)
    await jira.issue("SHOP-3", labels=(label,))
    await jira.issue("SHOP-4", labels=("roadmap:OTHER-1",), points=13)

    expected = {
        "issues_total": 3,
        "issues_open": 2,
        "issues_closed": 1,
        "estimate_total": 8,
        "estimate_done": 3,
    }
    assert (await _get(client, headers, f"/v1/items/{item['key']}"))["delivery"] == expected
    assert (await _get(client, headers, f"/v1/items/{item['id']}"))["delivery"] == expected


async def test_launch_counts_issues_linked_to_it_and_to_its_items_once(
    client: httpx.AsyncClient, settings: Settings, workspace: str, headers: dict[str, str]
) -> None:
    launch = await _post(client, headers, "/v1/launches", key="SPRING", name="Spring")
    shipping = await _post(client, headers, "/v1/items", title="In it", launch_id=launch["id"])
    elsewhere = await _post(client, headers, "/v1/items", title="Not in it")
    jira = await register_jira(client, settings, workspace)
    await jira.issue(
        "WEB-1", labels=(f"roadmap:{shipping['key']}",), versions=("SPRING",), points=2
    )
    await jira.issue("WEB-2", labels=(f"roadmap:{shipping['key']}",), points=3, done=True)
    await jira.issue("WEB-3", versions=("SPRING",), points=1, done=True)
    await jira.issue("WEB-4", labels=(f"roadmap:{elsewhere['key']}",), points=8)

    found = await _get(client, headers, "/v1/launches/spring")
    assert found["delivery"] == {
        "issues_total": 3,
        "issues_open": 1,
        "issues_closed": 2,
        "estimate_total": 6,
        "estimate_done": 4,
    }


async def test_list_pages_show_the_roll_up_of_every_row(
    client: httpx.AsyncClient, settings: Settings, workspace: str, headers: dict[str, str]
) -> None:
    launch = await _post(client, headers, "/v1/launches", key="FALL", name="Fall")
    await _post(client, headers, "/v1/launches", key="IDLE", name="Nothing linked")
    first = await _post(client, headers, "/v1/items", title="One", launch_id=launch["id"])
    second = await _post(client, headers, "/v1/items", title="Two")
    third = await _post(client, headers, "/v1/items", title="Three")
    jira = await register_jira(client, settings, workspace)
    await jira.issue("APP-1", labels=(f"roadmap:{first['key']}",), points=2)
    await jira.issue("APP-2", labels=(f"roadmap:{second['key']}",), points=1, done=True)
    await jira.issue("APP-3", labels=(f"roadmap:{second['key']}",))

    items = (await _get(client, headers, "/v1/items"))["items"]
    totals = {
        i["key"]: (i["delivery"]["issues_total"], i["delivery"]["estimate_done"]) for i in items
    }
    assert totals == {first["key"]: (1, 0), second["key"]: (2, 1), third["key"]: (0, 0)}
    launches = (await _get(client, headers, "/v1/launches"))["items"]
    rolled = {la["key"]: la["delivery"]["estimate_total"] for la in launches}
    assert rolled == {"FALL": 2, "IDLE": 0}


async def test_item_and_launch_created_after_issues_named_them_answer_with_their_roll_up(
    client: httpx.AsyncClient, settings: Settings, workspace: str, headers: dict[str, str]
) -> None:
    jira = await register_jira(client, settings, workspace)
    await jira.issue("OPS-1", labels=("roadmap:ITEM-1",), versions=("SUMMER",), points=5)

    item = await _post(client, headers, "/v1/items", title="Named ahead")
    launch = await _post(client, headers, "/v1/launches", key="SUMMER", name="Summer")

    assert item["key"] == "ITEM-1"
    assert item["delivery"]["issues_open"] == launch["delivery"]["issues_open"] == 1
    assert item["delivery"]["estimate_total"] == launch["delivery"]["estimate_total"] == 5
