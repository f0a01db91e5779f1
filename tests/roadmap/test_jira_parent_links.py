"""The Jira epic/parent convention: a child issue is linked to the items its epic is linked to."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from prodops.runtime.settings import Settings
from support import Jira, auth, emitted, register_jira


class Shop:
    """A workspace with a registered Jira source, and what its roadmap tells of the issues."""

    def __init__(self, client: httpx.AsyncClient, settings: Settings, workspace: str) -> None:
        self.client, self.settings, self.workspace = client, settings, workspace

    async def links(self) -> dict[str, Any]:
        """Each issue's key and its item links as (key, by)."""
        headers = auth(self.settings, self.workspace, "roadmap:read")
        answer = await self.client.get("/v1/tracker-issues", headers=headers)
        assert answer.status_code == 200, answer.text
        return {
            issue["key"]: [(link["key"], link["by"]) for link in issue["links"]]
            for issue in answer.json()["items"]
        }

    async def child_item_keys(self) -> list[list[str]]:
        """The item keys of every `tracker_issue.upserted` emitted for the child, in order."""
        return [
            data["item_keys"]
            for kind, data in await emitted(self.settings, self.workspace, "roadmap")
            if kind == "tracker_issue.upserted" and data["key"] == "SHOP-2"
        ]


@pytest.fixture
async def shop(client: httpx.AsyncClient, settings: Settings, workspace: str) -> Shop:
    return Shop(client, settings, workspace)


@pytest.fixture
async def jira(client: httpx.AsyncClient, settings: Settings, workspace: str) -> Jira:
    return await register_jira(client, settings, workspace)


async def test_child_of_an_epic_labelled_with_an_item_is_linked_to_it_by_convention(
    shop: Shop, jira: Jira
) -> None:
    await jira.issue("SHOP-1", labels=("roadmap:CK-9",))
    await jira.issue("SHOP-2", labels=("roadmap:CK-3",), parent="SHOP-1")
    await jira.issue("SHOP-3")

    assert await shop.links() == {
        "SHOP-1": [("CK-9", "convention")],
        "SHOP-2": [("CK-3", "convention"), ("CK-9", "convention")],
        "SHOP-3": [],
    }
    assert await shop.child_item_keys() == [["CK-3", "CK-9"]]


async def test_epic_arriving_after_its_child_links_the_child_then(shop: Shop, jira: Jira) -> None:
    await jira.issue("SHOP-2", parent="SHOP-1")
    await jira.issue("SHOP-1", labels=("roadmap:CK-9",))

    assert (await shop.links())["SHOP-2"] == [("CK-9", "convention")]
    assert await shop.child_item_keys() == [[], ["CK-9"]]


async def test_label_added_to_the_epic_later_links_the_child_and_removing_it_unlinks(
    shop: Shop, jira: Jira
) -> None:
    await jira.issue("SHOP-1")
    await jira.issue("SHOP-2", parent="SHOP-1")
    await jira.issue("SHOP-1", labels=("roadmap:CK-9",), event="jira:issue_updated")
    assert (await shop.links())["SHOP-2"] == [("CK-9", "convention")]

    await jira.issue("SHOP-1", event="jira:issue_updated")
    assert (await shop.links())["SHOP-2"] == []
    assert await shop.child_item_keys() == [[], ["CK-9"], []]


async def test_explicit_link_of_the_epic_reaches_its_child_but_not_its_grandchild(
    shop: Shop, jira: Jira
) -> None:
    await jira.issue("SHOP-1")
    await jira.issue("SHOP-2", parent="SHOP-1")
    await jira.issue("SHOP-5", parent="SHOP-2")
    answer = await shop.client.put(
        "/v1/items/CK-7/tracker-links",
        headers=auth(shop.settings, shop.workspace, "roadmap:write"),
        json={"provider": "jira", "external_id": "SHOP-1"},
    )
    assert answer.status_code == 200, answer.text

    links = await shop.links()
    assert (links["SHOP-1"], links["SHOP-2"], links["SHOP-5"]) == (
        [("CK-7", "api")],
        [("CK-7", "convention")],
        [],
    )
    assert await shop.child_item_keys() == [[], ["CK-7"]]
